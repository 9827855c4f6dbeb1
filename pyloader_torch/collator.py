"""The :class:`TorchCollator`: a core collator's numpy batches as torch tensors, without copying."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pyloader_core import DataCollator, NumpyDataCollator
from pyloader_core.reader import Columns

__all__ = ["TorchCollator", "to_tensors"]

logger = logging.getLogger(__name__)

# bool, signed and unsigned ints, floats, complex: the dtypes torch.from_numpy accepts.
_NUMERIC_KINDS = frozenset("biufc")


def _to_tensor(arr: np.ndarray) -> torch.Tensor | np.ndarray:
    if arr.dtype.kind not in _NUMERIC_KINDS:
        return arr
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian data (copy: torch has no such dtype)
    elif not arr.flags.writeable:
        # torch would share memory it may not write to (undefined behaviour); copy instead.
        arr = arr.copy()
    elif any(s < 0 for s in arr.strides):
        arr = np.ascontiguousarray(arr)  # negative strides: torch cannot view them
    try:
        return torch.from_numpy(arr)
    except TypeError:  # a dtype this torch build lacks (e.g. old torch and uint32): keep numpy
        return arr


def to_tensors(value: Any) -> Any:
    """``value`` with every numeric numpy array turned into a tensor sharing its memory.

    Mappings are converted key by key (recursively); tensors, strings, lists and anything else are
    returned as they are. Arrays are copied only when torch cannot share them: read-only,
    non-native byte order, or negative strides.

    Example::

        to_tensors({"x": np.zeros((2, 3), np.float32), "text": ["a", "b"]})
        # {'x': tensor([[0., 0., 0.], [0., 0., 0.]]), 'text': ['a', 'b']}
    """
    if isinstance(value, np.ndarray):
        return _to_tensor(value)
    if isinstance(value, Mapping):
        return {key: to_tensors(v) for key, v in value.items()}
    return value


class TorchCollator(DataCollator):
    """Runs ``inner`` (default :class:`~pyloader_core.NumpyDataCollator`), then makes tensors of its arrays.

    Numeric numpy arrays become tensors with ``torch.from_numpy`` (same memory, no copy; see
    :func:`to_tensors`); strings, lists and values that already are tensors are left alone. It runs
    in the loader's consumer: the torch worker process with ``num_workers>0`` in
    ``torch.utils.data.DataLoader``, the training process itself with ``num_workers=0``.

    Example::

        collator = TorchCollator()  # NumpyDataCollator, then torch.from_numpy
        batch = collator.collate_batch({"input_ids": [[1, 2], [3]], "label": [0, 1]})
        batch["input_ids"]  # tensor([[1, 2], [3, 0]])
    """

    def __init__(self, inner: DataCollator | None = None) -> None:
        if isinstance(inner, TorchCollator):
            inner = inner.inner
        self.inner: DataCollator = inner if inner is not None else NumpyDataCollator()

    def collate_batch(self, batch: Columns) -> dict[str, Any]:
        return to_tensors(self.inner.collate_batch(batch))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"
