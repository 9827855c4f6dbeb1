"""What torch worker processes counted, in shared memory the training process reads (``ds.stats()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pyloader_core import DataLoader

__all__ = ["SHARED_STATS", "WorkerStatsTable"]

#: Counters that torch worker processes publish to the training process (shared memory), per worker.
SHARED_STATS = ("samples", "batches", "skipped_count", "skipped_batches", "dropped_samples")


class WorkerStatsTable:
    """One row of :data:`SHARED_STATS` counters per torch worker, in shared memory: fresh worker copies add to it.

    Example::

        table = WorkerStatsTable(256)
        publish = table.publisher(loader, worker=1)   # in torch worker 1
        publish()                                     # after each batch
        table.add_to(loader.stats())                  # in the training process
    """

    def __init__(self, workers: int) -> None:
        self.rows = torch.zeros((workers, len(SHARED_STATS)), dtype=torch.int64).share_memory_()

    def publisher(self, loader: DataLoader, worker: int) -> Callable[[], None]:
        """A function that adds what ``loader`` counted since now to worker ``worker``'s row."""
        row = self.rows[worker]
        base = row.clone()
        since = loader.stats()
        first = torch.tensor([since[k] for k in SHARED_STATS], dtype=torch.int64)

        def publish() -> None:
            now = loader.stats()
            row.copy_(base + torch.tensor([now[k] for k in SHARED_STATS], dtype=torch.int64) - first)

        return publish

    def add_to(self, stats: dict[str, Any]) -> dict[str, Any]:
        """``stats`` (this process's) plus every worker's counters, and ``torch_workers``: each worker's own."""
        rows = self.rows.tolist()
        for j, key in enumerate(SHARED_STATS):
            stats[key] += sum(r[j] for r in rows)
        stats["torch_workers"] = {w: dict(zip(SHARED_STATS, r)) for w, r in enumerate(rows) if any(r)}
        return stats
