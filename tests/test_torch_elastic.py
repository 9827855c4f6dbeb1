"""Elastic resume with torch: StatefulDataLoader num_workers changes (2 -> 0, 0 -> 2, 2 -> 1) and world sizes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader", reason="resume with torch needs torchdata")

from torch_helpers import SIZES, make_ds, write_chunks  # noqa: E402

from pyloader_core import ConfigError  # noqa: E402
from pyloader_torch.elastic import reshape_state  # noqa: E402

StatefulDataLoader = stateful.StatefulDataLoader
TOTAL = sum(SIZES)  # 200


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_elastic")
    write_chunks(root, SIZES)
    return root


def head(data, num_workers, stop, **options):
    ds = make_ds(data, batch_size=8, shuffle=True, shuffle_buffer=2, **options)
    dl = StatefulDataLoader(ds, batch_size=None, num_workers=num_workers)
    out = []
    for batch in dl:
        out.extend(batch["id"].tolist())
        if len(out) >= stop * 8:
            break
    return out, dl.state_dict()


def rest(data, num_workers, state, **options):
    ds = make_ds(data, batch_size=8, shuffle=True, shuffle_buffer=2, **options)
    dl = StatefulDataLoader(ds, batch_size=None, num_workers=num_workers)
    dl.load_state_dict(state)
    return [batch["id"].tolist() for batch in dl]


@pytest.mark.parametrize("old,new", [(2, 0), (0, 2), (2, 1)])
@pytest.mark.parametrize("stop", [3, 12])
def test_num_workers_change_resumes_rest_of_epoch(data, old, new, stop):
    seen, state = head(data, old, stop)
    batches = rest(data, new, reshape_state(state, new))
    everything = seen + [i for b in batches for i in b]
    assert len(everything) == len(set(everything)), "a sample was yielded twice"
    assert sorted(everything) == list(range(TOTAL))  # one rank: nothing is left out
    assert all(len(b) == 8 for b in batches[:-1])


def test_unconverted_worker_change_still_fails_in_torchdata(data):
    _, state = head(data, 2, 3)
    with pytest.raises(AssertionError):
        rest(data, 0, state)


def test_reshape_keeps_same_count_and_fresh_states(data):
    _, state = head(data, 2, 3)
    assert reshape_state(state, 2) is state
    assert reshape_state({}, 1) == {}
    with pytest.raises(ConfigError):
        reshape_state({"bogus": 1}, 1)


@pytest.mark.parametrize("world,new_world", [(2, 1), (2, 3)])
def test_world_size_change_with_explicit_ranks(data, world, new_world):
    seen, states = [], []
    for r in range(world):
        ids, state = head(data, 0, 4, rank=r, world_size=world)
        seen += ids
        states.append(state)
    counts, after = set(), []
    for r in range(new_world):
        batches = rest(data, 0, states[0], rank=r, world_size=new_world)
        counts.add(len(batches))
        after += [i for b in batches for i in b]
    everything = seen + after
    assert len(everything) == len(set(everything))
    assert len(counts) == 1
    left = TOTAL - TOTAL % world - len(seen)
    assert TOTAL - len(everything) == TOTAL % world + left % new_world
