"""``persistent_workers=True``: one worker pool kept alive between passes of a loader."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyloader_core.runtime.pools import WorkerPool

__all__ = ["PoolKeeper"]


class PoolKeeper:
    """Holds at most one idle pool between passes; a pass borrows it or makes its own.

    A pool that comes back from a failed pass is closed, never reused. Results a borrowed pool still
    delivers for an abandoned pass are told apart by the new pass (it only accepts units it
    submitted itself), so reuse cannot mix streams.

    Example::

        keeper = PoolKeeper()
        pool, fresh = keeper.acquire(lambda: ThreadPool(2, reader, dataset, skip=False))
        ...
        keeper.release(pool, reusable=True)   # the next acquire gets it back, started
        keeper.close()                        # loader.close(), GC, interpreter exit
    """

    def __init__(self) -> None:
        self._idle: WorkerPool | None = None
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, make: Callable[[], WorkerPool]) -> tuple[WorkerPool, bool]:
        """A started pool, and whether it was just made (``False``: kept from an earlier pass)."""
        with self._lock:
            pool, self._idle = self._idle, None
        if pool is not None and pool.healthy():
            pool.forget_pending()
            return pool, False
        if pool is not None:
            pool.close()
        return make(), True

    def release(self, pool: WorkerPool, *, reusable: bool) -> None:
        """Keep ``pool`` for the next pass, or close it (failed pass, keeper closed, one already kept)."""
        with self._lock:
            if reusable and not self._closed and self._idle is None and pool.healthy():
                self._idle = pool
                return
        pool.close()

    def close(self) -> None:
        """Close the kept pool; later releases close theirs. Idempotent."""
        with self._lock:
            self._closed = True
            pool, self._idle = self._idle, None
        if pool is not None:
            pool.close()

    def idle_workers(self) -> int:
        """Workers of the kept pool (0 when none is kept)."""
        pool = self._idle
        return 0 if pool is None else pool.alive()
