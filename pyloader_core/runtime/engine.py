"""The consumer side: bounded in-flight windows, ordered reassembly, batches joined across windows.

:class:`BatchStream` submits the plan's windows (one chunk, or ``shuffle_buffer`` chunks mixed) to a
:class:`WorkerPool` (never more than ``max_queue_size`` unconsumed), takes results back in *plan
order* whatever order they finish in, and collates the batches the workers encoded. A batch that
spans two windows is joined here from the raw tail of one and the raw head of the next and encoded
here (one batch per window boundary; see :mod:`.execute`). Errors that workers sent back as values
are raised here, in the consumer's thread, at their place in the stream.

The pass's first window sends its first batch ahead (:data:`LEAD_BATCHES`), so the first batch waits
for one read and one ``batch_encode``, not for the whole window: one part more, from the same worker
and in order, before the window's own result.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.options import LoaderOptions
from pyloader_core.reader import Columns, DataReader
from pyloader_core.runtime.autotune import WorkerAutoscaler
from pyloader_core.runtime.collating import CollateStage
from pyloader_core.runtime.execute import WindowResult, WindowWork, describe_work, run_window
from pyloader_core.runtime.keeper import PoolKeeper
from pyloader_core.runtime.launch import resolve_start_method
from pyloader_core.runtime.memory import MemoryBudget, release_free_memory
from pyloader_core.runtime.plan import EpochPlan
from pyloader_core.runtime.position import Position
from pyloader_core.runtime.pools import WorkerPool, make_pool
from pyloader_core.runtime.progress import ProgressBar
from pyloader_core.runtime.schema import SchemaGuard
from pyloader_core.runtime.stats import LoaderStats
from pyloader_core.runtime.windows import AUTO_QUEUE_LIMIT, counted, length, queue_cap, window_planned, window_size
from pyloader_core.runtime.worker_loop import Task, WorkerSpec

__all__ = ["BatchStream"]

logger = logging.getLogger(__name__)

#: Batches a pass's first window sends ahead of the rest: the first batch waits for one chunk's read and
#: one batch_encode, not for the whole chunk's batches.
LEAD_BATCHES = 1

_pass_ids = itertools.count(1)  # every pass tags its tasks, so a kept pool never feeds one pass another's


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
        count: Callable[[int, str], int | None] | None = None,
    ) -> None:
        # Numeric lists become arrays in the workers unless the collator asks for lists (keep_lists).
        self._spec = WorkerSpec(
            reader, dataset, skip=options.on_error == "skip", to_arrays=not getattr(collator, "keep_lists", False)
        )
        self._options = options
        self._batch_size = batch_size
        self._plan_makers = plans
        self._plans: dict[int, EpochPlan] = {}
        self._works: dict[int, list[WindowWork]] = {}  # plan number -> its windows built so far
        # A file's sample count when it comes cheaply, else None (DataLoader.count_file; cached there).
        self._count: Callable[[int, str], int | None] = count if count is not None else (lambda index, path: None)
        self._stats = stats
        self._pool: WorkerPool | None = None
        self._closed = False
        self._results: dict[tuple[int, int], WindowResult] = {}  # by (plan number, window)
        self._leads: dict[tuple[int, int], WindowResult] = {}  # parts sent ahead of those results
        self._lead = 0  # batches the pass's first window sends ahead (workers only)
        self._pass_id = next(_pass_ids)
        self._submit_iter: Iterator[Any] | None = None
        self._in_flight = 0
        self._start = start
        self._progress_total = progress_total
        self._keeper = keeper
        self._failed = False
        self._taken = 0  # units this pass has taken from the pool
        self._schema = SchemaGuard(skip=options.on_error == "skip", stats=stats)
        self._stage = CollateStage(collator, self._spec, options, self._schema, stats)
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

    def _num_windows(self, plan: EpochPlan) -> int:
        return -(-len(plan.units) // window_size(plan))

    def _window(self, i: int, w: int) -> WindowWork | None:
        """Window ``w`` of plan ``i`` with where its batches start, built once (``None``: before a resume point).

        The start of window ``w`` in the epoch's stream is the planned size of the windows before it:
        from the plan when it was built from counts, else from each file's count, asked for here,
        just before the window is submitted (so the first batch never waits for a counting pass).
        """
        works = self._works.setdefault(i, [])
        plan = self._plan(i)
        size = window_size(plan)
        while len(works) <= w:
            k = len(works)
            units = list(plan.units[k * size : (k + 1) * size])
            for j, u in enumerate(units):
                if u.expected is None and u.stop is None:
                    units[j] = dataclasses.replace(u, expected=self._count(u.file_index, u.path))
            before = works[-1] if works else None
            if before is None:
                position: int | None = 0
            elif before.start is None or not counted(before.units):
                position = None
            else:
                position = before.start + window_planned(before)
            first = self._first_window(i, plan)
            start = self._start
            skip = start.offset if i == 0 and k == first and start is not None and start.epoch == plan.epoch else 0
            works.append(WindowWork(
                tuple(units), k, self._batch_size, plan.window_seed(k) if len(units) > 1 else None, skip,
                None if position is None or not counted(units) else position + skip,
            ))
        return works[w] if w >= self._first_window(i, plan) else None

    def _windows(self, i: int, plan: EpochPlan) -> Iterator[WindowWork]:
        """Plan ``i``'s windows from its first (after a resume position)."""
        for w in range(self._first_window(i, plan), self._num_windows(plan)):
            work = self._window(i, w)
            assert work is not None
            yield work

    def _tasks(self) -> Iterator[Task]:
        for i in range(len(self._plan_makers)):
            # Windows before a resume position are never submitted, so never read.
            for work in self._windows(i, self._plan(i)):
                if self._lead:  # the first batch need not wait for its whole window (see execute.run_window)
                    work, self._lead = dataclasses.replace(work, lead=self._lead), 0
                yield Task(self._pass_id, (i, work.window), work)

    def _queue_cap(self) -> int:
        """Chunks allowed in flight now (see :func:`.windows.queue_cap`)."""
        assert self._pool is not None
        o = self._options
        return queue_cap(self._pool.num_workers, self._taken, o.worker_type, o.max_queue_size, self._budget)

    def _maybe_grow(self, waited: float) -> None:
        """``num_workers="auto"``: add a worker while the consumer is input-bound and every worker busy."""
        pool, scaler = self._pool, self._autoscaler
        assert pool is not None and scaler is not None
        scaler.record(waited)
        if not scaler.should_grow(pool.num_workers, busy=self._in_flight >= pool.num_workers):
            return
        if self._budget is not None and self._budget.cap(AUTO_QUEUE_LIMIT) <= pool.num_workers + 1:
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
        result = run_window(s.reader, s.dataset, task.work, worker=-1, skip=s.skip, to_arrays=s.to_arrays)
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

    def _take(self, key: tuple[int, int]) -> WindowResult:
        """The result of window ``key`` = (plan number, window), waiting for it if needed (plan order)."""
        self._top_up()
        assert self._pool is not None
        waited = 0.0
        while key not in self._results and key not in self._leads:
            start = time.perf_counter()
            result = self._pool.get()
            waited += time.perf_counter() - start
            if result.pass_id != self._pass_id:
                continue  # a kept pool finishing a task of an abandoned pass: dropped, memory freed
            if result.lead:
                self._leads[result.key] = result
                continue
            if self._budget is not None:
                step = result.encoded_bytes // max(1, len(result.batches))  # one batch_encode call's output
                self._budget.observe(result.raw_bytes, result.encoded_bytes, step)
            self._results[result.key] = result
        self._stats.wait_s += waited
        if key in self._leads:  # the window is still in flight: its result follows from the same worker
            return self._leads.pop(key)
        self._taken += 1
        result = self._results.pop(key)
        self._in_flight -= 1
        if self._budget is not None:
            # What a worker freed after its chunk, and the consumer's last chunk, back to the OS (per chunk):
            # RSS then follows what the budget counts, not every thread arena's peak.
            release_free_memory()
        if self._autoscaler is not None:
            self._maybe_grow(waited)
        self._stats.num_workers = self._pool.num_workers
        self._top_up()  # keep the workers busy while this window is consumed
        self._account(result)
        self._schema.check_read(result)
        return result

    def _account(self, result: WindowResult) -> None:
        stats = self._stats
        stats.units += 1
        stats.bytes_read += result.nbytes
        stats.worker_busy_s[result.worker] += result.busy_s
        if result.skipped:
            stats.add_skipped(result.skipped)
        if result.error is not None:
            exc = result.error
            work = result.work
            kind = {"ThreadPool": "worker thread ", "ProcessPool": "worker process "}.get(type(self._pool).__name__)
            # worker -1: run here while spawned workers start; an InlinePool (num_workers=0) runs here too.
            who = "the consumer thread" if result.worker < 0 or kind is None else f"{kind}{result.worker}"
            exc.add_note(
                f"PyLoader: {result.stage} failed on {describe_work(work)} (epoch {work.epoch}, window "
                f"{work.window}, {who})"
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
            # A task is a whole window (mixed in the worker), so its measured sizes already cover it:
            # the consumer holds one window's batches at a time.
            self._budget = MemoryBudget(int(o.max_memory), workers=workers, window=1)

        def make() -> WorkerPool:
            return make_pool(workers, o.worker_type, self._spec, start_method=o.start_method, timeout=o.timeout)

        self._make_pool = make
        self._lead = LEAD_BATCHES if workers > 0 else 0
        self._submit_iter = self._tasks()
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
                        bar.update(self._stage.last_batch_size, 1, plan.epoch + 1, self._in_flight)
                    yield batch
                self._plans.pop(i, None)
                if self._stats.skipped_count:
                    logger.info("epoch %d done; %d records skipped so far", plan.epoch, self._stats.skipped_count)
            if bar is not None:
                bar.finish()  # every batch was yielded: 100%, whatever the estimated total
        except GeneratorExit:
            raise  # the consumer stopped early (break, close): the pool is fine
        except BaseException:
            self._failed = True  # never hand a pool that just failed to another pass
            raise
        finally:
            if bar is not None:
                bar.close()
            self.close()

    def _epoch(self, i: int, plan: EpochPlan) -> Iterator[Any]:
        """Plan ``i``'s batches: each window's own, and those joined across windows from raw heads and tails."""
        windows = list(range(self._first_window(i, plan), self._num_windows(plan)))
        pending: list[Columns] = []  # raw samples of the batch being joined across windows
        sources: list[str] = []  # the windows they come from
        pending_planned = 0
        work: WindowWork | None = None
        for n, w in enumerate(windows):
            result = self._take((i, w))
            work = result.work
            position = work.offset
            if result.head_planned:
                pending.append(result.head or {})
                sources.append(describe_work(work))
                pending_planned += result.head_planned
                position += result.head_planned
                if pending_planned == self._batch_size:  # the head ended on a batch boundary
                    batch = self._stage.joined(pending, sources, work.epoch)
                    pending, sources, pending_planned = [], [], 0
                    self.position = Position(plan.epoch, work.window, position)
                    yield from self._stage.emit(batch)
            last = n == len(windows) - 1
            source = describe_work(work)
            while True:
                for k, (encoded, size) in enumerate(zip(result.batches, result.batch_planned)):
                    position += size
                    if (last and not result.lead and k == len(result.batches) - 1 and size < self._batch_size
                            and self._options.drop_last):
                        self._stats.dropped_samples += length(encoded)
                        continue
                    batch = self._stage.collate(encoded, source)
                    self.position = Position(plan.epoch, work.window, position)
                    yield from self._stage.emit(batch)
                if not result.lead:
                    break
                result = self._take((i, w))  # the rest of the window, after the part it sent ahead
            if result.tail_planned:
                pending, sources, pending_planned = [result.tail or {}], [describe_work(work)], result.tail_planned
            del result  # the window's chunks are held by nothing else now
        if pending_planned and work is not None:
            if self._options.drop_last:
                self._stats.dropped_samples += sum(length(p) for p in pending)
                return
            batch = self._stage.joined(pending, sources, work.epoch)
            self.position = Position(plan.epoch, work.window, work.offset + window_planned(work))
            yield from self._stage.emit(batch)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers and drop buffered chunks; idempotent."""
        self._closed = True
        pool, self._pool = self._pool, None
        self._results.clear()
        self._leads.clear()
        if pool is None:
            return
        if self._keeper is not None:
            self._keeper.release(pool, reusable=not self._failed)
        else:
            pool.close()

    def workers_alive(self) -> int:
        return 0 if self._pool is None else self._pool.alive()
