"""persistent_workers=True: one pool serves every pass until close(), GC or exit; streams never mix."""

from __future__ import annotations

import gc
import threading

import psutil
import pytest
from helpers import IdDataset, IdReader, ids_of, worker_processes

from pyloader_core import DataLoader

MODES = [dict(num_workers=2), dict(num_workers=2, worker_type="process")]
IDS = ["threads", "processes"]


def worker_ids() -> set:
    threads = {t.ident for t in threading.enumerate() if t.name.startswith("pyloader-")}
    procs = {p.pid for p in worker_processes()}
    return threads | procs


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    gc.collect()
    assert worker_ids() == set()


def make(data, **kw):
    return DataLoader(IdReader(batch_size=4), IdDataset(), None, data, shuffle=True, persistent_workers=True, **kw)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_workers_survive_passes_and_are_reused(id_chunks, mode):
    loader = make(id_chunks, **mode)
    epochs = []
    seen = []
    for epoch in range(3):
        epochs.append(ids_of(loader.iter_epochs([epoch])))
        seen.append(worker_ids())
    assert seen[0] and seen[0] == seen[1] == seen[2]  # the same threads / processes every epoch
    reference = DataLoader(IdReader(batch_size=4), IdDataset(), None, id_chunks, shuffle=True, num_epoch=3, **mode)
    assert [i for e in epochs for i in e] == ids_of(reference)
    loader.close()
    assert worker_ids() == set()


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_abandoned_pass_does_not_leak_into_the_next(id_chunks, mode):
    loader = make(id_chunks, max_queue_size=6, **mode)
    it = loader.iter_epochs([0])
    next(it)  # units in flight, then abandoned
    it.close()
    again = ids_of(loader.iter_epochs([0]))
    fresh = ids_of(DataLoader(IdReader(batch_size=4), IdDataset(), None, id_chunks, shuffle=True, **mode))
    assert again == fresh
    loader.close()


def test_garbage_collected_loader_stops_its_kept_workers(id_chunks):
    loader = make(id_chunks, num_workers=2, worker_type="process")
    ids_of(loader.iter_epochs([0]))
    assert len(worker_ids()) == 2
    del loader
    gc.collect()
    assert worker_ids() == set()


def test_failed_pass_closes_the_pool(id_chunks):
    from helpers import FailingReader

    loader = DataLoader(FailingReader("chunk002", batch_size=4), IdDataset(), None, id_chunks, num_workers=2, persistent_workers=True)
    with pytest.raises(KeyError):
        ids_of(loader)
    assert worker_ids() == set()  # not kept: a pool that failed is never handed to another pass


def test_two_passes_at_once_each_get_a_pool(id_chunks):
    loader = make(id_chunks, num_workers=2)
    a, b = loader.iter_epochs([0]), loader.iter_epochs([1])
    first_a, first_b = next(a), next(b)
    assert len(worker_ids()) == 4
    rest_a, rest_b = ids_of(a), ids_of(b)
    assert sorted(first_a["id"].tolist() + rest_a) == sorted(first_b["id"].tolist() + rest_b)
    assert len(worker_ids()) == 2  # one pool kept, the other closed
    loader.close()
