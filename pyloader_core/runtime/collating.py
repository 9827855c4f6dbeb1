"""The consumer's last stage: encoded batches collated, batches joined across windows, empty batches owed.

:class:`~.engine.BatchStream` hands every batch through one :class:`CollateStage`. A batch whose
records were all skipped yields nothing on one rank, and on several ranks an empty batch with the
keys and dtypes of the last real one (so every rank yields as many batches and DDP never waits);
before any real batch there is nothing to copy them from, so such batches are owed and yielded
just before the first real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyloader_core.collator import DataCollator
from pyloader_core.options import LoaderOptions
from pyloader_core.reader import Columns
from pyloader_core.runtime.execute import concat, encode_batch
from pyloader_core.runtime.schema import SchemaGuard
from pyloader_core.runtime.stats import LoaderStats
from pyloader_core.runtime.windows import length
from pyloader_core.runtime.worker_loop import WorkerSpec
from pyloader_core.skips import SkipLog, SkippedItem

__all__ = ["CollateStage"]


class CollateStage:
    """Collates a pass's batches in the consumer's thread, counting them in ``stats``.

    Example::

        stage = CollateStage(collator, spec, options, schema, stats)
        yield from stage.emit(stage.collate(encoded, "chunk-000.jsonl"))
    """

    def __init__(
        self, collator: DataCollator, spec: WorkerSpec, options: LoaderOptions, schema: SchemaGuard, stats: LoaderStats
    ) -> None:
        self._collator = collator
        self._spec = spec
        self._options = options
        self._schema = schema
        self._stats = stats
        self.last_batch_size = 0
        self._empty: Columns | None = None  # the latest batch with no sample: what an all-holes batch yields
        self._owed_empty = 0  # all-holes batches met before any real batch (several ranks: yielded later)

    def joined(self, parts: list[Columns], sources: list[str], epoch: int) -> Any:
        """Encode, here, the batch joined from the raw tail and head of neighbouring windows, and collate it."""
        raw = concat(parts, sources)
        if not raw:
            return self.collate({}, "")  # every record of the batch was bad
        log = SkipLog() if self._options.on_error == "skip" else None
        source = f"a batch joined across windows ({', '.join(sources)})"
        try:
            encoded = encode_batch(self._spec.dataset, raw, source, log, self._spec.to_arrays)
        except Exception as exc:
            exc.add_note(f"PyLoader: batch_encode failed on {source} (epoch {epoch}, the consumer thread)")
            raise
        finally:
            if log is not None and log.items:
                self._stats.add_skipped(log.items)
        return self.collate(encoded, source)

    def emit(self, batch: Any) -> Iterator[Any]:
        """``batch`` (none for ``None``), after the empty batches owed since before the first real one."""
        if batch is None:
            return
        while self._owed_empty and self._empty is not None:
            self._owed_empty -= 1
            self._stats.empty_batches -= 1  # counted when owed; collate counts it again
            yield self.collate({}, "")
        yield batch

    def collate(self, encoded: Columns, source: str) -> Any:
        """``collate_batch`` of one encoded batch (``None``: nothing to yield for it now)."""
        count = length(encoded)
        if count == 0:  # every record of the batch was bad
            self._stats.empty_batches += 1
            if self._options.world_size == 1:
                return None
            if self._empty is None:  # no batch yet to take keys and dtypes from: owed (see emit)
                self._owed_empty += 1
                return None
            encoded = {k: v[:0] for k, v in self._empty.items()}
            source = "an empty batch (every record of it was skipped)"
        else:
            self._empty = encoded  # sliced to no sample only if ever needed
        if not self._schema.batch_ok(encoded, source):
            return None
        try:
            batch = self._collator.collate_batch(encoded)
        except Exception as exc:
            if self._options.on_error != "skip":
                exc.add_note(f"PyLoader: collate_batch failed on a batch of {count} samples from {source}")
                raise
            self._stats.skipped_batches += 1
            self._stats.add_skipped([SkippedItem(source, None, f"collate_batch: {type(exc).__name__}: {exc}", count)])
            return None
        self._stats.samples += count
        self._stats.batches += 1
        self.last_batch_size = count
        return batch
