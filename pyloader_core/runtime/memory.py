"""Estimating what chunks cost in memory, and turning a byte budget into a cap on chunks in flight."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MemoryBudget", "footprint"]

_SAMPLE = 32  # elements measured per list column; the rest are assumed alike


def _list_bytes(values: Sequence[Any]) -> int:
    n = len(values)
    total = sys.getsizeof(values)
    if n == 0:
        return total
    step = max(1, n // _SAMPLE)
    sample = values[::step][:_SAMPLE]
    per_item = 0
    for v in sample:
        per_item += sys.getsizeof(v)
        if isinstance(v, (list, tuple)) and v:
            per_item += len(v) * sys.getsizeof(v[0])
        elif isinstance(v, np.ndarray):
            per_item += v.nbytes
    return total + per_item * n // len(sample)


def footprint(columns: dict[str, Any] | None) -> int:
    """Approximate bytes held by ``columns`` (exact for numpy arrays, sampled for lists).

    Memory-mapped arrays count too: their pages become resident as soon as they are touched.

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


class MemoryBudget:
    """Caps chunks in flight so that what the loader holds stays within ``budget`` bytes.

    What the loader holds at most: every worker busy with a chunk (its raw read plus its encoded
    form), the finished chunks waiting in flight (encoded), and the chunks the consumer is batching
    from (the shuffle window, plus one). Sizes are the largest seen so far, so one big chunk makes the
    loader more careful from then on, never less.

    Example::

        budget = MemoryBudget(2 << 30, workers=2, window=1)
        budget.observe(raw=300 << 20, encoded=100 << 20)
        budget.cap(max_queue_size=32)  # 14
    """

    def __init__(self, budget: int, *, workers: int, window: int) -> None:
        self.budget = budget
        self.workers = max(1, workers)
        self.window = max(1, window)
        self.raw = 0
        self.encoded = 0

    def observe(self, raw: int, encoded: int) -> None:
        self.raw = max(self.raw, raw)
        self.encoded = max(self.encoded, encoded)

    def cap(self, max_queue_size: int) -> int:
        """Chunks that may be in flight now (at least 1, so the loader always makes progress)."""
        if self.encoded == 0 and self.raw == 0:
            return min(max_queue_size, self.workers)  # nothing measured yet: one chunk per worker
        per_chunk = max(self.encoded, 1)
        held = self.workers * (self.raw + self.encoded) + (self.window + 1) * self.encoded
        spare = self.budget - held
        return max(1, min(max_queue_size, self.workers + int(spare // per_chunk)))
