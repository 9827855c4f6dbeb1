"""The pool interface every worker pool implements, and the inline pool (``num_workers=0``).

See :mod:`.pools` for what pools do and how they shut down.
"""

from __future__ import annotations

import abc
import collections
import itertools

from pyloader_core.runtime.execute import WindowResult, run_window
from pyloader_core.runtime.worker_loop import Task, WorkerSpec

__all__ = ["InlinePool", "JOIN_TIMEOUT_S", "PROCESS_GRACE_S", "STACK_WAIT_S", "WorkerPool"]

#: How long ``close`` waits for worker threads (which cannot be killed) to finish their chunk.
JOIN_TIMEOUT_S = 5.0
#: How long ``close`` lets worker processes exit on their own before terminating them.
PROCESS_GRACE_S = 0.5
#: How long a stuck worker process gets to write its stack (faulthandler) before the error is raised.
STACK_WAIT_S = 1.0

pool_ids = itertools.count()


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
