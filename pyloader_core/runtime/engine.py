"""The consumer side: bounded in-flight units, ordered reassembly, shuffle windows, batching.

:class:`BatchStream` submits units to a :class:`WorkerPool` (never more than ``max_queue_size``
unconsumed), takes results back in *plan order* whatever order they finish in, mixes shuffle windows,
cuts full batches across chunk boundaries and collates them. Errors that workers sent back as values
are raised here, in the consumer's thread, at their place in the stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core.runtime.autotune import WorkerAutoscaler
from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.errors import DataFormatError
from pyloader_core.runtime.execute import UnitResult, describe, run_unit, take
from pyloader_core.runtime.keeper import PoolKeeper
from pyloader_core.runtime.memory import MemoryBudget
from pyloader_core.options import LoaderOptions
from pyloader_core.plan import EpochPlan
from pyloader_core.progress import ProgressBar
from pyloader_core.reader import Columns, DataReader
from pyloader_core.skips import SkippedItem
from pyloader_core.runtime.stats import LoaderStats
from pyloader_core.runtime.launch import resolve_start_method
from pyloader_core.runtime.pools import WorkerPool, make_pool
from pyloader_core.runtime.worker_loop import Task, WorkerSpec

__all__ = ["BatchStream", "Piece", "Position"]

logger = logging.getLogger(__name__)

_AUTO_QUEUE_LIMIT = 64  # chunks in flight at most when max_memory decides
_pass_ids = itertools.count(1)  # every pass tags its tasks, so a kept pool never feeds one pass another's


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a stream stands: the next sample is ``offset`` into shuffle window ``window`` of ``epoch``.

    A window is ``shuffle_buffer`` consecutive units of the plan (one unit without a buffer). This is
    all a checkpoint needs: the plan and every shuffle are re-derived from the seed, and windows
    before ``window`` are never read again.
    """

    epoch: int
    window: int = 0
    offset: int = 0


@dataclasses.dataclass
class Piece:
    """Some samples of one encoded chunk (or shuffle window): ``selection`` of ``columns``.

    ``window`` is the plan window the samples come from and ``base`` the offset of the first one in it.
    """

    columns: Columns
    selection: slice | np.ndarray
    source: str
    window: int = 0
    base: int = 0

    def __len__(self) -> int:
        if isinstance(self.selection, slice):
            return self.selection.stop - self.selection.start
        return len(self.selection)


