"""Liveness: a consumer waiting on its workers never waits forever without saying so.

:class:`StallWatch` times the silence between two results. Past ``timeout`` seconds (when set) it
raises :class:`~pyloader_core.WorkerTimeoutError` naming the worker that has held its unit longest,
with that worker's Python stack when one can be had; without a timeout it logs a warning after
:data:`WARN_EVERY_S` seconds of silence, and again every :data:`WARN_EVERY_S` seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from pyloader_core.errors import WorkerTimeoutError

__all__ = ["Holder", "StallWatch", "WARN_EVERY_S"]

logger = logging.getLogger(__name__)

#: Silence (seconds) after which a warning names the busy worker, and the period of later warnings.
WARN_EVERY_S = 60.0


@dataclasses.dataclass(frozen=True)
class Holder:
    """A worker busy with a window: who (``name``, e.g. ``"worker process 1 (pid 123)"``), what, since when."""

    name: str
    what: str  # the window's chunk, e.g. "data/chunk001.jsonl"
    epoch: int
    since: float
    stack: Callable[[], str | None]  # the worker's Python stack now, if it can be had


class StallWatch:
    """Times one wait for a result; see the module docstring.

    Example::

        watch = StallWatch(timeout=30.0)
        watch.restart()                       # a wait begins (or a result just arrived)
        ready = wait(handles, watch.next_wait())
        if not ready:
            watch.silence(holders)           # raises past the timeout, warns every 60 s
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._since = time.monotonic()
        self._next_warning = self._since + WARN_EVERY_S

    def restart(self) -> None:
        self._since = time.monotonic()
        self._next_warning = self._since + WARN_EVERY_S

    def next_wait(self) -> float:
        """Seconds to wait before :meth:`silence` must look again."""
        now = time.monotonic()
        due = self._next_warning if self.timeout is None else min(self._next_warning, self._since + self.timeout)
        return max(0.0, due - now)

    def silence(self, holders: list[Holder]) -> None:
        """Nothing arrived within :meth:`next_wait`: raise past the timeout, else warn when one is due."""
        now = time.monotonic()
        waited = now - self._since
        stuck = min(holders, key=lambda h: h.since) if holders else None
        if self.timeout is not None and waited >= self.timeout:
            if stuck is None:
                raise WorkerTimeoutError(f"no result for {waited:.1f}s (timeout={self.timeout:g}s) and no worker busy")
            raise WorkerTimeoutError(
                f"{stuck.name} sent no result for {waited:.1f}s (timeout={self.timeout:g}s); it has held "
                f"{stuck.what} (epoch {stuck.epoch}) for {now - stuck.since:.1f}s",
                stack=stuck.stack(),
            )
        if now >= self._next_warning:
            self._next_warning = now + WARN_EVERY_S
            if stuck is not None:
                logger.warning(
                    "no data for %.0fs: %s has been busy with %s (epoch %d) for %.0fs; "
                    "set timeout= to turn a stuck worker into an error",
                    waited, stuck.name, stuck.what, stuck.epoch, now - stuck.since,
                )
