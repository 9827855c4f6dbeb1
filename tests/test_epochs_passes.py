"""Passes are epochs: each ``for batch in loader`` continues with the next ``num_epoch`` epochs."""

from __future__ import annotations

import json
import logging

import pytest
from helpers import IdDataset, IdReader, ids_of, write_id_chunks

from pyloader_core import ConfigError, DataLoader, LoaderOptions

SIZES = [11, 0, 17, 5, 23, 9]
TOTAL = sum(SIZES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("passes") / "d", SIZES)


def make(data, **kw):
    kw.setdefault("shuffle", True)
    return DataLoader(IdReader(batch_size=kw.pop("batch_size", 8)), IdDataset(), None, data, **kw)


def epoch_ids(data, epochs, **kw):
    """The ids of ``epochs`` from a fresh loader's iter_epochs (the reference stream)."""
    return ids_of(make(data, **kw).iter_epochs(epochs))


def test_torch_style_loop_trains_on_a_new_order_every_epoch(data):
    loader = make(data)  # num_epoch=1
    orders, epochs_seen = [], []
    for epoch in range(4):
        ids = []
        for batch in loader:
            ids.extend(batch["id"].tolist())
            epochs_seen.append((epoch, loader.epoch, loader.get_epoch(), loader.stats()["epoch"]))
        assert sorted(ids) == list(range(TOTAL))  # every sample once per epoch
        assert ids == epoch_ids(data, [epoch])  # exactly epoch `epoch`'s stream
        orders.append(tuple(ids))
    assert len(set(orders)) == 4  # four different orders, not one order four times
    assert all(e == zero_based == one_based - 1 == stat for e, zero_based, one_based, stat in epochs_seen)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_pass_runs_num_epoch_epochs_and_the_next_pass_the_following_ones(data, num_workers):
    loader = make(data, num_epoch=2, num_workers=num_workers)
    first, second = ids_of(loader), ids_of(loader)
    assert first == epoch_ids(data, [0, 1])
    assert second == epoch_ids(data, [2, 3])
    assert loader.next_epoch == 4
    for i, ids in enumerate((first[:TOTAL], first[TOTAL:], second[:TOTAL], second[TOTAL:])):
        assert sorted(ids) == list(range(TOTAL)), f"epoch {i}"


def test_get_epoch_counts_on_across_passes(data):
    loader = make(data, num_epoch=2)
    per_pass = []
    for _ in range(2):
        per_pass.append(sorted({loader.get_epoch() for _batch in loader}))
    assert per_pass == [[1, 2], [3, 4]]  # 1-based, as the original API, and continuing
    assert loader.epoch == 3 and loader.stats()["epoch"] == 3


def test_epoch_numbers_before_and_after(data):
    loader = make(data, num_epoch=3)
    assert (loader.epoch, loader.get_epoch(), loader.next_epoch) == (-1, 0, 0)
    it = iter(loader)
    assert loader.next_epoch == 3  # the pass claimed epochs 0..2 when it started
    next(it)
    assert (loader.epoch, loader.get_epoch(), it.epoch) == (0, 1, 0)
    ids_of(it)
    assert (loader.epoch, loader.get_epoch(), loader.next_epoch) == (2, 3, 3)


def test_set_epoch_chooses_where_the_next_pass_starts(data):
    loader = make(data)
    assert ids_of(loader) == epoch_ids(data, [0])
    loader.set_epoch(5)
    assert loader.next_epoch == 5
    assert ids_of(loader) == epoch_ids(data, [5])
    assert ids_of(loader) == epoch_ids(data, [6])  # and on from there
    loader.set_epoch(5)  # the same epoch again, when told so
    assert ids_of(loader) == epoch_ids(data, [5])
    loader.set_epoch(0)  # backwards too
    assert ids_of(loader) == epoch_ids(data, [0])


def test_set_epoch_validates(data):
    loader = make(data)
    for bad in (-1, 1.5, True, "1", None):
        with pytest.raises(ConfigError, match="epoch must be an int >= 0"):
            loader.set_epoch(bad)  # type: ignore[arg-type]


def test_a_broken_off_pass_still_uses_up_its_epochs(data):
    loader = make(data, num_epoch=2)
    for _batch in loader:
        break
    assert loader.next_epoch == 2
    assert ids_of(loader) == epoch_ids(data, [2, 3])


def test_iter_epochs_leaves_the_pass_sequence_alone(data):
    loader = make(data)
    assert ids_of(loader.iter_epochs([7])) == epoch_ids(data, [7])
    assert ids_of(loader) == epoch_ids(data, [0])


def test_without_shuffle_every_pass_is_the_same(data):
    loader = make(data, shuffle=False)
    assert ids_of(loader) == ids_of(loader) == list(range(TOTAL))