class BatchStream:
    """Batches of the epochs ``plans`` yields, read by a pool of background workers.

    Not used directly: :class:`~pyloader_core.DataLoader` builds one per iteration. The pool starts
    on the first ``next()`` and stops on exhaustion, error, or :meth:`close`.
    """

    def __init__(
        self,
        *,
        reader: DataReader,
        dataset: Dataset,
        collator: DataCollator,
        options: LoaderOptions,
        batch_size: int,
        plans: Sequence[Callable[[], EpochPlan]],
        stats: LoaderStats,
        start: Position | None = None,
        progress_total: int | None = None,
        keeper: PoolKeeper | None = None,
    ) -> None:
        self._collator = collator
        # Numeric lists become arrays in the workers unless the collator asks for lists (keep_lists).
        self._spec = WorkerSpec(
            reader, dataset, skip=options.on_error == "skip", to_arrays=not getattr(collator, "keep_lists", False)
        )
        self._options = options
        self._batch_size = batch_size
        self._plan_makers = plans
        self._plans: dict[int, EpochPlan] = {}
        self._stats = stats
        self._pool: WorkerPool | None = None
        self._closed = False
        self._results: dict[tuple[int, int], UnitResult] = {}  # by (plan number, unit index)
        self._pass_id = next(_pass_ids)
        self._submit_iter: Iterator[Any] | None = None
        self._in_flight = 0
        self._start = start
        self._progress_total = progress_total
        self._keeper = keeper
        self._failed = False
        self._taken = 0  # units this pass has taken from the pool
        self._last_batch_size = 0
        self._schema: tuple[list[str], str] | None = None  # keys of the first chunk, and its source
        self._budget: MemoryBudget | None = None
        self._make_pool: Callable[[], WorkerPool] | None = None
        self._autoscaler: WorkerAutoscaler | None = None
        self.epoch = -1  # epoch (0-based) of the batch last yielded
        self.position: Position | None = start  # where the next batch starts

    # -- pool and submission ---------------------------------------------------------------

    def _plan(self, i: int) -> EpochPlan:
        if i not in self._plans:
            self._plans[i] = self._plan_makers[i]()
        return self._plans[i]

    def _first_window(self, i: int, plan: EpochPlan) -> int:
        """The window plan ``i`` starts at: a resume position applies to the first plan only."""
        start = self._start
        return start.window if i == 0 and start is not None and start.epoch == plan.epoch else 0

    def _start_offset(self, i: int, plan: EpochPlan, window: int) -> int:
        start = self._start
        if i == 0 and start is not None and start.epoch == plan.epoch and window == start.window:
            return start.offset
        return 0

    def _units(self) -> Iterator[Task]:
        for i in range(len(self._plan_makers)):
            plan = self._plan(i)
            # Windows before a resume position are never submitted, so never read.
            for unit in plan.units[self._first_window(i, plan) * _window_size(plan) :]:
                yield Task(self._pass_id, (i, unit.index), unit)

    def _queue_cap(self) -> int:
        """Chunks allowed in flight now: ``max_queue_size``, or less to stay within ``max_memory``."""
        assert self._pool is not None
        if self._taken == 0 and self._options.worker_type == "thread":
            # The first chunk alone: threads share the GIL, and several first chunks read at once
            # would all arrive late. The queue fills as soon as the first batch is out.
            return 1
        size = self._options.max_queue_size
        if size != "auto":
            cap = int(size)
        elif self._budget is not None:
            cap = _AUTO_QUEUE_LIMIT  # the budget decides
        else:
            cap = max(2, 2 * self._pool.num_workers)
        return cap if self._budget is None else self._budget.cap(cap)

    def _maybe_grow(self, waited: float) -> None:
        """``num_workers="auto"``: add a worker while the consumer is input-bound and every worker busy."""
        pool, scaler = self._pool, self._autoscaler
        assert pool is not None and scaler is not None
        scaler.record(waited)
        if not scaler.should_grow(pool.num_workers, busy=self._in_flight >= pool.num_workers):
            return
        if self._budget is not None and self._budget.cap(_AUTO_QUEUE_LIMIT) <= pool.num_workers + 1:
            return  # another worker's chunk would not fit in max_memory
        pool.grow()
        if self._budget is not None:
            self._budget.workers = pool.num_workers
        logger.debug("input-bound (waited %.0f%% of the time): now %d workers", 100 * scaler.wait_fraction(), pool.num_workers)

    def _start_pool(self) -> None:
        if self._keeper is not None:
            self._pool, _ = self._keeper.acquire(self._make_pool)
        else:
            self._pool = self._make_pool()
        if self._budget is not None:
            self._budget.workers = max(1, self._pool.num_workers)

    def _run_here(self, task: Task) -> None:
        """Run ``task`` in the consumer's thread (while spawned workers start)."""
        s = self._spec
        result = run_unit(s.reader, s.dataset, task.unit, worker=-1, skip=s.skip, to_arrays=s.to_arrays)
        result.pass_id, result.key = task.pass_id, task.key
        self._results[task.key] = result

    def _top_up(self) -> None:
        assert self._submit_iter is not None
        if self._pool is None:  # deferred start: first chunk here, then the workers
            task = next(self._submit_iter, None)
            if task is not None:
                self._in_flight += 1
                self._run_here(task)
            self._start_pool()
        assert self._pool is not None
        cap = self._queue_cap()
        while self._in_flight < cap:
            task = next(self._submit_iter, None)
            if task is None:
                break
            self._in_flight += 1
            self._pool.submit(task)
        self._stats.in_flight = self._in_flight

    def _take(self, key: tuple[int, int]) -> UnitResult:
        """The result of unit ``key`` = (plan number, unit index), waiting for it if needed (plan order)."""
        self._top_up()
        assert self._pool is not None
        waited = 0.0
        while key not in self._results:
            start = time.perf_counter()
            result = self._pool.get()
            waited += time.perf_counter() - start
            if result.pass_id != self._pass_id:
                continue  # a kept pool finishing a task of an abandoned pass: dropped, memory freed
            if self._budget is not None:
                self._budget.observe(result.raw_bytes, result.encoded_bytes)
            self._results[result.key] = result
        self._stats.wait_s += waited
        self._taken += 1
        result = self._results.pop(key)
        self._in_flight -= 1
        if self._autoscaler is not None:
            self._maybe_grow(waited)
        self._stats.num_workers = self._pool.num_workers
        self._top_up()  # keep the workers busy while this chunk is consumed
        self._account(result)
        self._check_schema(result)
        return result

    def _check_schema(self, result: UnitResult) -> None:
        """Every chunk must encode to the same keys as the first one (schema drift is an error or a skip)."""
        if not result.num_samples or result.columns is None:
            return
        keys = sorted(result.columns)
        if self._schema is None:
            self._schema = (keys, describe(result.unit))
            return
        if keys == self._schema[0]:
            return
        message = f"schema drift: keys {keys} differ from {self._schema[0]} of {self._schema[1]}"
        if self._options.on_error != "skip":
            raise DataFormatError(message, describe(result.unit))
        self._stats.add_skipped([SkippedItem(result.unit.path, None, message)])
        result.columns, result.num_samples = {}, 0

    def _account(self, result: UnitResult) -> None:
        stats = self._stats
        stats.units += 1
        stats.bytes_read += result.nbytes
        stats.worker_busy_s[result.worker] += result.busy_s
        if result.skipped:
            stats.add_skipped(result.skipped)
        if result.error is not None:
            exc = result.error
            unit = result.unit
            who = "the consumer thread" if result.worker < 0 else f"worker {result.worker}"
            exc.add_note(
                f"PyLoader: {result.stage} failed on {describe(unit)} (epoch {unit.epoch}, unit {unit.index}, "
                f"{who})"
            )
            if result.remote_traceback:
                exc.add_note(f"Worker traceback:\n{result.remote_traceback}")
            raise exc

    # -- batching ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return self._run()

    def _run(self) -> Iterator[Any]:
        if self._closed:
            return
        o = self._options
        workers = 1 if o.num_workers == "auto" else int(o.num_workers)
        if o.num_workers == "auto":
            self._autoscaler = WorkerAutoscaler(max(1, os.cpu_count() or 1))
        if o.max_memory is not None:
            window = o.shuffle_buffer if o.shuffle_buffer > 1 else 1
            self._budget = MemoryBudget(int(o.max_memory), workers=workers, window=window)
        def make() -> WorkerPool:
            return make_pool(workers, o.worker_type, self._spec, start_method=o.start_method, timeout=o.timeout)

        self._make_pool = make
        self._submit_iter = self._units()
        # Spawned worker processes take a while to start (they import everything again). The consumer
        # then reads the first chunk while they boot, so the first batch comes as soon as one chunk is
        # read. Forked workers start in milliseconds: no chunk is read here.
        keeper_has_pool = self._keeper is not None and self._keeper.idle_workers() > 0
        slow_start = o.worker_type == "process" and workers > 0 and resolve_start_method(o.start_method) != "fork"
        if not (slow_start and not keeper_has_pool):
            self._start_pool()
        bar = ProgressBar(self._progress_total, "pyloader") if o.progress else None
        try:
            for i in range(len(self._plan_makers)):
                plan = self._plan(i)
                self._stats.dropped_samples += plan.dropped
                for batch in self._epoch(i, plan):
                    self.epoch = self._stats.epoch = plan.epoch
                    if bar is not None:
                        bar.update(self._last_batch_size, 1, plan.epoch + 1, self._in_flight)
                    yield batch
                self._plans.pop(i, None)
                if self._stats.skipped_count:
                    logger.info("epoch %d done; %d records skipped so far", plan.epoch, self._stats.skipped_count)
        except GeneratorExit:
            raise  # the consumer stopped early (break, close): the pool is fine
        except BaseException:
            self._failed = True  # never hand a pool that just failed to another pass
            raise
        finally:
            if bar is not None:
                bar.close()
            self.close()

    def _pieces(self, i: int, plan: EpochPlan) -> Iterator[Piece]:
        size = _window_size(plan)
        units = plan.units
        skip_to = self._first_window(i, plan)
        for w in range(skip_to, -(-len(units) // size)):
            results = [self._take((i, u.index)) for u in units[w * size : (w + 1) * size]]
            results = [r for r in results if r.num_samples > 0]
            if not results:
                continue
            if len(results) == 1:
                r = results[0]
                assert r.columns is not None
                piece = Piece(r.columns, slice(0, r.num_samples), describe(r.unit), w)
            else:
                merged, total = _concat([(r.columns, slice(0, r.num_samples), describe(r.unit)) for r in results])
                del results  # the window's chunks now live only in ``merged``
                perm = np.random.default_rng(plan.window_seed(w)).permutation(total)
                piece = Piece(merged, perm, f"shuffle window {w} of epoch {plan.epoch}", w)
            offset = self._start_offset(i, plan, w)
            if offset:
                piece = Piece(piece.columns, _sub(piece.selection, offset, len(piece)), piece.source, w, offset)
            yield piece

    def _epoch(self, i: int, plan: EpochPlan) -> Iterator[Any]:
        size = self._batch_size
        pending: list[Piece] = []
        count = 0
        for piece in self._pieces(i, plan):
            pos, n = 0, len(piece)
            while pos < n:
                step = min(size - count, n - pos)
                pending.append(
                    Piece(piece.columns, _sub(piece.selection, pos, pos + step), piece.source, piece.window, piece.base + pos)
                )
                pos += step
                count += step
                if count == size:
                    batch = self._collate(pending, count, plan.epoch)
                    self.position = _after(plan.epoch, pending[-1])
                    pending, count = [], 0
                    if batch is not None:
                        yield batch
        if count and not self._options.drop_last:
            batch = self._collate(pending, count, plan.epoch)
            self.position = _after(plan.epoch, pending[-1])
            if batch is not None:
                yield batch

    def _collate(self, pieces: list[Piece], count: int, epoch: int) -> Any:
        raw, _ = _concat([(p.columns, p.selection, p.source) for p in pieces])
        try:
            batch = self._collator.collate_batch(raw)
        except Exception as exc:
            sources = sorted({p.source for p in pieces})
            if self._options.on_error != "skip":
                exc.add_note(f"PyLoader: collate_batch failed on a batch of {count} samples from {sources}")
                raise
            self._stats.skipped_batches += 1
            self._stats.add_skipped([SkippedItem(s, None, f"collate_batch: {type(exc).__name__}: {exc}") for s in sources])
            return None
        self._stats.samples += count
        self._stats.batches += 1
        self._last_batch_size = count
        return batch

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers and drop buffered chunks; idempotent."""
        self._closed = True
        pool, self._pool = self._pool, None
        self._results.clear()
        if pool is None:
            return
        if self._keeper is not None:
            self._keeper.release(pool, reusable=not self._failed)
        else:
            pool.close()

    def workers_alive(self) -> int:
        return 0 if self._pool is None else self._pool.alive()


def _window_size(plan: EpochPlan) -> int:
    return plan.shuffle_buffer if plan.shuffle_buffer > 1 else 1


def _after(epoch: int, piece: Piece) -> Position:
    """The position just after the last sample of ``piece``."""
    return Position(epoch, piece.window, piece.base + len(piece))


def _sub(selection: slice | np.ndarray, a: int, b: int) -> slice | np.ndarray:
    if isinstance(selection, slice):
        return slice(selection.start + a, selection.start + b)
    return selection[a:b]


def _concat(parts: list[tuple[Columns, slice | np.ndarray, str]]) -> tuple[Columns, int]:
    """One set of columns from the selected samples of several chunks (a view when there is one slice)."""
    first_cols, _, first_src = parts[0]
    keys = list(first_cols)
    for cols, _, src in parts[1:]:
        if list(cols) != keys and set(cols) != set(keys):
            raise DataFormatError(
                f"batch_encode returned keys {sorted(cols)} for {src} but {sorted(keys)} for {first_src} (schema drift)"
            )
    if len(parts) == 1:
        cols, sel, _ = parts[0]
        out = take(cols, sel)
        return out, len(next(iter(out.values()))) if out else 0
    merged: Columns = {}
    for key in keys:
        chunks = [take({key: cols[key]}, sel)[key] for cols, sel, _ in parts]
        if all(isinstance(c, np.ndarray) for c in chunks):
            try:
                merged[key] = np.concatenate(chunks)
                continue
            except ValueError as exc:
                shapes = {src: c.shape[1:] for c, (_, _, src) in zip(chunks, parts)}
                raise DataFormatError(f"key {key!r} has different sample shapes across chunks {shapes}: {exc}") from None
        flat: list[Any] = []
        for c in chunks:
            flat.extend(c.tolist() if isinstance(c, np.ndarray) and c.dtype.kind in "OUS" else c)
        merged[key] = flat
    total = len(next(iter(merged.values()))) if merged else 0
    return merged, total
