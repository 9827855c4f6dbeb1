"""Passes are kept apart: results are keyed by the pass that asked for them, and epochs may repeat."""

from __future__ import annotations

import pytest
from helpers import IdDataset, IdReader, ids_of

from pyloader_core import DataLoader, Shard
from pyloader_core.runtime.position import Position

MODES = [
    dict(num_workers=2),
    dict(num_workers=2, worker_type="process", start_method="fork"),
    dict(num_workers=2, worker_type="process", start_method="spawn"),
]
IDS = ["threads", "fork", "spawn"]


def make(data, **kw):
    return DataLoader(IdReader(batch_size=4), IdDataset(), None, data, shuffle=True, **kw)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_kept_pool_never_feeds_an_abandoned_shards_results_to_the_next_pass(id_chunks, mode):
    """Shard 0's pass is abandoned with chunks in flight; shard 1's pass (same epoch, same unit
    numbers, another plan) on the same kept pool must get shard 1's samples only."""
    loader = make(id_chunks, persistent_workers=True, max_queue_size=6, **mode)
    it = loader.iter_epochs([0], worker=Shard(0, 2))
    next(it)
    it.close()
    swapped = ids_of(loader.iter_epochs([0], worker=Shard(1, 2)))
    loader.close()
    fresh = make(id_chunks, **mode)
    assert swapped == ids_of(fresh.iter_epochs([0], worker=Shard(1, 2)))
    assert not set(swapped) & set(ids_of(fresh.iter_epochs([0], worker=Shard(0, 2))))


@pytest.mark.parametrize("mode", [dict(num_workers=0), *MODES], ids=["inline", *IDS])
def test_an_epoch_listed_twice_is_yielded_twice(id_chunks, mode):
    loader = make(id_chunks, **mode)
    once = ids_of(loader.iter_epochs([0]))
    assert sorted(once) == list(range(112))
    assert ids_of(loader.iter_epochs([0, 0])) == once + once
    assert ids_of(loader.iter_epochs([1, 0, 1])) == ids_of(loader.iter_epochs([1])) + once + ids_of(loader.iter_epochs([1]))


def test_a_resume_position_applies_to_the_first_listed_epoch_only(id_chunks):
    loader = make(id_chunks, num_workers=2)
    once = ids_of(loader.iter_epochs([0]))
    resumed = ids_of(loader.iter_epochs([0, 0], start=Position(0, window=2, offset=3)))
    tail = ids_of(loader.iter_epochs([0], start=Position(0, window=2, offset=3)))
    assert resumed == tail + once and len(tail) < len(once)
