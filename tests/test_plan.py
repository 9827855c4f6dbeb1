"""The epoch plan is a pure function: exactly once, equal ranks, deterministic, over many world shapes."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyloader_core import ConfigError, Shard, plan_epoch
from pyloader_core.runtime.plan import derive_seed, dropped_block

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
    plans = [
        plan_epoch(["only"], seed=0, epoch=0, rank=Shard(r, 2), worker=Shard(w, 2), counts=[9])
        for r in range(2)
        for w in range(2)
    ]
    ranges = sorted((u.start, u.stop) for p in plans for u in p.units)
    covered = [s for a, b in ranges for s in range(a, b)]
    assert len(covered) == len(set(covered)) == 8  # one sample of the nine dropped, none twice
    assert [p.num_samples for p in plans] == [2, 2, 2, 2]
    assert plans[0].dropped == 1 and sum(p.dropped for p in plans) == 2  # worker 0 of each rank reports it
    start, n = dropped_block(9, 1, seed=0, epoch=0)
    assert n == 1
    assert set(range(9)) - set(covered) == {start}


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


# -- the dropped remainder is chosen by the seed ---------------------------------------------------------


def _covered(counts, world, workers, *, seed, epoch, shuffle=True, align=1):
    """(file, sample) pairs every rank's workers get, the number of units, each rank's reported drop
    and each rank's number of samples."""
    paths = [f"p{i}" for i in range(len(counts))]
    seen, n_units, dropped, per_rank = collections.Counter(), 0, [], []
    for r in range(world):
        n = 0
        dropped.append(0)
        for w in range(workers):
            plan = plan_epoch(paths, seed=seed, epoch=epoch, shuffle=shuffle, rank=Shard(r, world),
                              worker=Shard(w, workers), counts=counts, align=align)
            for u in plan.units:
                assert 0 <= u.start < u.stop <= counts[u.file_index] and u.expected == counts[u.file_index]
                seen.update((u.file_index, s) for s in range(u.start, u.stop))
                n += u.stop - u.start
            assert plan.num_samples == sum(u.stop - u.start for u in plan.units)
            n_units += len(plan.units)
            dropped[r] += plan.dropped
        per_rank.append(n)
    return seen, n_units, dropped, per_rank


def _dropped_set(counts, world, workers, **kw):
    seen, _, _, _ = _covered(counts, world, workers, **kw)
    return {(f, s) for f, c in enumerate(counts) for s in range(c)} - set(seen)


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=10),
    world=st.integers(1, 4),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 100),
    align=st.integers(1, 8),
    shuffle=st.booleans(),
)
def test_property_union_is_everything_but_exactly_the_dropped(counts, world, workers, seed, epoch, align, shuffle):
    seen, n_units, dropped, per_rank = _covered(
        counts, world, workers, seed=seed, epoch=epoch, shuffle=shuffle, align=align
    )
    total = sum(counts)
    missing = {(f, s) for f, c in enumerate(counts) for s in range(c)} - set(seen)
    assert max(seen.values(), default=1) == 1  # no duplicates
    assert len(set(per_rank)) == 1 and per_rank[0] == total // world  # equal ranks
    assert dropped == [total % world] * world  # each rank reports the drop once (its worker 0)
    assert len(missing) == total % world  # exactly that many left out
    # Determinism: the same (seed, epoch) leaves out the same samples.
    assert missing == _dropped_set(counts, world, workers, seed=seed, epoch=epoch, shuffle=shuffle, align=align)
    # Chunk locality: files are cut only at shard boundaries and around the dropped block.
    files = sum(1 for c in counts if c)
    assert n_units <= files + world * workers + 1


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_dropped_samples_change_from_epoch_to_epoch(shuffle, world):
    counts = [10, 0, 7, 3, 25, 1, 13]  # 59 samples: 1, 2 and 3 left over for 2, 3 and 4 ranks
    assert sum(counts) % world  # something is dropped at all
    per_seed = []
    for seed in range(5):
        by_epoch = [frozenset(_dropped_set(counts, world, 2, seed=seed, epoch=e, shuffle=shuffle)) for e in range(12)]
        assert all(len(d) == sum(counts) % world for d in by_epoch)
        assert len(set(by_epoch)) > 1, f"seed {seed}: the same samples are dropped every epoch"
        assert not frozenset.intersection(*by_epoch)  # no sample is left out every epoch
        per_seed.append(by_epoch)
    assert len({d[0] for d in per_seed}) > 1  # and the seed decides


def test_dropped_samples_are_not_always_the_end_of_the_last_file():
    counts = [9, 9, 9]  # 27 samples on 2 ranks: one left over
    last = {(2, 8)}
    drops = [_dropped_set(counts, 2, 1, seed=s, epoch=0, shuffle=False) for s in range(20)]
    assert any(d != last for d in drops)
    assert len({frozenset(d) for d in drops}) > 5


def test_dropped_block_is_seeded_and_wraps():
    assert dropped_block(10, 0, seed=1, epoch=0) == (0, 0)
    assert dropped_block(0, 0, seed=1, epoch=0) == (0, 0)
    starts = {dropped_block(50, 3, seed=7, epoch=e)[0] for e in range(40)}
    assert len(starts) > 20 and all(0 <= s < 50 for s in starts)
    assert dropped_block(50, 3, seed=7, epoch=3) == dropped_block(50, 3, seed=7, epoch=3)
    with pytest.raises(ConfigError, match="cannot drop 5 of 4"):
        dropped_block(4, 5, seed=0, epoch=0)
    # A block that wraps (starts at one of the last positions) still leaves exactly `dropped` out.
    for epoch in range(200):
        start, _ = dropped_block(11, 3, seed=0, epoch=epoch)
        if start > 8:
            missing = _dropped_set([5, 6], 4, 1, seed=0, epoch=epoch, shuffle=False)
            stream = [(0, s) for s in range(5)] + [(1, s) for s in range(6)]
            assert missing == {stream[(start + i) % 11] for i in range(3)}
            break
    else:
        pytest.fail("no wrapping block in 200 epochs")


def test_one_rank_plan_drops_nothing_and_keeps_file_order():
    plan = plan_epoch(PATHS, seed=3, epoch=5, counts=COUNTS)
    assert plan.dropped == 0
    assert [(u.file_index, u.start, u.stop) for u in plan.units] == [(i, 0, c) for i, c in enumerate(COUNTS) if c]
