"""``num_workers="auto"``: add workers while the training loop is input-bound."""

from __future__ import annotations

import collections
import time

__all__ = ["WorkerAutoscaler"]


class WorkerAutoscaler:
    """Decides when to add a worker: the consumer spent more than ``threshold`` of its time waiting for
    data over the last ``window`` chunks, while every worker was busy.

    A single slow chunk or a scheduling hiccup never adds a worker; a sustained input-bound loop does.
    After each addition the evidence starts afresh, so workers are added one at a time.

    Example::

        scaler = WorkerAutoscaler(max_workers=4)
        scaler.record(waited=0.05)          # after each chunk is taken
        if scaler.should_grow(workers=1, busy=True):
            pool.grow()
    """

    def __init__(self, max_workers: int, *, window: int = 4, threshold: float = 0.1) -> None:
        self.max_workers = max_workers
        self.window = window
        self.threshold = threshold
        self._history: collections.deque[tuple[float, float]] = collections.deque(maxlen=window)
        self._last = time.perf_counter()

    def record(self, waited: float) -> None:
        """One chunk was taken after waiting ``waited`` seconds for it."""
        now = time.perf_counter()
        self._history.append((waited, max(now - self._last, 1e-9)))
        self._last = now

    def wait_fraction(self) -> float:
        """Share of the recent time the consumer spent waiting for data."""
        if not self._history:
            return 0.0
        return sum(w for w, _ in self._history) / sum(t for _, t in self._history)

    def should_grow(self, workers: int, busy: bool) -> bool:
        """Whether to add a worker now; resets the evidence when it says yes."""
        if workers >= self.max_workers or not busy or len(self._history) < self.window:
            return False
        if self.wait_fraction() <= self.threshold:
            return False
        self._history.clear()
        return True
