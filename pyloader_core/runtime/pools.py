"""Worker pools: inline, threads and processes behind one interface, all running :func:`.worker_loop`.

A pool executes :class:`~.worker_loop.Task` s and hands back :class:`~.execute.WindowResult` s in
completion order; ordering, and telling passes apart, is the engine's job. ``submit`` never blocks
(the engine caps how many tasks are in flight) and ``get`` blocks on the event itself: a queue for
threads; the result sockets and process sentinels for processes, so a dead process is noticed at
once, never polled for. Every wait is timed by a :class:`~.stall.StallWatch`.

Shutdown (:meth:`WorkerPool.close`) is idempotent and always in the same order: tell every worker
to stop, drain what they still send, join with a deadline, terminate then kill stragglers, release
descriptors. A pool copied into a forked child is never shut down from there: only the process that
made it may signal or stop its workers.
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
import queue
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator

from pyloader_core.errors import ConfigError, WorkerDiedError, WorkerError
from pyloader_core.runtime.recycle import ConsumerMaps
from pyloader_core.runtime.channel import Channel, ChannelClosed, pair
from pyloader_core.runtime.execute import WindowResult, describe_work, run_window
from pyloader_core.runtime.launch import (
    STACK_SIGNAL,
    InitFailure,
    ProcessHandle,
    resolve_start_method,
    start_forked,
    start_spawned,
    write_payload,
)
from pyloader_core.runtime.stall import Holder, StallWatch
from pyloader_core.runtime.worker_loop import Task, WorkerSpec, worker_loop

__all__ = ["InlinePool", "ProcessPool", "ThreadPool", "WorkerPool", "make_pool"]

logger = logging.getLogger(__name__)

#: How long ``close`` waits for worker threads (which cannot be killed) to finish their chunk.
JOIN_TIMEOUT_S = 5.0
#: How long ``close`` lets worker processes exit on their own before terminating them.
PROCESS_GRACE_S = 0.5
#: How long a stuck worker process gets to write its stack (faulthandler) before the error is raised.
STACK_WAIT_S = 1.0

_pool_ids = itertools.count()


class WorkerPool(abc.ABC):
    """Runs tasks in the background; see the module docstring."""

    num_workers: int
    _closed: bool = False

    @abc.abstractmethod
    def submit(self, task: Task) -> None:
        """Queue ``task``; never blocks."""

    @abc.abstractmethod
    def get(self) -> WindowResult:
        """The next finished task, in completion order; blocks until one is ready (or raises)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every worker; idempotent."""

    def alive(self) -> int:
        """How many workers are running (for tests and stats)."""
        return 0

    def pids(self) -> list[int]:
        """The worker processes' pids (none for threads)."""
        return []

    def grow(self) -> None:
        """Add one worker (``num_workers="auto"``); nothing once closed."""
        if not self._closed:
            self._add_worker()

    def _add_worker(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot add workers")

    def healthy(self) -> bool:
        """Open, and every worker still running: the pool can serve another pass."""
        return not self._closed and self.alive() == self.num_workers

    def forget_pending(self) -> None:
        """Drop queued tasks that no worker has started (before the pool serves a new pass)."""


class InlinePool(WorkerPool):
    """``num_workers=0``: tasks run in the consumer's thread when their result is asked for.

    Example::

        pool = InlinePool(WorkerSpec(reader, dataset))
    """

    num_workers = 0

    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        self._pending: collections.deque[Task] = collections.deque()

    def submit(self, task: Task) -> None:
        self._pending.append(task)

    def get(self) -> WindowResult:
        task = self._pending.popleft()
        s = self._spec
        result = run_window(s.reader, s.dataset, task.work, worker=0, skip=s.skip, to_arrays=s.to_arrays)
        result.pass_id, result.key = task.pass_id, task.key
        return result

    def close(self) -> None:
        self._pending.clear()

    def healthy(self) -> bool:
        return True

    def forget_pending(self) -> None:
        self._pending.clear()


@dataclasses.dataclass
class _ThreadFailed:
    """A worker thread's loop itself failed (never user code: :func:`run_window` catches that)."""

    worker: int
    task: Task | None
    error: BaseException


class ThreadPool(WorkerPool):
    """``num_workers`` daemon threads sharing one task queue (so a slow chunk never holds up others).

    Example::

        pool = ThreadPool(4, WorkerSpec(reader, dataset), timeout=60.0)
    """

    def __init__(self, num_workers: int, spec: WorkerSpec, *, timeout: float | None = None) -> None:
        self.num_workers = 0
        self._spec = spec
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[WindowResult | _ThreadFailed] = queue.SimpleQueue()
        self._current: dict[int, tuple[Task, float]] = {}  # what each thread is running, since when
        self._stop = threading.Event()
        self._closed = False
        self._owner = os.getpid()
        self._watch = StallWatch(timeout)
        self._pool_id = next(_pool_ids)
        self._threads: list[threading.Thread] = []
        for _ in range(num_workers):
            self._add_worker()

    def _add_worker(self) -> None:
        w = len(self._threads)
        thread = threading.Thread(
            target=self._main,
            args=(w,),
            name=f"pyloader-{self._pool_id}-worker-{w}",
            daemon=True,  # a worker stuck in user I/O must never block interpreter exit
        )
        thread.start()
        self._threads.append(thread)
        self.num_workers = len(self._threads)

    def _main(self, w: int) -> None:
        def receive() -> Task | None:
            self._current.pop(w, None)
            task = self._tasks.get()
            if task is None or self._stop.is_set():
                return None
            self._current[w] = (task, time.monotonic())
            return task

        try:
            worker_loop(w, self._spec, receive, self._results.put)
        except BaseException as exc:  # noqa: BLE001 - the consumer must hear of it, never wait
            current = self._current.get(w)
            self._results.put(_ThreadFailed(w, None if current is None else current[0], exc))

    def forget_pending(self) -> None:
        while True:
            try:
                self._tasks.get_nowait()
            except queue.Empty:
                return

    def submit(self, task: Task) -> None:
        self._tasks.put(task)

    def get(self) -> WindowResult:
        self._watch.restart()
        while True:
            try:
                item = self._results.get(timeout=self._watch.next_wait())
            except queue.Empty:
                self._watch.silence(self._holders())
                continue
            if isinstance(item, _ThreadFailed):
                where = "" if item.task is None else f" while processing {describe_work(item.task.work)}"
                raise WorkerDiedError(f"worker thread {item.worker} failed{where}: {item.error!r}") from item.error
            return item

    def _holders(self) -> list[Holder]:
        holders = []
        for w, (task, since) in list(self._current.items()):
            ident = self._threads[w].ident
            holders.append(
                Holder(f"worker thread {w}", describe_work(task.work), task.work.epoch, since,
                       lambda ident=ident: _thread_stack(ident))
            )
        return holders

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._owner:
            return  # a forked copy: the threads do not exist here
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


def _thread_stack(ident: int | None) -> str | None:
    frame = sys._current_frames().get(ident) if ident is not None else None  # noqa: SLF001
    return None if frame is None else "".join(traceback.format_stack(frame))


@dataclasses.dataclass
class _ProcessWorker:
    index: int
    handle: ProcessHandle
    channel: Channel
    stack_fd: int  # read end of the pipe the worker's faulthandler writes its stack into
    held: collections.deque[Task] = dataclasses.field(default_factory=collections.deque)
    busy_since: float = 0.0
    maps: ConsumerMaps = dataclasses.field(default_factory=ConsumerMaps)  # its result buffers, kept mapped

    @property
    def name(self) -> str:
        return f"worker process {self.index} (pid {self.handle.pid})"


class ProcessPool(WorkerPool):
    """``num_workers`` processes, each with its own socket; results come back in anonymous shared memory.

    Tasks go to the worker with the fewest in flight. See :mod:`.launch` for the start methods
    (``"auto"``: fork while the process has a single thread, spawn otherwise).

    Example::

        pool = ProcessPool(2, WorkerSpec(reader, dataset), start_method="auto", timeout=60.0)
    """

    def __init__(
        self, num_workers: int, spec: WorkerSpec, *, start_method: str = "auto", timeout: float | None = None
    ) -> None:
        self.num_workers = 0
        self.start_method = resolve_start_method(start_method)
        self._spec = spec
        self._workers: list[_ProcessWorker] = []
        self._ready: collections.deque[WindowResult] = collections.deque()
        self._closed = False
        self._owner = os.getpid()
        self._watch = StallWatch(timeout)
        self._prefix = f"pyloader-{self._owner}-{next(_pool_ids)}"
        # PR_SET_PDEATHSIG fires when the creating *thread* ends: only the main thread lives as long as we do.
        self._die_with_parent = threading.current_thread() is threading.main_thread()
        self._ctx = None if self.start_method == "fork" else multiprocessing.get_context(self.start_method)
        self._payload: int | None = None
        try:
            if self._ctx is not None:
                self._payload = write_payload(spec)
            for _ in range(num_workers):
                self._add_worker()
        except BaseException:
            self.close()
            raise

    def _add_worker(self) -> None:
        w = len(self._workers)
        channel, theirs = pair()
        stack_r, stack_w = os.pipe()
        os.set_blocking(stack_r, False)
        try:
            with _children_ignore_sigint():
                if self._ctx is None:
                    handle = start_forked(w, self._spec, theirs, stack_w, die_with_parent=self._die_with_parent)
                else:
                    handle = start_spawned(
                        self._ctx, w, f"{self._prefix}-worker-{w}", theirs, die_with_parent=self._die_with_parent
                    )
            if self._ctx is not None:
                assert self._payload is not None
                channel.send("payload", (self._payload, stack_w))
        except BaseException:
            channel.close()
            os.close(stack_r)
            raise
        finally:
            theirs.close()
            os.close(stack_w)
        self._workers.append(_ProcessWorker(w, handle, channel, stack_r))
        self.num_workers = len(self._workers)

    def alive(self) -> int:
        return sum(wk.handle.alive() for wk in self._workers)

    def pids(self) -> list[int]:
        return [wk.handle.pid for wk in self._workers]

    def submit(self, task: Task) -> None:
        wk = min(self._workers, key=lambda x: len(x.held))
        if not wk.held:
            wk.busy_since = time.monotonic()
        wk.held.append(task)
        try:
            wk.channel.send((task, wk.maps.returns()))
        except (ChannelClosed, OSError):
            pass  # the worker died; get() reports it with its exit code

    def get(self) -> WindowResult:
        self._watch.restart()
        if not self._ready:
            self._send_returns()
        while not self._ready:
            channels = {wk.channel.fileno(): wk for wk in self._workers if wk.held}
            if not channels:
                raise RuntimeError("ProcessPool.get() called with no task in flight")
            sentinels = {wk.handle.sentinel: wk for wk in channels.values()}
            ready = multiprocessing.connection.wait([*channels, *sentinels], timeout=self._watch.next_wait())
            if not ready:
                self._watch.silence(self._holders())
                continue
            for fd in ready:
                if fd in channels:
                    self._receive(channels[fd])
                elif not _readable(sentinels[fd].channel.fileno()):
                    self._died(sentinels[fd])
        return self._ready.popleft()

    def _send_returns(self) -> None:
        """Tell busy workers which result buffers are free again before waiting (no task may follow soon)."""
        for wk in self._workers:
            returns = wk.maps.returns() if wk.held else None
            if returns is not None:
                try:
                    wk.channel.send((None, returns))
                except (ChannelClosed, OSError):
                    pass  # the worker died; the wait below reports it

    def _receive(self, wk: _ProcessWorker) -> None:
        if not wk.held:
            return  # already handled in this round (its sentinel and socket were both ready)
        try:
            message, fds = wk.channel.recv()
        except (EOFError, OSError):
            self._died(wk)
        if isinstance(message, InitFailure):
            raise WorkerError(
                f"{wk.name} could not load the reader and dataset; with start_method "
                f"{self.start_method!r} their classes must be importable in a fresh interpreter (defined in a "
                f"module, or in a script under `if __name__ == '__main__':`):\n{message.traceback}"
            )
        result: WindowResult = wk.maps.unpack(message, fds[0] if fds else None)
        for extra in fds[1:]:
            os.close(extra)
        task = wk.held.popleft()  # a worker runs its tasks in the order it got them
        if result.key != task.key or result.pass_id != task.pass_id:
            raise WorkerError(f"{wk.name} answered {result.key} of pass {result.pass_id}, expected {task.key}")
        wk.busy_since = time.monotonic()
        self._ready.append(result)

    def _died(self, wk: _ProcessWorker) -> None:
        wk.handle.join(JOIN_TIMEOUT_S)
        code = wk.handle.exit_code()
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f" ({signal.Signals(-code).name})"
            except ValueError:
                pass
        work = wk.held[0].work
        raise WorkerDiedError(f"{wk.name} died with {how} while processing {describe_work(work)} (epoch {work.epoch})")

    def _holders(self) -> list[Holder]:
        return [
            Holder(wk.name, describe_work(wk.held[0].work), wk.held[0].work.epoch, wk.busy_since,
                   lambda wk=wk: self._stack_of(wk))
            for wk in self._workers
            if wk.held
        ]

    def _stack_of(self, wk: _ProcessWorker) -> str | None:
        """The worker's Python stack, written by its faulthandler on :data:`STACK_SIGNAL`."""
        state = _process_state(wk.handle.pid)
        if state in ("T", "t"):
            return f"(none: the process is stopped, state {state!r}: SIGSTOP, a debugger, or a suspended job)"
        _drain(wk.stack_fd)
        wk.handle.signal(STACK_SIGNAL)
        parts = []
        wait = STACK_WAIT_S
        while select.select([wk.stack_fd], [], [], wait)[0]:
            data = _drain(wk.stack_fd)
            if not data:
                break
            parts.append(data)
            wait = 0.1  # the rest of the dump follows at once
        return b"".join(parts).decode(errors="replace") or None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._owner:
            for wk in self._workers:  # a forked copy: close our copies, never touch the parent's workers
                wk.channel.close()
            return
        for wk in self._workers:
            try:
                wk.channel.send(None)
            except (ChannelClosed, OSError):
                pass
        self._drain_until_exit(time.monotonic() + PROCESS_GRACE_S)
        for wk in self._workers:
            if wk.handle.alive():
                logger.debug("terminating %s, still busy", wk.name)
                wk.handle.signal(signal.SIGTERM)
                if not wk.handle.join(0.2):
                    wk.handle.signal(signal.SIGKILL)  # also ends a stopped process
                    wk.handle.join(2.0)
        for wk in self._workers:
            wk.channel.close()
            os.close(wk.stack_fd)
            wk.handle.release()
            wk.maps.close()
        self._ready.clear()
        if self._payload is not None:
            os.close(self._payload)
            self._payload = None

    def _drain_until_exit(self, deadline: float) -> None:
        """Read (and drop) what workers still send until they exit: one blocked sending never reads its stop."""
        running = {wk.handle.sentinel: wk for wk in self._workers if wk.handle.alive()}
        channels = {wk.channel.fileno(): wk for wk in self._workers}
        while running and time.monotonic() < deadline:
            ready = multiprocessing.connection.wait([*running, *channels], timeout=deadline - time.monotonic())
            for fd in ready:
                if fd in running:
                    del running[fd]
                    continue
                try:
                    _, fds = channels[fd].channel.recv()
                except (EOFError, OSError):
                    del channels[fd]
                    continue
                for extra in fds:
                    os.close(extra)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Start children with SIGINT ignored from their first instruction (inherited through fork and exec).

    Ctrl-C in a terminal reaches the whole process group; a worker still starting would die of it.
    Python keeps an inherited SIG_IGN, so the consumer alone handles Ctrl-C and stops the workers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def make_pool(
    num_workers: int, worker_type: str, spec: WorkerSpec, *, start_method: str = "auto", timeout: float | None = None
) -> WorkerPool:
    """The pool for ``num_workers`` (0: inline) of ``worker_type`` ``"thread"`` or ``"process"``."""
    if num_workers == 0:
        return InlinePool(spec)
    if worker_type == "thread":
        return ThreadPool(num_workers, spec, timeout=timeout)
    if worker_type == "process":
        return ProcessPool(num_workers, spec, start_method=start_method, timeout=timeout)
    raise ConfigError(f"worker_type must be 'thread' or 'process', got {worker_type!r}")
