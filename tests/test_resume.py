"""Checkpoint and resume: stopping after any batch and resuming gives exactly the uninterrupted stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import IdDataset, IdReader, write_id_chunks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyloader_core import ConfigError, DataLoader

SIZES = [11, 0, 17, 5, 23, 9, 14]


def make(data, **kw):
    batch_size = kw.pop("batch_size", 8)
    return DataLoader(IdReader(batch_size=batch_size), IdDataset(), None, data, **kw)


def batches(it):
    return [b["id"].tolist() for b in it]


def check_resume_everywhere(data, stops=None, **cfg):
    """Reference stream, then for each stop point: run, checkpoint, resume in a new loader, compare."""
    full = batches(make(data, **cfg))
    points = range(len(full) + 1) if stops is None else stops
    for k in points:
        loader = make(data, **cfg)
        it = iter(loader)
        head = [next(it)["id"].tolist() for _ in range(k)]
        state = json.loads(json.dumps(loader.state_dict()))  # must survive JSON
        it.close()
        resumed = make(data, **cfg)
        resumed.load_state_dict(state)
        tail = batches(resumed)
        assert head + tail == full, f"stop after batch {k}: state {state}"
    return full


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("resume") / "d", SIZES)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(num_epoch=2),
        dict(num_epoch=2, shuffle=True),
        dict(num_epoch=2, shuffle=True, shuffle_buffer=3, drop_last=True),
        dict(num_epoch=3, shuffle=True, shuffle_buffer=2, num_workers=3, batch_size=5),
        dict(num_epoch=2, shuffle=True, rank=1, world_size=3),
    ],
    ids=["plain", "shuffle", "buffer-droplast", "threads", "rank"],
)
def test_resume_after_every_batch(data, cfg):
    full = check_resume_everywhere(data, **cfg)
    assert full  # the configuration yields batches at all


def test_resume_with_process_workers(data):
    check_resume_everywhere(data, stops=[0, 3, 9], num_epoch=2, shuffle=True, shuffle_buffer=2, num_workers=2, worker_type="process")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    num_workers=st.integers(0, 3),
    worker_type=st.sampled_from(["thread", "process"]),
    shuffle=st.booleans(),
    shuffle_buffer=st.integers(0, 4),
    drop_last=st.booleans(),
    batch_size=st.integers(1, 13),
    world=st.integers(1, 3),
    seed=st.integers(0, 1000),
    stop=st.floats(0, 1),
    data_=st.data(),
)
def test_property_resume_is_exact(
    data, num_workers, worker_type, shuffle, shuffle_buffer, drop_last, batch_size, world, seed, stop, data_
):
    rank = data_.draw(st.integers(0, world - 1))
    cfg = dict(
        num_epoch=2, num_workers=num_workers, shuffle=shuffle, shuffle_buffer=shuffle_buffer, drop_last=drop_last,
        batch_size=batch_size, random_seed=seed, rank=rank, world_size=world,
        # fork keeps 40 examples of process pools fast; spawn is covered by the tests above
        worker_type=worker_type, start_method="fork",
    )
    full = batches(make(data, **cfg))
    k = int(stop * len(full))
    check_resume_everywhere(data, stops=[k], **cfg)


def test_state_is_small_and_a_position(data):
    loader = make(data, shuffle=True, shuffle_buffer=3)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    it.close()
    assert {"epoch", "window", "offset"} <= set(state) and len(json.dumps(state)) < 400


def test_mismatched_state_is_rejected(data):
    state = make(data, shuffle=True, random_seed=1).state_dict()
    with pytest.raises(ConfigError, match="random_seed=1/2"):
        make(data, shuffle=True, random_seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="version"):
        make(data).load_state_dict({"version": 99})


def test_resumed_windows_before_the_position_are_not_read(data):
    loader = make(data, shuffle=True)
    it = iter(loader)
    for _ in range(6):
        next(it)
    state = loader.state_dict()
    it.close()
    resumed = make(data, shuffle=True)
    resumed.load_state_dict(state)
    list(resumed)
    assert resumed.stats()["units"] == len(SIZES) - state["window"]


SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from helpers import IdReader, IdDataset
    from pyloader_core import DataLoader
    if __name__ == "__main__":
        loader = DataLoader(IdReader(batch_size=8), IdDataset(), None, {data!r}, num_epoch=2, shuffle=True,
                            shuffle_buffer=2, num_workers=2, worker_type="process")
        if sys.argv[1] == "resume":
            loader.load_state_dict(json.load(open(sys.argv[2])))
        out = []
        for i, b in enumerate(loader):
            out.append(b["id"].tolist())
            if sys.argv[1] == "stop" and i == 4:
                json.dump(loader.state_dict(), open(sys.argv[2], "w"))
                break
        print(json.dumps(out))
    """
)


def test_resume_in_a_new_process(data, tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(__file__), data=str(data)))
    state = tmp_path / "state.json"

    def run(*args):
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    full = run("full", "-")
    head = run("stop", str(state))
    tail = run("resume", str(state))
    assert head + tail == full
    assert sorted(np.concatenate(full[: len(full) // 2]).tolist()) == list(range(sum(SIZES)))
