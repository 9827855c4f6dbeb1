"""Thread workers: each runs :func:`.worker_loop` with queues for channels.

See :mod:`.pools` for what pools do and how they shut down.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import sys
import threading
import time
import traceback

from pyloader_core.errors import WorkerDiedError
from pyloader_core.runtime.execute import WindowResult, describe_work
from pyloader_core.runtime.pool_base import JOIN_TIMEOUT_S, WorkerPool, pool_ids
from pyloader_core.runtime.stall import Holder, StallWatch
from pyloader_core.runtime.worker_loop import Task, WorkerSpec, worker_loop

__all__ = ["ThreadPool"]

logger = logging.getLogger(__name__)


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
        self._pool_id = next(pool_ids)
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
