"""Which epoch each iteration of an adapter runs, and the resume envelope: one cursor for torch and tf.data.

Frameworks start a new iteration per epoch (torch's ``for batch in DataLoader(ds)``, each epoch of
``model.fit``), so an adapter's dataset runs "the next epoch" each time it is iterated, from
``set_epoch`` on. :class:`EpochCursor` keeps that count in a small table of ints: a list, or a
shared-memory tensor, so that the copies of a dataset in torch's worker processes count in one
place. A checkpoint of an adapter is :func:`envelope`: the epoch and the core loader's state.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

from pyloader_core.errors import ConfigError

__all__ = ["EpochCursor", "envelope", "opened"]


def envelope(epoch: int | None, loader_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """An adapter's checkpoint: the epoch an iteration runs and its loader's state (``None``: none started).

    Example::

        envelope(3, loader.state_dict())  # {"epoch": 3, "loader": {...}}
    """
    return {"epoch": None} if epoch is None else {"epoch": int(epoch), "loader": loader_state}


def opened(state: dict[str, Any] | None) -> tuple[int, dict[str, Any]] | None:
    """The epoch and loader state of an :func:`envelope` that resumes an iteration (``None``: a fresh start).

    Raises :class:`ConfigError` for something that is not an envelope.
    """
    if state is None or state.get("epoch") is None:
        return None
    if not isinstance(state.get("loader"), dict):
        raise ConfigError(f"an adapter state needs 'epoch' and 'loader' (from state_dict()), got keys {sorted(state)}")
    return int(state["epoch"]), state["loader"]


class EpochCursor:
    """The epoch the next iteration of each participant runs: ``set_epoch``, then one more per iteration.

    ``table`` is ``[base, count_0, ..., count_{n-1}]``: the epoch ``set_epoch`` gave, and how many
    iterations participant ``i`` (a torch worker; the consumer is participant 0) started since. A
    torch shared tensor works as the table, so worker copies update the parent's.

    Example::

        cursor = EpochCursor()
        cursor.claim()          # 0: the first iteration runs epoch 0
        cursor.claim()          # 1
        cursor.set_epoch(5)
        cursor.next_epoch       # 5
    """

    def __init__(self, table: MutableSequence[Any] | None = None) -> None:
        self.table: MutableSequence[Any] = table if table is not None else [0, 0]

    @property
    def slots(self) -> int:
        """Participants the table has room for."""
        return len(self.table) - 1

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration (of every participant) run ``epoch``; later ones follow on."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        self._fill(1, 0)
        self.table[0] = epoch

    @property
    def next_epoch(self) -> int:
        """The epoch participant 0's next iteration runs."""
        return int(self.table[0]) + int(self.table[1])

    def claim(self, worker: int = 0, num_workers: int = 1, resumed: int | None = None) -> int:
        """The epoch this iteration of ``worker`` (of ``num_workers``) runs, counted as started.

        ``resumed``: the iteration resumes that epoch (from a checkpoint); the next follows on from it.
        Participant 0 also moves the counters of participants that take no part, so they stay equal
        when the number of participants changes between iterations.
        """
        if num_workers > self.slots:
            raise ConfigError(f"at most {self.slots} participants (torch DataLoader workers), got {num_workers}")
        base = int(self.table[0])
        epoch = base + int(self.table[1 + worker]) if resumed is None else int(resumed)
        self.table[1 + worker] = epoch + 1 - base
        if worker == 0:
            self._fill(1 + num_workers, int(self.table[1]))
        return epoch

    def _fill(self, start: int, value: int) -> None:
        """``table[start:] = value``: a list by items, a tensor or an array in one broadcast."""
        if isinstance(self.table, list):
            self.table[start:] = [value] * (len(self.table) - start)
        elif start < len(self.table):
            self.table[start:] = value
