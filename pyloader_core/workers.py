"""Worker pools: inline, threads and processes behind one interface.

A pool executes :class:`WorkUnit` s with :func:`run_unit` and hands back :class:`UnitResult` s in
completion order; ordering is the engine's job. ``submit`` never blocks (the engine caps how many
units are in flight) and ``get`` blocks on the event itself: a queue for threads, the result pipes
and the process sentinels for processes, so a dead process is noticed at once, never polled for.

Shutdown (:meth:`close`) is idempotent and always in the same order: set the stop flag, tell every
worker to stop, drain what they are still sending, join with a deadline, terminate then kill
stragglers, and remove shared-memory files nobody received.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from pyloader_core import shm
from pyloader_core.dataset import Dataset
from pyloader_core.errors import ConfigError, WorkerDiedError, WorkerError
from pyloader_core.execute import UnitResult, describe, run_unit
from pyloader_core.plan import WorkUnit
from pyloader_core.reader import DataReader

__all__ = ["InlinePool", "ProcessPool", "ThreadPool", "WorkerPool", "make_pool"]

logger = logging.getLogger(__name__)

#: How long ``close`` waits for worker threads (which cannot be killed) to finish their chunk.
JOIN_TIMEOUT_S = 5.0
#: How long ``close`` lets worker processes exit on their own before terminating them.
PROCESS_GRACE_S = 0.5

_pool_ids = itertools.count()


class WorkerPool(abc.ABC):
    """Runs work units in the background; see the module docstring."""

    num_workers: int

    @abc.abstractmethod
    def submit(self, unit: WorkUnit) -> None:
        """Queue ``unit``; never blocks."""

    @abc.abstractmethod
    def get(self) -> UnitResult:
        """The next finished unit, in completion order; blocks until one is ready."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every worker; idempotent."""

    def alive(self) -> int:
        """How many workers are running (for tests and stats)."""
        return 0

    def grow(self) -> None:
        """Add one worker (``num_workers="auto"``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add workers")

    def healthy(self) -> bool:
        """Every worker still running: the pool can serve another pass."""
        return self.alive() == self.num_workers

    def forget_pending(self) -> None:
        """Drop queued units that no worker has started (before the pool serves a new pass)."""


class InlinePool(WorkerPool):
    """``num_workers=0``: units run in the consumer's thread when their result is asked for.

    Example::

        pool = InlinePool(reader, dataset, skip=False)
    """

    num_workers = 0

    def __init__(self, reader: DataReader, dataset: Dataset, *, skip: bool) -> None:
        self._reader, self._dataset, self._skip = reader, dataset, skip
        self._pending: collections.deque[WorkUnit] = collections.deque()

    def submit(self, unit: WorkUnit) -> None:
        self._pending.append(unit)

    def get(self) -> UnitResult:
        return run_unit(self._reader, self._dataset, self._pending.popleft(), worker=0, skip=self._skip)

    def close(self) -> None:
        self._pending.clear()

    def healthy(self) -> bool:
        return True

    def forget_pending(self) -> None:
        self._pending.clear()


class ThreadPool(WorkerPool):
    """``num_workers`` daemon threads sharing one task queue (so a slow chunk never holds up others).

    Example::

        pool = ThreadPool(4, reader, dataset, skip=False)
    """

    def __init__(self, num_workers: int, reader: DataReader, dataset: Dataset, *, skip: bool) -> None:
        self.num_workers = num_workers
        self._tasks: queue.SimpleQueue[WorkUnit | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[UnitResult] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._closed = False
        self._pool_id = next(_pool_ids)
        self._args = (reader, dataset, skip, self._tasks, self._results, self._stop)
        self._threads: list[threading.Thread] = []
        for _ in range(num_workers):
            self._add_thread()

    def _add_thread(self) -> None:
        w = len(self._threads)
        thread = threading.Thread(
            target=_thread_main,
            args=(w, *self._args),
            name=f"pyloader-{self._pool_id}-worker-{w}",
            daemon=True,  # a worker stuck in user I/O must never block interpreter exit
        )
        thread.start()
        self._threads.append(thread)
        self.num_workers = len(self._threads)

    def grow(self) -> None:
        if not self._closed:
            self._add_thread()

    def healthy(self) -> bool:
        return not self._closed and super().healthy()

    def forget_pending(self) -> None:
        while True:
            try:
                self._tasks.get_nowait()
            except queue.Empty:
                return

    def submit(self, unit: WorkUnit) -> None:
        self._tasks.put(unit)

    def get(self) -> UnitResult:
        return self._results.get()

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            logger.warning("worker threads still busy in user code after %.0fs: %s", JOIN_TIMEOUT_S, stuck)


def _thread_main(
    worker: int,
    reader: DataReader,
    dataset: Dataset,
    skip: bool,
    tasks: queue.SimpleQueue[WorkUnit | None],
    results: queue.SimpleQueue[UnitResult],
    stop: threading.Event,
) -> None:
    while True:
        unit = tasks.get()
        if unit is None or stop.is_set():
            return
        results.put(run_unit(reader, dataset, unit, worker=worker, skip=skip))


class ProcessPool(WorkerPool):
    """``num_workers`` processes, each with its own duplex pipe; numeric arrays come back via shared memory.

    Units go to the worker with the fewest in flight. ``start_method`` defaults to ``"spawn"``, safe
    when the parent already runs torch or TensorFlow threads; the reader and dataset must then be
    picklable and their classes importable.

    Example::

        pool = ProcessPool(2, reader, dataset, skip=False, start_method="spawn")
    """

    def __init__(
        self, num_workers: int, reader: DataReader, dataset: Dataset, *, skip: bool, start_method: str = "spawn"
    ) -> None:
        self.num_workers = 0
        try:
            ctx = multiprocessing.get_context(start_method)
        except ValueError as exc:
            raise ConfigError(f"start_method {start_method!r} is not available here: {exc}") from None
        self._prefix = f"pyloader-{os.getpid()}-{next(_pool_ids)}"
        use_shm = shm.shm_available()
        if use_shm and shm.remove_orphans():
            logger.info("removed shared-memory files left by loaders that were killed")
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[Any] = []
        self._held: list[collections.deque[WorkUnit]] = []
        self._ready: collections.deque[UnitResult] = collections.deque()
        self._closed = False
        self._ctx, self._skip, self._use_shm = ctx, skip, use_shm
        self._payload: str | None = None
        try:
            self._payload = _write_payload(self._prefix, reader, dataset)
            for _ in range(num_workers):
                self._add_process()
        except BaseException:
            self.close()
            raise

    def grow(self) -> None:
        if not self._closed:
            self._add_process()

    def healthy(self) -> bool:
        return not self._closed and super().healthy()

    def _add_process(self) -> None:
        w, ctx = len(self._procs), self._ctx
        with _children_ignore_sigint():
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=_process_main,
                args=(w, child, self._payload, self._skip, f"{self._prefix}-{w}" if self._use_shm else None),
                name=f"{self._prefix}-worker-{w}",
                daemon=True,
            )
            try:
                proc.start()
            finally:
                child.close()
        self._conns.append(parent)
        self._procs.append(proc)
        self._held.append(collections.deque())
        self.num_workers = len(self._procs)

    def submit(self, unit: WorkUnit) -> None:
        w = min(range(self.num_workers), key=lambda i: len(self._held[i]))
        self._held[w].append(unit)
        try:
            self._conns[w].send(unit)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the worker died; get() reports it with its exit code

    def alive(self) -> int:
        return sum(p.is_alive() for p in self._procs)

    def get(self) -> UnitResult:
        while not self._ready:
            by_handle: dict[Any, int] = {}
            for w, conn in enumerate(self._conns):
                if self._held[w]:
                    by_handle[conn] = w
                    by_handle[self._procs[w].sentinel] = w
            if not by_handle:
                raise RuntimeError("ProcessPool.get() called with no unit in flight")
            for handle in multiprocessing.connection.wait(list(by_handle)):
                w = by_handle[handle]
                if handle is self._conns[w]:
                    self._receive(w)
                elif not self._conns[w].poll():
                    self._died(w)
        return self._ready.popleft()

    def _receive(self, w: int) -> None:
        try:
            result: UnitResult = self._conns[w].recv()
        except (EOFError, OSError):
            self._died(w)
            return
        if isinstance(result, _InitFailure):
            raise WorkerError(
                f"worker process {w} could not load the reader and dataset; with worker_type='process' their "
                f"classes must be importable in a fresh interpreter (defined in a module or under an "
                f"`if __name__ == '__main__':` guarded script):\n{result.traceback}"
            )
        self._held[w].remove(result.unit)
        if result.columns:
            result.columns = shm.attach(result.columns)
        self._ready.append(result)

    def _died(self, w: int) -> None:
        proc = self._procs[w]
        proc.join(JOIN_TIMEOUT_S)
        code = proc.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f" ({signal.Signals(-code).name})"
            except ValueError:
                pass
        unit = self._held[w][0]
        raise WorkerDiedError(
            f"worker process {w} (pid {proc.pid}) died with {how} while processing {describe(unit)} "
            f"(epoch {unit.epoch}, unit {unit.index})"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        # Drain: a worker blocked sending a result would never read its stop message. Workers hold no
        # state worth waiting for, so one still busy with a chunk after the grace period is terminated.
        deadline = time.monotonic() + PROCESS_GRACE_S
        pending = {p.sentinel: i for i, p in enumerate(self._procs) if p.is_alive()}
        conns = {c: i for i, c in enumerate(self._conns)}
        while pending and time.monotonic() < deadline:
            ready = multiprocessing.connection.wait([*pending, *conns], timeout=deadline - time.monotonic())
            for handle in ready:
                if handle in pending:
                    del pending[handle]
                else:
                    try:
                        late = handle.recv()
                        if isinstance(late, UnitResult):
                            shm.discard(late.columns)
                    except (EOFError, OSError):
                        del conns[handle]
        for proc in self._procs:
            # A fired sentinel means the process is exiting; join reaps it (is_alive could still say yes).
            proc.join(max(0.05, deadline - time.monotonic()))
            if proc.is_alive():
                logger.debug("terminating worker process %s (pid %s), still busy", proc.name, proc.pid)
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for conn in self._conns:
            conn.close()
        for proc in self._procs:
            if proc.exitcode is not None:
                proc.close()
        if self._payload is not None:
            shm.unlink_quietly(self._payload)
        removed = shm.unlink_leftovers(self._prefix)
        if removed:
            logger.debug("removed %d unreceived shared-memory files", removed)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Start children with SIGINT ignored from their first instruction (inherited through exec).

    Ctrl-C in a terminal reaches the whole process group; a worker still importing modules would die
    of it. Python keeps an inherited SIG_IGN, so the consumer alone handles Ctrl-C and stops the workers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclasses.dataclass(frozen=True)
class _InitFailure:
    """A worker could not load the reader and dataset (a class not importable in a fresh process)."""

    traceback: str


def _write_payload(prefix: str, reader: DataReader, dataset: Dataset) -> str:
    """Pickle the reader and dataset once, to a file every worker loads.

    Passing them as ``Process`` arguments would make ``start()`` block until each spawned child has
    booted and read them from its pipe (a 5,000-word vocabulary is ~100 KB, more than a pipe holds),
    which would hold up the consumer; a file costs one write.
    """
    try:
        data = pickle.dumps((reader, dataset), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        exc.add_note(
            "PyLoader: worker_type='process' sends the reader and dataset to each worker; they must be "
            "picklable and their classes importable (defined in a module, not in __main__ of an "
            "interactive session)"
        )
        raise
    directory = shm.SHM_DIR if shm.shm_available() else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=f"{prefix}-init-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _process_main(
    worker: int,
    conn: multiprocessing.connection.Connection,
    payload: str,
    skip: bool,
    shm_prefix: str | None,
) -> None:
    # Ctrl-C goes to the whole process group; the consumer handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with open(payload, "rb") as f:
            reader, dataset = pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - reported to the consumer, which raises it
        conn.send(_InitFailure("".join(traceback.format_exception(exc))))
        return
    seq = itertools.count()
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):
            return  # the consumer is gone
        if unit is None:
            return
        result = run_unit(reader, dataset, unit, worker=worker, skip=skip, portable=True)
        if shm_prefix is not None and result.columns:
            try:
                result.columns = shm.pack(result.columns, shm_prefix, next(seq))
            except OSError as exc:  # /dev/shm full: fall back to pickling
                logger.warning("shared memory unavailable (%s); sending the chunk through the pipe", exc)
        try:
            conn.send(result)
        except (BrokenPipeError, ConnectionResetError, OSError):
            shm.discard(result.columns)
            return


def make_pool(
    num_workers: int, worker_type: str, reader: DataReader, dataset: Dataset, *, skip: bool, start_method: str
) -> WorkerPool:
    """The pool for ``num_workers`` (0: inline) of ``worker_type`` ``"thread"`` or ``"process"``."""
    if num_workers == 0:
        return InlinePool(reader, dataset, skip=skip)
    if worker_type == "thread":
        return ThreadPool(num_workers, reader, dataset, skip=skip)
    if worker_type == "process":
        return ProcessPool(num_workers, reader, dataset, skip=skip, start_method=start_method)
    raise ConfigError(f"worker_type must be 'thread' or 'process', got {worker_type!r}")
