"""TorchCollator / to_tensors: numpy batches to tensors without copying where torch can share memory."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

import numpy as np  # noqa: E402

from pyloader_core import DataCollator, NumpyDataCollator  # noqa: E402
from pyloader_torch import TorchCollator, to_tensors  # noqa: E402


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.float32, torch.float32),
        (np.float64, torch.float64),
        (np.float16, torch.float16),
        (np.int64, torch.int64),
        (np.int32, torch.int32),
        (np.int8, torch.int8),
        (np.uint8, torch.uint8),
        (np.bool_, torch.bool),
        (np.complex64, torch.complex64),
    ],
)
def test_numeric_arrays_become_tensors_sharing_memory(dtype: type, expected: torch.dtype) -> None:
    arr = np.ones((4, 3), dtype=dtype)
    out = to_tensors({"x": arr})["x"]
    assert isinstance(out, torch.Tensor)
    assert out.dtype == expected
    assert out.shape == (4, 3)
    assert out.data_ptr() == _address(arr)  # torch.from_numpy: same memory, no copy


def test_views_are_shared_too() -> None:
    base = np.arange(40, dtype=np.int64).reshape(8, 5)
    view = base[2:6, 1:4]  # non-contiguous, positive strides
    out = to_tensors(view)
    assert out.data_ptr() == _address(view)
    assert out.tolist() == view.tolist()


def test_strings_lists_and_tensors_are_left_alone() -> None:
    text = np.array(["a", "bb"])
    objs = np.array([{"k": 1}, None], dtype=object)
    tensor = torch.zeros(2)
    batch = {"text": text, "raw": ["a", "b"], "objs": objs, "t": tensor, "n": 3}
    out = to_tensors(batch)
    assert out["text"] is text
    assert out["raw"] == ["a", "b"]
    assert out["objs"] is objs
    assert out["t"] is tensor
    assert out["n"] == 3


def test_nested_mappings_are_converted() -> None:
    out = to_tensors({"inputs": {"ids": np.zeros((2, 2), np.int64)}, "label": np.array([0, 1])})
    assert isinstance(out["inputs"]["ids"], torch.Tensor)
    assert out["label"].tolist() == [0, 1]


def test_arrays_torch_cannot_share_are_copied_without_warnings() -> None:
    readonly = np.arange(6, dtype=np.float32)
    readonly.flags.writeable = False
    big_endian = np.arange(4, dtype=">i4")
    reversed_ = np.arange(5, dtype=np.int64)[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when sharing a read-only array
        out = to_tensors({"ro": readonly, "be": big_endian, "rev": reversed_})
    assert out["ro"].tolist() == readonly.tolist() and out["ro"].data_ptr() != _address(readonly)
    assert out["be"].tolist() == [0, 1, 2, 3] and out["be"].dtype == torch.int32
    assert out["rev"].tolist() == [4, 3, 2, 1, 0]


def test_torch_collator_wraps_numpy_collator_by_default() -> None:
    collator = TorchCollator()
    assert isinstance(collator.inner, NumpyDataCollator)
    out = collator.collate_batch({"ids": [[1, 2], [3]], "label": [0, 1], "text": ["x", "y"]})
    assert out["ids"].tolist() == [[1, 2], [3, 0]]  # ragged: padded by the inner collator
    assert out["label"].dtype == torch.int64
    assert list(out["text"]) == ["x", "y"]  # strings stay strings


def test_torch_collator_keeps_the_inner_collators_arrays() -> None:
    seen: list[np.ndarray] = []

    class Keep(DataCollator):
        def collate_batch(self, batch):  # type: ignore[no-untyped-def]
            arr = np.asarray(batch["x"], dtype=np.float32)
            seen.append(arr)
            return {"x": arr}

    out = TorchCollator(Keep()).collate_batch({"x": [[1.0, 2.0]]})
    assert out["x"].data_ptr() == _address(seen[0])


def test_torch_collator_is_not_wrapped_twice() -> None:
    inner = NumpyDataCollator(pad_value=-1)
    assert TorchCollator(TorchCollator(inner)).inner is inner
