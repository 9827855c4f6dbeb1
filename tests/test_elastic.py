"""Elastic resume: a state saved at world size W resumes at W' (no sample twice, the documented remainder missed)."""

from __future__ import annotations

import json

import pytest
from helpers import IdDataset, IdReader, write_id_chunks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyloader_core import ConfigError, DataLoader
from pyloader_core.runtime.elastic import Generation, Piece, drop_prefix, position_at, take_range
from pyloader_core.runtime.plan import WorkUnit

SIZES = [11, 0, 17, 5, 23, 9, 14, 8]  # 87 samples
TOTAL = sum(SIZES)


class CountingReader(IdReader):
    """Records every file it reads (num_workers=0: the same object does all the reads)."""

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size=batch_size)
        self.opened: list[str] = []

    def read_file(self, path):
        self.opened.append(path)
        return super().read_file(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("elastic"), SIZES)


def make(data, rank=0, world=1, batch_size=4, **cfg):
    return DataLoader(CountingReader(batch_size), IdDataset(), None, str(data), rank=rank, world_size=world,
                      num_workers=0, **cfg)


def ids(batch) -> list[int]:
    return batch["id"].tolist()


def save_all(data, world, stop, **cfg):
    """Every rank of ``world`` takes ``stop`` batches; their ids and the (JSON) state of each rank."""
    seen, states = [], []
    for r in range(world):
        loader = make(data, r, world, **cfg)
        it = iter(loader)
        for _ in range(stop):
            seen.extend(ids(next(it)))
        states.append(json.loads(json.dumps(loader.state_dict())))
        it.close()
    return seen, states


def resume_all(data, world, state, **cfg):
    """Every rank of ``world`` loads ``state``: per rank, its batches of the resumed epoch and files read."""
    out = []
    for r in range(world):
        loader = make(data, r, world, **cfg)
        loader.load_state_dict(state)
        out.append(([ids(b) for b in loader], list(loader.datareader.opened)))
    return out


def old_dropped(world: int) -> int:
    return TOTAL % world


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    world=st.integers(1, 4),
    new_world=st.integers(1, 4),
    stop=st.integers(0, 12),
    shuffle=st.booleans(),
    shuffle_buffer=st.sampled_from([0, 2, 3]),
    drop_last=st.booleans(),
    batch_size=st.sampled_from([3, 4, 7]),
)
def test_elastic_resume_no_duplicates_equal_batches(data, world, new_world, stop, shuffle, shuffle_buffer, drop_last,
                                                    batch_size):
    cfg = dict(shuffle=shuffle, shuffle_buffer=shuffle_buffer, drop_last=drop_last, batch_size=batch_size)
    per_rank_batches = make(data, 0, world, **cfg).batches_per_epoch()
    stop = min(stop, per_rank_batches)
    seen, states = save_all(data, world, stop, **cfg)
    assert len(seen) == len(set(seen))
    resumed = resume_all(data, new_world, states[-1], **cfg)  # any rank's state: they agree in lockstep
    after = [i for batches, _ in resumed for b in batches for i in b]
    everything = seen + after
    assert len(everything) == len(set(everything)), "a sample was yielded twice"
    # A state taken before any batch resumes an ordinary epoch of the new world.
    before = old_dropped(world) if stop else 0
    rest = TOTAL - before - len(seen)
    missing = TOTAL - len(everything)
    short = rest // new_world % batch_size  # each new rank's short last batch, dropped with drop_last
    expected = before + rest % new_world + (new_world * short if drop_last else 0)
    assert missing == expected
    counts = {len(batches) for batches, _ in resumed}
    assert len(counts) == 1, f"new ranks yield {counts} batches"
    for batches, _ in resumed:
        assert all(len(b) == batch_size for b in batches[:-1])


@pytest.mark.parametrize("world,new_world", [(2, 1), (2, 3), (4, 2), (1, 4)])
def test_later_epochs_are_ordinary(data, world, new_world):
    cfg = dict(shuffle=True, shuffle_buffer=2, num_epoch=2)
    _, states = save_all(data, world, 3, **cfg)
    for r in range(new_world):
        loader = make(data, r, new_world, **cfg)
        loader.load_state_dict(states[0])
        it = iter(loader)
        for _ in it:
            if loader.epoch == 1:
                break
        reference = make(data, r, new_world, **cfg)
        reference.set_epoch(1)
        expected = [ids(b) for b in reference.iter_epochs([1])]
        got = [ids(b) for b in loader.iter_epochs([1])]
        assert got == expected


