"""Counters a loader keeps while it runs; :meth:`LoaderStats.snapshot` is what ``loader.stats()`` returns."""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any

from pyloader_core.skips import SkippedItem

__all__ = ["LoaderStats"]

logger = logging.getLogger(__name__)

#: How many skipped locations are kept (and logged one by one); the rest are only counted.
MAX_SKIP_LOCATIONS = 20


@dataclasses.dataclass
class LoaderStats:
    """Running totals, updated only by the consumer's thread.

    Example::

        loader.stats()["skipped_count"]
    """

    samples: int = 0
    batches: int = 0
    units: int = 0
    bytes_read: int = 0
    wait_s: float = 0.0
    skipped_count: int = 0
    skipped_batches: int = 0
    empty_batches: int = 0  # batches whose every record was skipped (yielded empty with several ranks)
    dropped_samples: int = 0
    skipped: list[SkippedItem] = dataclasses.field(default_factory=list)
    worker_busy_s: dict[int, float] = dataclasses.field(default_factory=lambda: collections.defaultdict(float))
    in_flight: int = 0
    epoch: int = -1  # 0-based epoch of the batch last yielded
    num_workers: int = 0

    def add_skipped(self, items: list[SkippedItem]) -> None:
        for item in items:
            self.skipped_count += item.records
            if len(self.skipped) < MAX_SKIP_LOCATIONS:
                self.skipped.append(item)
                logger.warning("skipped %s: %s", item.location(), item.reason)
            elif len(self.skipped) == MAX_SKIP_LOCATIONS and self.skipped_count == MAX_SKIP_LOCATIONS + 1:
                logger.warning("more records skipped; only counting from now on (see loader.stats())")

    def snapshot(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "batches": self.batches,
            "units": self.units,
            "bytes_read": self.bytes_read,
            "wait_s": self.wait_s,
            "skipped_count": self.skipped_count,
            "skipped_batches": self.skipped_batches,
            "empty_batches": self.empty_batches,
            "skipped": [dataclasses.asdict(i) for i in self.skipped],
            "dropped_samples": self.dropped_samples,
            "worker_busy_s": dict(self.worker_busy_s),
            "in_flight": self.in_flight,
            "epoch": self.epoch,
            "num_workers": self.num_workers,
        }
