"""The epoch plan is a pure function: exactly once, equal ranks, deterministic, over many world shapes."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyloader_core import ConfigError, Shard, plan_epoch
from pyloader_core.plan import derive_seed

PATHS = [f"f{i}" for i in range(6)]
COUNTS = [10, 0, 7, 3, 25, 1]


def _samples(plan):
    """(file, sample) pairs a plan covers."""
    out = []
    for u in plan.units:
        stop = u.stop if u.stop is not None else COUNTS[u.file_index]
        out.extend((u.file_index, s) for s in range(u.start, stop))
    return out


def test_no_shuffle_keeps_file_order_and_whole_files():
    plan = plan_epoch(PATHS, seed=1, epoch=0)
    assert [u.path for u in plan.units] == PATHS
    assert all(u.seed is None and u.start == 0 and u.stop is None for u in plan.units)


def test_shuffle_is_deterministic_and_changes_per_epoch():
    a = plan_epoch(PATHS, seed=7, epoch=0, shuffle=True)
    b = plan_epoch(PATHS, seed=7, epoch=0, shuffle=True)
    orders = {tuple(u.path for u in plan_epoch(PATHS, seed=7, epoch=e, shuffle=True).units) for e in range(6)}
    assert a == b
    assert len(orders) > 1
    assert sorted(u.path for u in a.units) == PATHS
    assert all(u.seed is not None for u in a.units)  # in-chunk shuffle seeded per unit


def test_seed_changes_order():
    orders = {tuple(u.path for u in plan_epoch(PATHS, seed=s, epoch=0, shuffle=True).units) for s in range(6)}
    assert len(orders) > 1


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(42, 1, 2) == derive_seed(42, 1, 2)
    assert len({derive_seed(42, 1, e) for e in range(100)}) == 100
    assert derive_seed(-1, 0) == derive_seed((1 << 64) - 1, 0)  # negative seeds are fine


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("align", [1, 4])
def test_ranks_and_workers_cover_exactly_once_with_equal_ranks(world, workers, align):
    total = sum(COUNTS)
    seen = collections.Counter()
    per_rank = []
    dropped = set()
    for r in range(world):
        n = 0
        for w in range(workers):
            plan = plan_epoch(
                PATHS, seed=3, epoch=1, shuffle=True, rank=Shard(r, world), worker=Shard(w, workers),
                counts=COUNTS, align=align,
            )
            s = _samples(plan)
            assert plan.num_samples == len(s)
            seen.update(s)
            n += len(s)
            if w == 0:
                dropped.add(plan.dropped)
        per_rank.append(n)
    assert len(set(per_rank)) == 1, per_rank
    assert dropped == {total % world}
    assert max(seen.values()) == 1  # never twice
    assert len(seen) == total - total % world


def test_aligned_worker_shards_leave_only_one_short_batch():
    counts = [50]
    sizes = [plan_epoch(["a"], seed=0, epoch=0, worker=Shard(w, 3), counts=counts, align=8).num_samples for w in range(3)]
    assert sum(sizes) == 50
    assert sum(1 for s in sizes if s % 8) == 1


def test_fewer_files_than_shards_shards_by_sample():
    plans = [plan_epoch(["only"], seed=0, epoch=0, rank=Shard(r, 2), worker=Shard(w, 2), counts=[9]) for r in range(2) for w in range(2)]
    ranges = sorted((u.start, u.stop) for p in plans for u in p.units)
    assert ranges == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert plans[0].dropped == 1


def test_ranks_need_counts():
    with pytest.raises(ConfigError, match="sample count"):
        plan_epoch(PATHS, seed=0, epoch=0, rank=Shard(0, 2))


def test_bad_shards_are_rejected():
    with pytest.raises(ConfigError, match="shard index"):
        Shard(2, 2)
    with pytest.raises(ConfigError, match="counts has"):
        plan_epoch(PATHS, seed=0, epoch=0, counts=[1, 2])


def test_without_counts_workers_get_files_round_robin():
    got = [u.path for w in range(4) for u in plan_epoch(PATHS, seed=0, epoch=0, worker=Shard(w, 4)).units]
    assert sorted(got) == PATHS and len(got) == len(set(got))


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    world=st.integers(1, 5),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 50),
    align=st.integers(1, 9),
)
def test_property_exactly_once_equal_ranks(counts, world, workers, seed, epoch, align):
    paths = [f"p{i}" for i in range(len(counts))]
    seen = collections.Counter()
    per_rank = []
    for r in range(world):
        n = 0
        for w in range(workers):
            plan = plan_epoch(paths, seed=seed, epoch=epoch, shuffle=True, rank=Shard(r, world), worker=Shard(w, workers), counts=counts, align=align)
            for u in plan.units:
                assert 0 <= u.start < u.stop <= counts[u.file_index]
                seen.update((u.file_index, s) for s in range(u.start, u.stop))
                n += u.stop - u.start
        per_rank.append(n)
    total = sum(counts)
    assert len(set(per_rank)) == 1
    assert max(seen.values(), default=1) == 1
    assert sum(seen.values()) == total - total % world
