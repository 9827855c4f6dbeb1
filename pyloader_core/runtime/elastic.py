"""Elastic resume: the rest of an epoch saved at one world shape, re-split over another.

A world shape is ``ranks x workers`` shards (a worker is a torch DataLoader worker, or ``Shard()``).
Every shard's epoch stream is a sequence of :class:`Piece` s: windows of its plan (one chunk, or
``shuffle_buffer`` chunks mixed), each with the range ``[begin, end)`` of its planned positions
still to read, counted in the window's own (shuffled) order. A checkpoint says how many planned
positions each shard consumed (in lockstep DDP the same for every rank), so the remaining sample set
of the epoch is a pure function of the old plans: :func:`drop_prefix` of each old shard's pieces,
concatenated rank-major then worker-minor (:func:`remainder`). :func:`split_shard` cuts that
sequence into equal contiguous parts, one per new rank (then whole-batch blocks per new worker),
so a new shard reads whole chunks except at its two cut points.

**The remainder rule.** With ``R`` samples left in the epoch and ``W'`` new ranks, every new rank
gets ``R // W'`` samples and the last ``R % W'`` (fewer than ``W'``) of the canonical sequence are
left out for that epoch, so every new rank yields the same number of batches. Together with the
``total % W`` samples the old plan already left out, that is all an elastic resume misses (plus, with
``drop_last``, each rank's short last batch, as in any epoch). No sample is read twice.

Example::

    gens = [Generation(world_size=2, workers=1, consumed=(16,))]
    rest = remainder(lambda rank, worker: pieces_of_plan(plan_of(rank, worker)), gens)
    mine, dropped = split_shard(rest, Shard(0, 3), Shard(), batch_size=8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from pyloader_core.errors import ConfigError
from pyloader_core.runtime.plan import EpochPlan, Shard, WorkUnit, _split
from pyloader_core.runtime.position import Position

__all__ = [
    "ElasticPlan",
    "ElasticPosition",
    "Generation",
    "Piece",
    "consumed_at",
    "drop_prefix",
    "pieces_of_plan",
    "position_at",
    "remainder",
    "split_shard",
    "take_range",
]


def _unit_planned(unit: WorkUnit) -> int:
    stop = unit.stop if unit.stop is not None else unit.expected
    if stop is None:
        raise ConfigError(f"elastic resume needs every file's sample count ({unit.path} has none)")
    return int(stop) - unit.start


@dataclasses.dataclass(frozen=True)
class Piece:
    """Planned positions ``[begin, end)`` of one window (its ``units`` mixed with ``mix_seed``).

    Positions count the window's samples in the order the stream yields them (in-chunk shuffle and
    window mix applied), so the first ``begin`` are those a checkpoint already consumed.

    Example::

        Piece((unit,), None, 0, 20).size  # 20
    """

    units: tuple[WorkUnit, ...]
    mix_seed: int | None
    begin: int
    end: int

    @property
    def planned(self) -> int:
        """Planned positions of the whole window (consumed or not)."""
        return sum(_unit_planned(u) for u in self.units)

    @property
    def size(self) -> int:
        """Planned positions of the piece: ``end - begin``."""
        return self.end - self.begin

    @property
    def stops_early(self) -> bool:
        """Whether the piece ends before its window does (the stream then reads and discards the rest)."""
        return self.end < self.planned


@dataclasses.dataclass(frozen=True)
class Generation:
    """One world shape an epoch ran at, and the planned positions each worker shard consumed.

    ``consumed[j]`` is what worker ``j`` of every rank took (ranks in lockstep take the same).

    Example::

        Generation(world_size=2, workers=1, consumed=(24,))
    """

    world_size: int
    workers: int
    consumed: tuple[int, ...]

    def to_json(self) -> list:
        return [self.world_size, self.workers, list(self.consumed)]

    @classmethod
    def from_json(cls, value: object) -> Generation:
        try:
            world, workers, consumed = value  # type: ignore[misc]
            gen = cls(int(world), int(workers), tuple(int(c) for c in consumed))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed elastic history entry {value!r}: {exc}") from None
        if gen.world_size < 1 or gen.workers < 1 or len(gen.consumed) != gen.workers or min(gen.consumed) < 0:
            raise ConfigError(f"malformed elastic history entry {value!r}")
        return gen


@dataclasses.dataclass(frozen=True)
class ElasticPosition(Position):
    """A resume position inside an elastic epoch: ``window``/``offset`` index the pieces of this
    shard's re-split stream, built from ``history`` (the world shapes the epoch ran at before).

    Example::

        ElasticPosition(3, 0, 0, (Generation(2, 1, (16,)),))
    """

    history: tuple[Generation, ...] = ()


@dataclasses.dataclass(frozen=True)
class ElasticPlan(EpochPlan):
    """The plan of a resumed elastic epoch for one shard: its pieces (``units`` lists their chunks)."""

    pieces: tuple[Piece, ...] = ()


def pieces_of_plan(plan: EpochPlan, counts: Sequence[int] | None = None) -> list[Piece]:
    """The windows of ``plan`` as whole pieces (``counts`` fills units planned without a count).

    Example::

        [p.size for p in pieces_of_plan(plan)]  # planned samples of each window
    """
    size = plan.shuffle_buffer if plan.shuffle_buffer > 1 else 1
    out = []
    for k in range(0, len(plan.units), size):
        units = list(plan.units[k : k + size])
        for j, u in enumerate(units):
            if u.stop is None and u.expected is None and counts is not None:
                units[j] = dataclasses.replace(u, expected=int(counts[u.file_index]))
        piece = Piece(tuple(units), plan.window_seed(k // size) if len(units) > 1 else None, 0, 0)
        out.append(dataclasses.replace(piece, end=piece.planned))
    return out


def drop_prefix(pieces: Sequence[Piece], consumed: int) -> list[Piece]:
    """``pieces`` without their first ``consumed`` planned positions."""
    out: list[Piece] = []
    left = consumed
    for p in pieces:
        if left >= p.size:
            left -= p.size
            continue
        out.append(dataclasses.replace(p, begin=p.begin + left) if left else p)
        left = 0
    return out


def _narrow(piece: Piece, begin: int, end: int) -> list[Piece]:
    """The positions ``[begin, end)`` of ``piece`` as pieces; cuts of one piece never overlap."""
    if begin == piece.begin and end == piece.end:
        return [piece]
    single = len(piece.units) == 1 and piece.mix_seed is None
    if single and piece.units[0].seed is None or piece.begin == 0:
        # Nothing of the window was read, or positions are file order: cut it into file ranges
        # (a mixed window dissolves into its chunks, each keeping its in-chunk shuffle).
        out, k = [], 0
        for u in piece.units:
            n = _unit_planned(u)
            a, b = max(begin, k) - k, min(end, k + n) - k
            if b > a:
                unit = dataclasses.replace(u, start=u.start + a, stop=u.start + b)
                out.append(Piece((unit,), None, 0, b - a))
            k += n
        return out
    return [Piece(piece.units, piece.mix_seed, begin, end)]  # read the window, keep [begin, end)


def take_range(pieces: Sequence[Piece], lo: int, hi: int) -> list[Piece]:
    """Positions ``[lo, hi)`` of the sequence ``pieces`` (counted over their sizes)."""
    out: list[Piece] = []
    k = 0
    for p in pieces:
        a, b = max(lo, k), min(hi, k + p.size)
        if b > a:
            out.extend(_narrow(p, p.begin + a - k, p.begin + b - k))
        k += p.size
        if k >= hi:
            break
    return out


def split_shard(rest: Sequence[Piece], rank: Shard, worker: Shard, batch_size: int) -> tuple[list[Piece], int]:
    """``rank``'s equal contiguous part of ``rest``, then ``worker``'s whole-batch blocks of it.

    Returns the pieces and the samples left out of the split (the last ``total % rank.count``).
    """
    total = sum(p.size for p in rest)
    per_rank = total // rank.count
    blocks = -(-per_rank // batch_size)
    b_lo, b_hi = _split(blocks, worker)
    lo, hi = min(b_lo * batch_size, per_rank), min(b_hi * batch_size, per_rank)
    base = rank.index * per_rank
    return take_range(rest, base + lo, base + hi), total - per_rank * rank.count


PlanPieces = Callable[[Shard, Shard], list[Piece]]


def remainder(base: PlanPieces, history: Sequence[Generation], batch_size: int) -> list[Piece]:
    """What the epoch has left after ``history``, in canonical order (rank-major, worker-minor).

    ``base(rank, worker)`` gives the pieces of the original plan of a shard of the first generation.
    """
    if not history:
        raise ConfigError("an elastic resume needs at least one generation")
    rest: list[Piece] | None = None
    for gen in history:
        parts: list[Piece] = []
        for r in range(gen.world_size):
            for j in range(gen.workers):
                rank, worker = Shard(r, gen.world_size), Shard(j, gen.workers)
                stream = base(rank, worker) if rest is None else split_shard(rest, rank, worker, batch_size)[0]
                parts.extend(drop_prefix(stream, gen.consumed[j]))
        rest = parts
    assert rest is not None
    return rest


def consumed_at(pieces: Sequence[Piece], window: int, offset: int) -> int:
    """Planned positions of ``pieces`` before ``Position(window=window, offset=offset)``."""
    done = sum(p.size for p in pieces[:window])
    if window < len(pieces):
        p = pieces[window]
        done += min(max(offset - p.begin, 0), p.size)
    return done


def position_at(pieces: Sequence[Piece], consumed: int) -> tuple[int, int]:
    """The ``(window, offset)`` after ``consumed`` planned positions of ``pieces``."""
    left = consumed
    for w, p in enumerate(pieces):
        if left < p.size:
            return w, p.begin + left
        left -= p.size
    return len(pieces), 0
