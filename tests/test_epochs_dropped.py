"""The remainder dropped to equalise ranks is chosen by (seed, epoch), through the whole loader."""

from __future__ import annotations

import pytest
from helpers import IdDataset, IdReader, ids_of, write_id_chunks

from pyloader_core import DataLoader, Shard

SIZES = [11, 0, 17, 5, 23, 9, 14]  # 79 samples
TOTAL = sum(SIZES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("dropped") / "d", SIZES)


def rank_streams(data, world, epoch, **kw):
    out = []
    for r in range(world):
        loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, data, rank=r, world_size=world, **kw)
        out.append(ids_of(loader.iter_epochs([epoch])))
    return out


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_cover_all_but_a_seeded_remainder_that_moves(data, world, shuffle):
    dropped_sets = []
    for epoch in range(6):
        streams = rank_streams(data, world, epoch, shuffle=shuffle, random_seed=11)
        seen = [i for s in streams for i in s]
        assert len(seen) == len(set(seen))  # no sample twice
        assert {len(s) for s in streams} == {TOTAL // world}  # equal ranks
        missing = set(range(TOTAL)) - set(seen)
        assert len(missing) == TOTAL % world
        dropped_sets.append(frozenset(missing))
    assert len(set(dropped_sets)) > 1  # not the same samples every epoch
    assert rank_streams(data, world, 3, shuffle=shuffle, random_seed=11) == rank_streams(
        data, world, 3, shuffle=shuffle, random_seed=11
    )  # deterministic for a seed and epoch


def test_the_remainder_is_not_always_the_end_of_the_last_file(data):
    # Without shuffling, the old plan always dropped the last sample of the last file (id 78).
    drops = set()
    for seed in range(8):
        streams = rank_streams(data, 2, 0, random_seed=seed)
        drops |= set(range(TOTAL)) - {i for s in streams for i in s}
    assert len(drops) > 1 and drops != {TOTAL - 1}


def test_torch_style_worker_shards_agree_with_the_rank(data):
    """Worker shards of a rank together read exactly what the whole rank reads."""
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, data, rank=1, world_size=3, shuffle=True)
    whole = ids_of(loader.iter_epochs([2]))
    parts = [ids_of(loader.iter_epochs([2], worker=Shard(w, 3))) for w in range(3)]
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) and sorted(flat) == sorted(whole)
    assert loader.stats()["dropped_samples"] == 2 * (TOTAL % 3)  # counted once per rank pass
