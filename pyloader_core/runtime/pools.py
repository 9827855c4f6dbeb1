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

from pyloader_core.errors import ConfigError
from pyloader_core.runtime.pool_base import InlinePool, WorkerPool
from pyloader_core.runtime.process_pool import ProcessPool
from pyloader_core.runtime.thread_pool import ThreadPool
from pyloader_core.runtime.worker_loop import WorkerSpec

__all__ = ["InlinePool", "ProcessPool", "ThreadPool", "WorkerPool", "make_pool"]


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