def test_get_batch_keeps_its_own_pass(data):
    loader = make(data, num_epoch=2)
    reference = epoch_ids(data, [0, 1])
    head = loader.get_batch()["id"].tolist()
    assert head == reference[:8]
    between = ids_of(loader)  # a `for` pass in between: the next epochs, get_batch is not disturbed
    assert between == epoch_ids(data, [2, 3])
    rest = []
    while True:
        try:
            rest.extend(loader.get_batch()["id"].tolist())
        except StopIteration:
            break
    assert head + rest == reference
    with pytest.raises(StopIteration):
        loader.get_batch()  # its pass is over
    loader.close()


# -- len() ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_epoch", [1, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_is_the_batches_of_one_full_pass(data, num_epoch, drop_last):
    loader = make(data, num_epoch=num_epoch, drop_last=drop_last, batch_size=7)
    per_epoch = TOTAL // 7 if drop_last else -(-TOTAL // 7)
    assert loader.batches_per_epoch() == per_epoch
    assert len(loader) == num_epoch * per_epoch
    for _ in range(2):  # every pass, not just the first
        assert sum(1 for _batch in loader) == len(loader)


def test_len_with_ranks_counts_this_ranks_batches(data):
    loaders = [make(data, rank=r, world_size=4, batch_size=5, num_epoch=2) for r in range(4)]
    per_rank = TOTAL // 4
    for loader in loaders:
        assert len(loader) == 2 * -(-per_rank // 5) == sum(1 for _batch in loader)


# -- num_epoch -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_num_epoch_must_be_at_least_one(data, bad):
    with pytest.raises(ConfigError, match=r"num_epoch must be an int >= 1, got"):
        make(data, num_epoch=bad)
    with pytest.raises(ConfigError, match="num_epoch"):
        LoaderOptions(num_epoch=bad)


# -- resume and the pass sequence ------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [0, 3, 9, 14])  # in epoch 2 and in epoch 3 of the second pass
def test_resume_runs_the_rest_of_the_saved_pass_then_the_following_epochs(data, stop):
    cfg = dict(num_epoch=2, shuffle_buffer=2)
    uninterrupted = make(data, **cfg)
    passes = [ids_of(uninterrupted) for _ in range(3)]
    loader = make(data, **cfg)
    ids_of(loader)  # pass 1: epochs 0, 1
    it = iter(loader)  # pass 2: epochs 2, 3
    head = [i for _ in range(stop) for i in next(it)["id"].tolist()]
    state = json.loads(json.dumps(loader.state_dict()))
    it.close()
    assert state["epoch"] == (2 if stop <= -(-TOTAL // 8) else 3) and state["pass_end"] == 4
    resumed = make(data, **cfg)
    resumed.load_state_dict(state)
    assert resumed.next_epoch == state["epoch"]
    assert head + ids_of(resumed) == passes[1]  # the rest of pass 2
    assert ids_of(resumed) == passes[2]  # then pass 3: epochs 4, 5


def test_state_after_a_finished_pass_is_the_start_of_the_next(data):
    loader = make(data)
    for _epoch in range(2):
        ids_of(loader)
    state = loader.state_dict()  # after the inner loop of epoch 1 ran out
    assert (state["epoch"], state["window"], state["offset"], state["pass_end"]) == (2, 0, 0, 3)
    resumed = make(data)
    resumed.load_state_dict(state)
    assert ids_of(resumed) == epoch_ids(data, [2])  # epoch 2, not an empty rest of epoch 1


def test_state_after_the_last_batch_resumes_an_empty_rest(data):
    loader = make(data, batch_size=TOTAL)  # one batch an epoch
    it = iter(loader)
    next(it)
    state = loader.state_dict()  # the last batch is out, the pass has not ended yet
    resumed = make(data, batch_size=TOTAL)
    resumed.load_state_dict(state)
    assert ids_of(resumed) == []  # nothing was left of epoch 0
    assert ids_of(resumed) == epoch_ids(data, [1], batch_size=TOTAL)


def test_state_before_any_pass_follows_set_epoch(data):
    loader = make(data, num_epoch=2)
    loader.set_epoch(4)
    state = loader.state_dict()
    assert (state["epoch"], state["pass_end"]) == (4, 6)
    resumed = make(data, num_epoch=2)
    resumed.load_state_dict(state)
    assert ids_of(resumed) == epoch_ids(data, [4, 5])


def test_a_loaded_state_wins_over_set_epoch_and_says_so(data, caplog):
    loader = make(data)
    it = iter(loader)
    head = next(it)["id"].tolist()
    state = loader.state_dict()
    it.close()
    resumed = make(data)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state  # a pending state is what state_dict reports
    with caplog.at_level(logging.WARNING, logger="pyloader_core.runtime.loader"):
        resumed.set_epoch(0)  # the same epoch: no warning
        assert not caplog.records
        resumed.set_epoch(3)
    assert any("resumes epoch 0" in r.getMessage() for r in caplog.records)
    assert head + ids_of(resumed) == epoch_ids(data, [0])
    assert ids_of(resumed) == epoch_ids(data, [1])  # the pass after the resumed one follows on from it
