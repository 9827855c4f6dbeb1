"""Batches from torch worker processes: small ones cross as numpy bytes and arrive as plain dicts of tensors."""

from __future__ import annotations

import copy
import pickle
from multiprocessing.reduction import ForkingPickler  # torch registers its reductions here on import
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

import numpy as np  # noqa: E402
from torch.utils.data._utils.collate import default_convert  # noqa: E402
from torch_helpers import SIZES, as_torch_worker, make_ds, torch_loader, write_chunks  # noqa: E402

from pyloader_torch import PIPE_MAX_BYTES, PipeBatch, for_transport  # noqa: E402


def roundtrip(obj: object) -> object:
    """What the training process receives: torch's worker queue pickles with ForkingPickler."""
    return pickle.loads(bytes(ForkingPickler.dumps(obj)))


def test_small_batches_arrive_as_plain_dicts_of_tensors() -> None:
    chunk = torch.arange(2000 * 8).reshape(2000, 8)
    batch = {
        "ids": chunk[64:128],
        "label": torch.zeros(64, dtype=torch.int64),
        "text": ["a"] * 64,
        "strings": np.array(["x", "y"]),
        "n": 3,
    }
    sent = for_transport(batch)
    assert isinstance(sent, PipeBatch) and sent == batch  # the worker still sees a dict of the same tensors
    got = roundtrip(sent)
    assert type(got) is dict and list(got) == list(batch)
    assert torch.equal(got["ids"], chunk[64:128]) and got["ids"].dtype == torch.int64
    assert got["text"] == ["a"] * 64 and list(got["strings"]) == ["x", "y"] and got["n"] == 3
    assert len(pickle.dumps(sent)) < 64 * 8 * 8 + 64 * 8 + 2000  # the view's bytes, not the chunk's


def test_torch_default_convert_keeps_the_wrapper() -> None:
    sent = for_transport({"x": torch.ones(3)})
    converted = default_convert(sent)  # what torch applies in the worker with batch_size=None
    assert isinstance(converted, PipeBatch)
    assert isinstance(copy.copy(sent), PipeBatch)


def test_tensors_numpy_cannot_hold_still_travel() -> None:
    sent = for_transport({"bf": torch.ones(4, dtype=torch.bfloat16), "grad": torch.ones(2, requires_grad=True)})
    got = roundtrip(sent)
    assert got["bf"].dtype == torch.bfloat16 and got["bf"].tolist() == [1.0] * 4
    assert got["grad"].tolist() == [1.0, 1.0]


def test_big_batches_stay_tensors_without_their_chunk() -> None:
    rows = PIPE_MAX_BYTES // (8 * 128) + 1
    chunk = torch.zeros(4 * rows, 128, dtype=torch.int64)
    sent = for_transport({"ids": chunk[:rows], "own": torch.zeros(rows, 128)})
    assert type(sent) is dict
    assert sent["ids"].untyped_storage().nbytes() == sent["ids"].nbytes  # compacted: torch moves its bytes only
    assert torch.equal(sent["ids"], chunk[:rows])


def test_other_batches_are_left_alone() -> None:
    assert for_transport([1, 2]) == [1, 2]
    odd = {1: torch.zeros(1)}
    assert for_transport(odd) is odd


@pytest.mark.parametrize("num_workers", [1, 2])
def test_batches_from_torch_workers_match_the_main_process(tmp_path: Path, num_workers: int) -> None:
    write_chunks(tmp_path, SIZES)
    ds = make_ds(tmp_path, shuffle=True)
    for_workers = list(torch_loader(ds, num_workers))
    ref = make_ds(tmp_path, shuffle=True)
    here = []
    for w in range(num_workers):  # the same split, run in this process (no pickling)
        with as_torch_worker(w, num_workers):
            here.extend(iter(ref))
    by_id = {int(b["id"][0]): b for b in here}
    assert len(by_id) == len(here) == len(for_workers)
    for b in for_workers:
        assert type(b) is dict
        expected = by_id[int(b["id"][0])]
        for key in ("id", "x", "label"):
            assert torch.equal(b[key], expected[key]) and b[key].dtype == expected[key].dtype
