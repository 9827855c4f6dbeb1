"""Estimating what chunks cost in memory, and turning a byte budget into a cap on chunks in flight."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MemoryBudget", "footprint", "release_free_memory"]

_SAMPLE = 32  # elements measured per list column; the rest are assumed alike
_INNER_SAMPLE = 16  # elements measured inside each sampled row (a list, tuple or dict)
_SHARED = (bool, type(None))  # singletons: a reference costs nothing more


def _scalar_bytes(v: Any) -> int:
    """Bytes ``v`` takes of its own; 0 for objects every reference shares (small ints, bools, None)."""
    if isinstance(v, _SHARED) or (type(v) is int and -5 <= v <= 256):
        return 0
    if isinstance(v, np.ndarray):
        return sys.getsizeof(v) if v.base is None else sys.getsizeof(v) + v.nbytes  # getsizeof counts owned data
    size = sys.getsizeof(v)
    return (size + 15) & ~15 if size <= 512 else size  # Python's small-object allocator rounds up to 16 bytes


def _row_bytes(v: Any) -> int:
    """Bytes of one element of a list column, one level into rows (lists, tuples) and records (dicts)."""
    if isinstance(v, dict):
        values: Sequence[Any] = list(v.values())
    elif isinstance(v, (list, tuple)):
        values = v
    else:
        return _scalar_bytes(v)
    total = sys.getsizeof(v)
    n = len(values)
    if n:
        step = max(1, n // _INNER_SAMPLE)
        sample = values[::step][:_INNER_SAMPLE]
        total += sum(_scalar_bytes(x) for x in sample) * n // len(sample)
    return total


def _list_bytes(values: Sequence[Any]) -> int:
    n = len(values)
    total = sys.getsizeof(values)
    if n == 0:
        return total
    step = max(1, n // _SAMPLE)
    sample = values[::step][:_SAMPLE]
    return total + sum(_row_bytes(v) for v in sample) * n // len(sample)


def footprint(columns: dict[str, Any] | None) -> int:
    """Approximate bytes held by ``columns`` (exact for numpy arrays, sampled for lists).

    List columns are sampled one level deep: the rows of a list of lists, the values of a list of
    records (dicts), the strings of a list of texts. Objects Python shares between all their uses
    (small ints, ``True``, ``None``) cost nothing. Memory-mapped arrays count too: their pages become
    resident as soon as they are touched.

    Example::

        footprint({"x": np.zeros(1000)})  # 8000
    """
    if not columns:
        return 0
    total = 0
    for values in columns.values():
        if isinstance(values, np.ndarray):
            total += values.nbytes
        else:
            try:
                total += _list_bytes(values)
            except TypeError:
                total += sys.getsizeof(values)
    return total


def _load_malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or ``None`` (another libc, no ctypes, not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only (other C libraries: no such call)
            return None
        trim = libc.malloc_trim
    except Exception:  # noqa: BLE001 - no C library to speak to: nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim: Any = None
_trim_loaded = False


def release_free_memory() -> None:
    """Hand memory that ``free`` kept in the C heap back to the OS (glibc's ``malloc_trim(0)``); never fails.

    With thread workers, each worker allocates its chunks in its own glibc arena, and what the
    consumer frees goes back to that arena, not to the OS: RSS then holds the sum of every arena's
    peak rather than what the loader holds now. Called once per chunk while ``max_memory`` applies
    (a fraction of a millisecond when there is nothing to return, some milliseconds when there is).
    A no-op where the C library is not glibc.
    """
    global _malloc_trim, _trim_loaded
    if not _trim_loaded:
        _malloc_trim, _trim_loaded = _load_malloc_trim(), True
    if _malloc_trim is not None:
        try:
            _malloc_trim(0)
        except Exception:  # noqa: BLE001 - memory hygiene must never break loading
            _malloc_trim = None


class MemoryBudget:
    """Caps chunks in flight so that what the loader holds stays within ``budget`` bytes.

    What the loader holds at most: every worker busy with a chunk (its raw read, its encoded form,
    and the ``batch_encode`` call in progress), the finished chunks waiting in flight (encoded), and
    the chunks the consumer is batching from (the shuffle window, plus one). Sizes are the largest
    seen so far, so one big chunk makes the loader more careful from then on, never less.

    ``step`` is what one ``batch_encode`` call returns (encoded, as arrays): while the worker makes
    it, the numbers may exist as Python lists too, which cost up to ``LISTS_FACTOR`` times the arrays
    they become (an 8-byte reference and a 32-byte object per number, against 8 bytes).

    Example::

        budget = MemoryBudget(2 << 30, workers=2, window=1)
        budget.observe(raw=300 << 20, encoded=100 << 20)
        budget.cap(max_queue_size=32)  # 14
    """

    LISTS_FACTOR = 5

    def __init__(self, budget: int, *, workers: int, window: int) -> None:
        self.budget = budget
        self.workers = max(1, workers)
        self.window = max(1, window)
        self.raw = 0
        self.encoded = 0
        self.step = 0

    def observe(self, raw: int, encoded: int, step: int = 0) -> None:
        self.raw = max(self.raw, raw)
        self.encoded = max(self.encoded, encoded)
        self.step = max(self.step, step)

    def cap(self, max_queue_size: int) -> int:
        """Chunks that may be in flight now (at least 1, so the loader always makes progress)."""
        if self.encoded == 0 and self.raw == 0:
            return min(max_queue_size, self.workers)  # nothing measured yet: one chunk per worker
        per_chunk = max(self.encoded, 1)
        working = self.raw + self.encoded + self.LISTS_FACTOR * self.step  # one busy worker at its peak
        held = self.workers * working + (self.window + 1) * self.encoded
        spare = self.budget - held
        return max(1, min(max_queue_size, self.workers + int(spare // per_chunk)))
