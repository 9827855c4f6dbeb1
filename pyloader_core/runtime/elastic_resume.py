"""Resuming a state at another world shape (ranks x torch workers): the loader's side of :mod:`.elastic`.

A state records the planned positions its shard consumed; from every old shard's plan (a pure
function) the rest of the epoch is computed and re-split over the new shape (see
:func:`~pyloader_core.runtime.elastic.split_shard` and the remainder rule there).
"""

from __future__ import annotations

import logging
from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.options import LoaderOptions
from pyloader_core.runtime.position import Position
from pyloader_core.runtime.plan import EpochPlan, Shard

__all__ = ["ElasticResume"]

logger = logging.getLogger(__name__)


class ElasticResume:
    """The elastic-resume methods of :class:`~pyloader_core.DataLoader` (plans of old shards, re-splits).

    Example::

        saved = loader_at_2_ranks.state_dict()
        DataLoader(..., rank=0, world_size=3).load_state_dict(saved)  # the rest of the epoch, re-split
    """

    # Given by DataLoader.
    options: LoaderOptions
    files: list[str]
    batch_size: int

    def _plan_at(self, epoch: int, rank: Shard, worker: Shard) -> EpochPlan:
        raise NotImplementedError

    def sample_counts(self, *, read_if_unknown: bool = True) -> list[int] | None:
        raise NotImplementedError

    def _elastic_start(self, state: dict[str, Any], position: Position, worker: Shard, reshaped: bool) -> Position:
        """Where a state resumes on this shard: its own position, or one computed from what it consumed.

        A state of another world shape (ranks x workers) resumes the rest of its epoch re-split over
        this one (an :class:`~pyloader_core.runtime.elastic.ElasticPosition`); a state of another rank (or
        worker) of the same shape resumes this shard's own stream after the same consumption.
        """
        from pyloader_core.runtime.elastic import ElasticPosition, Generation, position_at

        history = tuple(Generation.from_json(g) for g in state.get("history") or ())
        if not reshaped:
            return ElasticPosition(position.epoch, position.window, position.offset, history) if history else position
        consumed, peers = state.get("consumed"), state.get("peers")
        if type(consumed) is not int or consumed < 0:
            raise ConfigError(
                f"this state was saved by rank {state.get('rank')} of {state.get('world_size')} (worker "
                f"{state.get('worker')}) without knowing the sample counts, so it cannot resume on rank "
                f"{self.options.rank} of {self.options.world_size} (worker {[worker.index, worker.count]})"
            )
        saved = state.get("worker") or [0, 1]
        saved_world, saved_workers = int(state["world_size"]), int(saved[1])
        if peers is None and saved_workers > 1:
            raise ConfigError(
                f"this state is torch worker {saved[0]}'s of {saved_workers}: a change of worker count needs "
                "every worker's state (convert a StatefulDataLoader state with pyloader_torch.elastic.reshape_state)"
            )
        taken = [int(c) for c in (peers if peers is not None else [consumed])]
        if saved_world == self.options.world_size and saved_workers == worker.count:
            pieces = self._stream_pieces(position.epoch, history, worker)
            window, offset = position_at(pieces, taken[worker.index])
            return ElasticPosition(position.epoch, window, offset, history)
        if not history and not any(taken):
            return Position(position.epoch)  # nothing consumed yet: an ordinary epoch of this shape
        logger.info(
            "elastic resume of epoch %d: saved at %d ranks x %d workers, now %d x %d",
            position.epoch, saved_world, saved_workers, self.options.world_size, worker.count,
        )
        gen = Generation(saved_world, saved_workers, tuple(taken))
        return ElasticPosition(position.epoch, 0, 0, (*history, gen))

    def _plain_pieces(self, epoch: int, rank: Shard, worker: Shard) -> list[Any]:
        """The pieces of the ordinary plan of ``epoch`` for a shard (cached: states are taken every batch)."""
        from pyloader_core.runtime.elastic import pieces_of_plan

        cache = self.__dict__.setdefault("_piece_cache", {})
        key = ("plain", epoch, rank, worker)
        if key not in cache:
            plan = self._plan_at(epoch, rank, worker)
            counted = all(u.stop is not None or u.expected is not None for u in plan.units)
            counts = None if counted else self.sample_counts(read_if_unknown=False)
            if len(cache) > 64:
                cache.clear()
            cache[key] = pieces_of_plan(plan, counts)
        return cache[key]

    def _stream_pieces(self, epoch: int, history: tuple[Any, ...], worker: Shard) -> list[Any]:
        """The pieces of this shard's stream of ``epoch``: its plan, or its part of an elastic re-split."""
        o = self.options
        rank = Shard(o.rank, o.world_size)
        if not history:
            return self._plain_pieces(epoch, rank, worker)
        return list(self._elastic_plan(epoch, history, worker).pieces)

    def _elastic_plan(self, epoch: int, history: tuple[Any, ...], worker: Shard) -> EpochPlan:
        """This shard's plan of the rest of ``epoch`` after ``history`` (an ``ElasticPlan``)."""
        from pyloader_core.runtime.elastic import ElasticPlan, remainder, split_shard

        o = self.options
        cache = self.__dict__.setdefault("_piece_cache", {})
        key = ("elastic", epoch, history, o.rank, o.world_size, worker)
        if key not in cache:
            rest = remainder(lambda r, w: self._plain_pieces(epoch, r, w), history, self.batch_size)
            pieces, dropped = split_shard(rest, Shard(o.rank, o.world_size), worker, self.batch_size)
            units = tuple(u for p in pieces for u in p.units)
            cache[key] = ElasticPlan(
                epoch, units, o.random_seed, o.shuffle_buffer, dropped if worker.index == 0 else 0,
                sum(p.size for p in pieces), pieces=tuple(pieces),
            )
        return cache[key]

    def _consumed(self, position: Position, worker: Shard) -> int | None:
        """Planned positions this shard consumed in ``position``'s epoch (``None``: counts unknown)."""
        from pyloader_core.runtime.elastic import consumed_at

        history = getattr(position, "history", ())
        failed = self.__dict__.setdefault("_uncounted", set())
        if (position.epoch, history, worker) in failed:
            return None
        try:
            pieces = self._stream_pieces(position.epoch, history, worker)
        except (ConfigError, TypeError):
            failed.add((position.epoch, history, worker))  # unknown counts: do not count again every batch
            return None
        return consumed_at(pieces, position.window, position.offset)