def test_resume_twice_at_other_shapes(data):
    """2 ranks -> 3 ranks (stopped again inside the elastic epoch) -> 1 rank: still no sample twice."""
    cfg = dict(shuffle=True, shuffle_buffer=2, batch_size=4)
    seen, states = save_all(data, 2, 3, **cfg)
    middle, mid_states = [], []
    for r in range(3):
        loader = make(data, r, 3, **cfg)
        loader.load_state_dict(states[0])
        it = iter(loader)
        middle.extend(i for _ in range(2) for i in ids(next(it)))
        mid_states.append(json.loads(json.dumps(loader.state_dict())))
        it.close()
    assert mid_states[0]["history"] == [[2, 1, [12]]]
    (last, _), = resume_all(data, 1, mid_states[1], **cfg)
    everything = seen + middle + [i for b in last for i in b]
    assert len(everything) == len(set(everything))
    rest = TOTAL - old_dropped(2) - len(seen)
    assert TOTAL - len(everything) == old_dropped(2) + rest % 3  # 1 rank drops nothing more


def test_same_shape_other_ranks_state_continues_own_stream(data):
    cfg = dict(shuffle=True, batch_size=4)
    _, states = save_all(data, 2, 4, **cfg)
    own = resume_all(data, 2, states[1], **cfg)[1][0]
    other = make(data, 1, 2, **cfg)
    other.load_state_dict(states[0])
    assert [ids(b) for b in other] == own


def test_chunk_locality_whole_chunks(data):
    cfg = dict(shuffle=True, batch_size=4)
    _, states = save_all(data, 2, 2, **cfg)
    resumed = resume_all(data, 3, states[0], **cfg)
    files = sum(1 for s in SIZES if s)
    opened = [len(o) for _, o in resumed]
    # Each new rank reads a contiguous run of the remainder: its share of the chunks plus its cut points.
    assert sum(opened) <= files + 2 * (2 + 3)
    assert max(opened) <= -(-files // 3) + 2 + 2


def test_old_state_without_consumption_still_refuses_another_world(data):
    _, states = save_all(data, 2, 2)
    state = dict(states[0])
    del state["consumed"]
    loader = make(data, 0, 3)
    with pytest.raises(ConfigError, match="world_size=2/3"):
        loader.load_state_dict(state)
    same = make(data, 0, 2)
    same.load_state_dict(state)  # the same shape loads as before
    assert same.next_epoch == 0


def test_state_at_epoch_start_resumes_an_ordinary_epoch(data):
    _, states = save_all(data, 2, 0, shuffle=True)
    loader = make(data, 1, 3, shuffle=True)
    loader.load_state_dict(states[0])
    reference = make(data, 1, 3, shuffle=True)
    assert [ids(b) for b in loader] == [ids(b) for b in reference]


def test_pieces_cut_without_overlap():
    unit = WorkUnit(0, 0, 0, "f", 0, 10, seed=7, expected=10)
    mixed = Piece((unit, WorkUnit(0, 1, 1, "g", 0, 6, seed=None, expected=6)), 99, 0, 16)
    started = drop_prefix([mixed], 5)
    assert started[0].begin == 5 and started[0].size == 11
    a, b = take_range(started, 0, 4), take_range(started, 4, 11)
    assert (a[0].begin, a[0].end, b[0].begin, b[0].end) == (5, 9, 9, 16)
    whole = take_range([mixed], 3, 12)  # nothing consumed: dissolved into file ranges
    assert [(p.units[0].path, p.units[0].start, p.units[0].stop) for p in whole] == [("f", 3, 10), ("g", 0, 2)]
    assert position_at(started, 11) == (1, 0)
    assert Generation.from_json([2, 1, [4]]) == Generation(2, 1, (4,))
    with pytest.raises(ConfigError):
        Generation.from_json([2, 2, [4]])
