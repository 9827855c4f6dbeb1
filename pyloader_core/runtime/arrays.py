"""Numeric list columns become numpy arrays inside the worker.

A chunk of ``batch_encode`` output given as lists of lists (the seed's ``TextDataset`` style) costs
the consumer twice: unpickling millions of Python ints from the worker, then ``np.asarray`` over
them in every ``collate_batch``. Converted once where the chunk was made, it crosses processes as
one buffer and batches are cheap slices. Only what converts exactly is converted: rectangular
numbers (bools, ints that fit int64, floats) of one kind; strings, ragged rows, ``None`` and mixed
kinds stay lists, so ``collate_batch`` sees the same values either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["numeric_lists_to_arrays"]

_NUMBER_KINDS = "biuf"


def _element_kind(value: Any) -> str | None:
    """``"b"``, ``"i"`` or ``"f"`` for a Python or numpy scalar, or for a row of them (its first element)."""
    while isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMBER_KINDS:
        return "b" if value.dtype.kind == "b" else ("f" if value.dtype.kind == "f" else "i")
    return None


def _to_array(values: list[Any] | tuple[Any, ...]) -> np.ndarray | None:
    if not values:
        return None
    kind = _element_kind(values[0])
    if kind is None:
        return None
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return None  # ragged rows, ints beyond int64
    if arr.dtype.kind not in _NUMBER_KINDS or arr.shape[0] != len(values):
        return None
    # One kind throughout: [1, 2.5] would silently turn the ints into floats, [True, 2] the bools into ints.
    found = "i" if arr.dtype.kind == "u" else arr.dtype.kind
    return arr if found == kind else None


def numeric_lists_to_arrays(columns: dict[str, Any]) -> dict[str, Any]:
    """``columns`` with every exactly-convertible numeric list replaced by a numpy array.

    Example::

        numeric_lists_to_arrays({"ids": [[1, 2], [3, 4]], "text": ["a", "b"]})
        # {'ids': array([[1, 2], [3, 4]]), 'text': ['a', 'b']}
    """
    out = columns
    for key, values in columns.items():
        if isinstance(values, (list, tuple)):
            arr = _to_array(values)
            if arr is not None:
                if out is columns:
                    out = dict(columns)
                out[key] = arr
    return out
