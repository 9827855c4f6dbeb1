"""The epoch plan: a pure function from (seed, epoch, shard, sample counts) to work units.

Everything that must be reproducible is decided here, before any file is read: the file order,
which sample ranges each rank and worker gets, and the seed of every shuffle. Workers only execute
units, so the stream never depends on the number of workers or their timing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pyloader_core.errors import ConfigError

__all__ = ["EpochPlan", "Shard", "WorkUnit", "derive_seed", "dropped_block", "plan_epoch"]

_MASK64 = (1 << 64) - 1

# Tags keep the seeds of different decisions independent of each other.
_FILE_ORDER, _IN_CHUNK, _WINDOW, _DROP = 1, 2, 3, 4


def derive_seed(seed: int, *parts: int) -> int:
    """A 64-bit seed from ``seed`` and ``parts``; stable across processes and machines.

    Uses :class:`numpy.random.SeedSequence` (never Python's per-process ``hash()``).
    """
    words = [int(seed) & _MASK64, *(int(p) & _MASK64 for p in parts)]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` equal parts. ``Shard(0, 1)`` is everything.

    Example::

        Shard(rank, world_size)
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard index must be in [0, count) and count >= 1, got {self.index}/{self.count}")


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """One chunk (or a sample range of it) to read and encode.

    ``start``/``stop`` select samples of the file (``stop=None``: to the end); ``seed`` is the
    in-chunk shuffle seed, or ``None`` to keep file order; ``expected`` is the file's sample count
    the plan was built from (checked when the file is read, so a changed file is an error).
    """

    epoch: int
    index: int
    file_index: int
    path: str
    start: int = 0
    stop: int | None = None
    seed: int | None = None
    expected: int | None = None  # the file's sample count the plan relied on, when known


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """The units of one epoch for one shard, in the order their samples are yielded.

    ``dropped`` counts the samples left out so that every rank gets the same number (reported by
    the plan of worker 0 only, so that adding up the plans of a rank counts them once).
    ``shuffle_buffer`` > 1 mixes the samples of that many consecutive units (a window) together,
    seeded by :meth:`window_seed`.
    """

    epoch: int
    units: tuple[WorkUnit, ...]
    seed: int
    shuffle_buffer: int = 0
    dropped: int = 0
    num_samples: int | None = None

    def window_seed(self, window: int) -> int:
        return derive_seed(self.seed, _WINDOW, self.epoch, window)


def _file_order(num_files: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(num_files)
    return np.random.default_rng(derive_seed(seed, _FILE_ORDER, epoch)).permutation(num_files)


def _split(total: int, shard: Shard) -> tuple[int, int]:
    """Contiguous part ``shard.index`` of ``total``; parts differ by at most one."""
    base, extra = divmod(total, shard.count)
    start = shard.index * base + min(shard.index, extra)
    return start, start + base + (1 if shard.index < extra else 0)


def dropped_block(total: int, dropped: int, *, seed: int, epoch: int) -> tuple[int, int]:
    """Where the ``dropped`` samples of an epoch lie in its ordered stream of ``total`` samples.

    Returns ``(start, dropped)``: the stream positions ``start, start + 1, ... start + dropped - 1``
    taken modulo ``total`` (the block may wrap from the end of the stream to its start). ``start`` is
    drawn from ``(seed, epoch)`` alone, uniformly, so over epochs every sample is equally likely to be
    left out, and no sample is left out every epoch.

    Example::

        dropped_block(110, 2, seed=42, epoch=0)  # e.g. (37, 2): stream positions 37 and 38
    """
    if dropped <= 0 or total <= 0:
        return 0, 0
    if dropped > total:
        raise ConfigError(f"cannot drop {dropped} of {total} samples")
    return derive_seed(seed, _DROP, epoch) % total, dropped


def _kept_segments(total: int, start: int, dropped: int) -> list[tuple[int, int]]:
    """The stream without the circular block ``[start, start + dropped)``: ordered ``[a, b)`` ranges."""
    if not dropped:
        return [(0, total)]
    end = start + dropped
    if end <= total:
        return [(a, b) for a, b in ((0, start), (end, total)) if b > a]
    return [(end - total, start)]


def _stream_ranges(lo: int, hi: int, segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Kept samples ``[lo, hi)`` (counted in ``segments`` order) as ranges of stream positions."""
    out = []
    k = 0
    for a, b in segments:
        s, e = max(lo, k), min(hi, k + b - a)
        if e > s:
            out.append((a + s - k, a + e - k))
        k += b - a
    return out


def plan_epoch(
    paths: Sequence[str],
    *,
    seed: int,
    epoch: int,
    shuffle: bool = False,
    shuffle_samples: bool = False,
    shuffle_buffer: int = 0,
    rank: Shard = Shard(),
    worker: Shard = Shard(),
    counts: Sequence[int] | None = None,
    align: int = 1,
) -> EpochPlan:
    """Plan ``epoch`` for one (rank, worker) shard.

    Files are ordered (shuffled per epoch with ``shuffle``) into one sample stream. With several
    ranks, each rank gets an equal contiguous range of ``total // ranks`` samples of that stream;
    the ``total % ranks`` samples left over (counted in ``dropped``) are a block of consecutive
    stream positions that starts at a place drawn from ``(seed, epoch)`` (see
    :func:`dropped_block`), so that which samples are left out changes from epoch to epoch. Within
    a rank, workers get contiguous ranges of whole ``align``-sample blocks (pass the batch size, so
    that only the rank's last batch can be short). That needs ``counts``; with one rank and no
    counts, whole files are dealt to workers round-robin.

    Every shard reads contiguous ranges of whole files: only the file holding the dropped block is
    cut around it (its two sides may go to one shard as two units).

    Example::

        plan = plan_epoch(["a", "b"], seed=42, epoch=0, shuffle=True, counts=[10, 5])
        [(u.path, u.start, u.stop) for u in plan.units]
    """
    if shuffle_buffer < 0:
        raise ConfigError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
    order = _file_order(len(paths), seed, epoch, shuffle)
    in_chunk = shuffle or shuffle_samples

    def unit(index: int, file_index: int, start: int, stop: int | None, expected: int | None = None) -> WorkUnit:
        s = derive_seed(seed, _IN_CHUNK, epoch, file_index, start) if in_chunk else None
        return WorkUnit(epoch, index, file_index, paths[file_index], start, stop, s, expected)

    if counts is None:
        if rank.count > 1:
            raise ConfigError("sharding across ranks needs the sample count of every file")
        chosen = order[worker.index :: worker.count]
        units = tuple(unit(i, int(f), 0, None) for i, f in enumerate(chosen))
        return EpochPlan(epoch, units, seed, shuffle_buffer)

    if len(counts) != len(paths):
        raise ConfigError(f"counts has {len(counts)} entries for {len(paths)} files")
    if align < 1:
        raise ConfigError(f"align must be >= 1, got {align}")
    sizes = np.asarray(counts, dtype=np.int64)[order]
    total = int(sizes.sum())
    per_rank = total // rank.count
    hole, dropped = dropped_block(total, total - per_rank * rank.count, seed=seed, epoch=epoch)
    blocks = -(-per_rank // align)
    b_lo, b_hi = _split(blocks, worker)
    lo, hi = min(b_lo * align, per_rank), min(b_hi * align, per_rank)
    lo, hi = lo + rank.index * per_rank, hi + rank.index * per_rank
    ends = np.cumsum(sizes)
    starts = ends - sizes
    units_list: list[WorkUnit] = []
    for s_lo, s_hi in _stream_ranges(lo, hi, _kept_segments(total, hole, dropped)):
        # Only files overlapping [s_lo, s_hi) of the ordered stream belong to this part of the shard.
        first = int(np.searchsorted(ends, s_lo, side="right"))
        for pos in range(first, len(order)):
            f_start, f_end = int(starts[pos]), int(ends[pos])
            if f_start >= s_hi:
                break
            a, b = max(s_lo, f_start) - f_start, min(s_hi, f_end) - f_start
            if b > a:
                units_list.append(unit(len(units_list), int(order[pos]), a, b, f_end - f_start))
    return EpochPlan(epoch, tuple(units_list), seed, shuffle_buffer, dropped if worker.index == 0 else 0, hi - lo)
