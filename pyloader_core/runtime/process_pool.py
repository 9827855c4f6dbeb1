"""Process workers: each serves its own socket; results come back in shared memory that goes round.

See :mod:`.pools` for what pools do and how they shut down, :mod:`.launch` for how processes start.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import threading
import time
from collections.abc import Iterator

from pyloader_core.errors import ConfigError, WorkerDiedError, WorkerError
from pyloader_core.runtime.channel import Channel, ChannelClosed, pair, task_queue
from pyloader_core.runtime.execute import WindowResult, describe_work
from pyloader_core.runtime.launch import (
    MAIN_GUARD_EXIT,
    STACK_SIGNAL,
    InitFailure,
    ProcessHandle,
    Started,
    resolve_start_method,
    start_forked,
    start_spawned,
    write_payload,
)
from pyloader_core.runtime.pool_base import (
    JOIN_TIMEOUT_S,
    PROCESS_GRACE_S,
    STACK_WAIT_S,
    WorkerPool,
    pool_ids,
)
from pyloader_core.runtime.recycle import ConsumerMaps
from pyloader_core.runtime.stall import Holder, StallWatch
from pyloader_core.runtime.worker_loop import Task, WorkerSpec

__all__ = ["ProcessPool"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _ProcessWorker:
    index: int
    handle: ProcessHandle
    channel: Channel
    stack_fd: int  # read end of the pipe the worker's faulthandler writes its stack into
    running: Task | None = None  # the task it took from the queue and has not finished
    busy_since: float = 0.0
    maps: ConsumerMaps = dataclasses.field(default_factory=ConsumerMaps)  # its result buffers, kept mapped

    @property
    def name(self) -> str:
        return f"worker process {self.index} (pid {self.handle.pid})"


class ProcessPool(WorkerPool):
    """``num_workers`` processes, each with its own socket; results come back in anonymous shared memory.

    Tasks wait in one queue (:func:`.channel.task_queue`) and whichever worker is free takes the next,
    so a slow worker never holds up tasks another could run, and the last chunks of a pass are shared
    out as the workers free up. See :mod:`.launch` for the start methods (``"auto"``: fork while the
    process has a single thread, spawn otherwise).

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
        self._queue, self._queue_out = task_queue()  # the consumer writes tasks; workers take them
        self._submitted: dict[tuple[int, tuple[int, int]], Task] = {}  # (pass, key) -> task not finished
        self._closed = False
        self._owner = os.getpid()
        self._watch = StallWatch(timeout)
        self._prefix = f"pyloader-{self._owner}-{next(pool_ids)}"
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
                    handle = start_forked(
                        w, self._spec, theirs, stack_w, self._queue_out, die_with_parent=self._die_with_parent
                    )
                else:
                    handle = start_spawned(
                        self._ctx, w, f"{self._prefix}-worker-{w}", theirs, die_with_parent=self._die_with_parent
                    )
            if self._ctx is not None:
                assert self._payload is not None
                channel.send("payload", (self._payload, stack_w, self._queue_out.fileno()))
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
        self._send_returns()
        self._submitted[task.pass_id, task.key] = task
        try:
            self._queue.send(task)
        except (ChannelClosed, OSError):
            pass  # no worker left to read it; get() reports the dead ones with their exit codes

    def forget_pending(self) -> None:
        while True:  # tasks no worker has taken: back out of the queue (workers may take some meanwhile)
            try:
                got = self._queue_out.recv_waiting()
            except (EOFError, OSError):
                return
            if got is None:
                return
            task = got[0]
            self._submitted.pop((task.pass_id, task.key), None)

    def get(self) -> WindowResult:
        self._watch.restart()
        if not self._ready:
            self._send_returns()
        while not self._ready:
            if not self._submitted:
                raise RuntimeError("ProcessPool.get() called with no task in flight")
            channels = {wk.channel.fileno(): wk for wk in self._workers}
            sentinels = {wk.handle.sentinel: wk for wk in self._workers}
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
        """Tell workers which result buffers are free again (before a result they pack, if they can)."""
        for wk in self._workers:
            returns = wk.maps.returns()
            if returns is not None:
                try:
                    wk.channel.send((None, returns))
                except (ChannelClosed, OSError):
                    pass  # the worker died; the wait reports it

    def _receive(self, wk: _ProcessWorker) -> None:
        try:
            got = wk.channel.recv_waiting()
        except (EOFError, OSError):
            self._died(wk)
        if got is None:
            return  # already read in this round (its sentinel and socket were both ready)
        message, fds = got
        if isinstance(message, Started):
            wk.running = self._submitted.get((message.pass_id, message.key))
            wk.busy_since = time.monotonic()
            return
        if isinstance(message, InitFailure):
            raise WorkerError(
                f"{wk.name} could not load the reader and dataset; with start_method "
                f"{self.start_method!r} their classes must be importable in a fresh interpreter (defined in a "
                f"module, or in a script under `if __name__ == '__main__':`):\n{message.traceback}"
            )
        result: WindowResult = wk.maps.unpack(message, fds[0] if fds else None)
        for extra in fds[1:]:
            os.close(extra)
        task = wk.running
        if task is None or result.key != task.key or result.pass_id != task.pass_id:
            expected = "nothing" if task is None else f"{task.key} of pass {task.pass_id}"
            raise WorkerError(f"{wk.name} answered {result.key} of pass {result.pass_id}, expected {expected}")
        wk.busy_since = time.monotonic()
        if not result.lead:
            wk.running = None
            del self._submitted[task.pass_id, task.key]
        self._ready.append(result)

    def _died(self, wk: _ProcessWorker) -> None:
        wk.handle.join(JOIN_TIMEOUT_S)
        code = wk.handle.exit_code()
        if code == MAIN_GUARD_EXIT and self._ctx is not None:
            raise ConfigError(
                f"start_method={self.start_method!r} re-imports your script in each worker: put the code that "
                "iterates the loader under `if __name__ == '__main__':` (or use start_method='fork' / "
                "worker_type='thread')"
            ) from None
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how += f" ({signal.Signals(-code).name})"
            except ValueError:
                pass
        if wk.running is None:
            raise WorkerDiedError(f"{wk.name} died with {how} between chunks")
        work = wk.running.work
        raise WorkerDiedError(f"{wk.name} died with {how} while processing {describe_work(work)} (epoch {work.epoch})")

    def _holders(self) -> list[Holder]:
        return [
            Holder(wk.name, describe_work(wk.running.work), wk.running.work.epoch, wk.busy_since,
                   lambda wk=wk: self._stack_of(wk))
            for wk in self._workers
            if wk.running is not None
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
            self._queue.close()
            self._queue_out.close()
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
        self._submitted.clear()
        self._queue.close()
        self._queue_out.close()
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
