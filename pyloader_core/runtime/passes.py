"""A pass over the loader's epochs: its iterator (:class:`LoaderIterator`) and what the loader keeps of it."""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

from pyloader_core.runtime.engine import BatchStream
from pyloader_core.runtime.plan import Shard
from pyloader_core.runtime.position import Position

__all__ = ["LoaderIterator", "PassRecord"]


@dataclasses.dataclass
class PassRecord:
    """The latest pass: its stream, its worker shard, the epoch it ends before, and how it ended.

    ``own`` marks a pass of the loader's epoch sequence (``iter(loader)``), as opposed to
    :meth:`DataLoader.iter_epochs`; ``exhausted`` is set once it ran to its end.
    """

    stream: BatchStream
    worker: Shard
    end: int
    own: bool
    exhausted: bool = False
    elastic: Any = None  # (epoch, history, pieces) when the pass's first epoch is a resumed elastic one


class LoaderIterator:
    """One pass over some epochs; owns its worker pool.

    Closing it (``close()``, exhaustion, an exception, ``break`` then garbage collection, or interpreter
    exit) stops every worker. Holding no reference to it is enough to stop it.
    ``exhausted`` becomes ``True`` once it ran to its end (``StopIteration``).

    Example::

        with loader.iter_epochs([3]) as it:  # epoch 3 alone
            for batch in it: ...
        it.exhausted  # True
    """

    def __init__(self, stream: BatchStream, record: PassRecord | None = None) -> None:
        self._stream = stream
        self._gen = iter(stream)
        self._record = record  # told when the pass runs to its end; never refers back to the loader
        self.exhausted = False
        # The generator and the pool never refer back to this object, so dropping it finalizes at once.
        self._finalizer = weakref.finalize(self, stream.close)

    def __iter__(self) -> LoaderIterator:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._gen)
        except StopIteration:
            self.exhausted = True
            if self._record is not None:
                self._record.exhausted = True
            raise

    @property
    def epoch(self) -> int:
        """0-based epoch of the batch last returned (-1 before the first)."""
        return self._stream.epoch

    @property
    def position(self) -> Position:
        """Where the next batch starts (for :meth:`DataLoader.position_state`)."""
        return self._stream.position

    def workers_alive(self) -> int:
        """Running background workers (0 once closed)."""
        return self._stream.workers_alive()

    def close(self) -> None:
        """Stop the workers; idempotent."""
        self._gen.close()
        self._finalizer()

    def __enter__(self) -> LoaderIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
