"""Schema drift: every window must read to the keys of the first, every batch encode to the keys of the first.

Drift is a :class:`~pyloader_core.DataFormatError` naming both sources; under ``on_error="skip"``
the drifting samples are counted as skipped instead (a window's become holes: its batches shrink,
none moves).
"""

from __future__ import annotations

from pyloader_core.errors import DataFormatError
from pyloader_core.reader import Columns
from pyloader_core.runtime.execute import WindowResult, describe_work
from pyloader_core.runtime.stats import LoaderStats
from pyloader_core.skips import SkippedItem

__all__ = ["SchemaGuard"]


class SchemaGuard:
    """The first window's raw keys and the first batch's encoded keys, and the checks against them.

    Example::

        guard = SchemaGuard(skip=False, stats=stats)
        guard.check_read(result)             # raises on drift from the first window's keys
        guard.batch_ok(encoded, "a.jsonl")   # True, or raises (False under skip)
    """

    def __init__(self, *, skip: bool, stats: LoaderStats) -> None:
        self._skip = skip
        self._stats = stats
        self._raw: tuple[tuple[str, ...], str] | None = None  # keys read_file gave the first window, its source
        self._encoded: tuple[list[str], str] | None = None  # keys of the first encoded batch, and its source
        self._encoded_keys: frozenset[str] = frozenset()

    def check_read(self, result: WindowResult) -> None:
        """Every window must read to the same keys as the first (under skip its samples become holes)."""
        if result.raw_keys is None:
            return
        source = describe_work(result.work)
        if self._raw is None:
            self._raw = (result.raw_keys, source)
            return
        if result.raw_keys == self._raw[0]:
            return
        message = f"schema drift: keys {list(result.raw_keys)} differ from {list(self._raw[0])} of {self._raw[1]}"
        if not self._skip:
            raise DataFormatError(message, source)
        self._stats.add_skipped([SkippedItem(source, None, message, result.samples)])
        result.head = {} if result.head_planned else None
        result.batches = [{} for _ in result.batches]
        result.tail = {} if result.tail_planned else None

    def batch_ok(self, batch: Columns, source: str) -> bool:
        """Every batch must encode to the same keys as the first one (drift: an error, or skipped)."""
        if self._encoded is not None and batch.keys() == self._encoded_keys:
            return True  # the per-batch path: one set comparison
        keys = sorted(batch)
        if self._encoded is None:
            self._encoded, self._encoded_keys = (keys, source), frozenset(keys)
            return True
        message = f"schema drift: keys {keys} differ from {self._encoded[0]} of {self._encoded[1]}"
        if not self._skip:
            raise DataFormatError(message, source)
        self._stats.add_skipped([SkippedItem(source, None, message, len(next(iter(batch.values()))))])
        return False
