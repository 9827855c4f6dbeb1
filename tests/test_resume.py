"""Checkpoint and resume: stopping after any batch and resuming gives exactly the uninterrupted stream."""

from __future__ import annotations

import json
import logging
import os
import shutil
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
    assert {"epoch", "window", "offset", "pass_end", "files"} <= set(state)
    assert json.loads(json.dumps(state)) == state and len(json.dumps(state)) < 1000
    assert state["version"] == 2 and state["files"]["count"] == len(SIZES)
    names = [e[0] for e in state["files"]["list"]]
    assert names == [f"chunk{i:03d}.jsonl" for i in range(len(SIZES))]  # relative to their directory


def test_mismatched_state_is_rejected(data):
    state = make(data, shuffle=True, random_seed=1).state_dict()
    with pytest.raises(ConfigError, match="random_seed=1/2"):
        make(data, shuffle=True, random_seed=2).load_state_dict(state)
    with pytest.raises(ConfigError, match="version 99"):
        make(data).load_state_dict({"version": 99})
    with pytest.raises(ConfigError, match="must be a dict"):
        make(data).load_state_dict([1, 2])  # type: ignore[arg-type]
    broken = dict(make(data).state_dict(), window="x")
    with pytest.raises(ConfigError, match="malformed loader state"):
        make(data).load_state_dict(broken)


# -- the state knows its files ---------------------------------------------------------------------


def _stopped(root, k=5, **cfg):
    """Ids of the first ``k`` batches of a pass over ``root``, the state after them, and the full pass."""
    full = batches(make(root, **cfg))
    loader = make(root, **cfg)
    it = iter(loader)
    head = [next(it)["id"].tolist() for _ in range(k)]
    state = json.loads(json.dumps(loader.state_dict()))
    it.close()
    return head, state, full


@pytest.fixture
def own(tmp_path):
    """A private copy of the chunks, free to rename and rewrite."""
    return write_id_chunks(tmp_path / "d", SIZES)


def _swap(a, b):
    tmp = a.with_name("swap.tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def test_swapped_file_names_are_rejected_naming_both(own):
    _, state, _ = _stopped(own, shuffle=True)
    _swap(own / "chunk002.jsonl", own / "chunk003.jsonl")
    with pytest.raises(ConfigError, match=r"renamed or swapped: chunk002\.jsonl <-> chunk003\.jsonl") as info:
        make(own, shuffle=True).load_state_dict(state)
    assert "strict_files=False" in str(info.value)  # and says how to accept it on purpose


@pytest.mark.parametrize(
    "change, message",
    [
        ("add", r"added: chunk009\.jsonl"),
        ("remove", r"removed: chunk004\.jsonl"),
        ("rename", r"renamed: chunk004\.jsonl -> chunk009\.jsonl"),
        ("resize", r"resized: chunk000\.jsonl \(\d+ -> \d+ bytes\)"),
    ],
)
def test_each_kind_of_file_change_is_named(own, change, message):
    _, state, _ = _stopped(own)
    if change == "add":
        write_id_chunks(own, [3], prefix="chunk009-")
        (own / "chunk009-000.jsonl").rename(own / "chunk009.jsonl")
    elif change == "remove":
        (own / "chunk004.jsonl").unlink()
    elif change == "rename":
        (own / "chunk004.jsonl").rename(own / "chunk009.jsonl")
    else:
        with open(own / "chunk000.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"id": 999, "input_text": "1 2", "label": 1}) + "\n")
    with pytest.raises(ConfigError, match=message):
        make(own).load_state_dict(state)


def test_reordered_files_are_rejected(own):
    files = sorted(os.path.join(own, n) for n in os.listdir(own))
    loader = make(files, shuffle=True)
    state = loader.state_dict()
    with pytest.raises(ConfigError, match="order changed"):
        make(list(reversed(files)), shuffle=True).load_state_dict(state)


def test_rewritten_content_is_caught_through_the_index(own):
    from pyloader_core.tools.indexing import build_index, write_index
    from pyloader_core.storage.listing import list_files

    write_index(own, build_index(list_files(own), "jsonl", str(own)))
    _, state, _ = _stopped(own)
    assert state["files"]["checksums"] is not None and all(e[2] for e in state["files"]["list"])
    path = own / "chunk003.jsonl"
    text = path.read_text()
    path.write_text(text.replace('"label": 0', '"label": 7'))  # same size, other content
    assert len(path.read_text()) == len(text)
    make(own).load_state_dict(state)  # the index still lists the old checksum: nothing to see yet
    write_index(own, build_index(list_files(own), "jsonl", str(own)))  # the data set was rebuilt
    with pytest.raises(ConfigError, match=r"content changed \(checksum\): chunk003\.jsonl"):
        make(own).load_state_dict(state)


def test_an_index_added_since_is_no_change(own):
    from pyloader_core.tools.indexing import build_index, write_index
    from pyloader_core.storage.listing import list_files

    head, state, full = _stopped(own, shuffle=True)
    write_index(own, build_index(list_files(own), "jsonl", str(own)))
    resumed = make(own, shuffle=True)
    resumed.load_state_dict(state)
    assert head + batches(resumed) == full


def test_moved_data_resumes(own, tmp_path):
    head, state, full = _stopped(own, shuffle=True)
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(own, moved)
    shutil.rmtree(own)
    resumed = make(moved, shuffle=True)
    resumed.load_state_dict(state)  # same names, sizes: the same data, wherever it lives
    assert head + batches(resumed) == full


def test_strict_files_false_resumes_on_purpose_with_a_warning(own, caplog):
    _, state, _ = _stopped(own)
    write_id_chunks(own, [4], prefix="chunk9")
    resumed = make(own)
    with caplog.at_level(logging.WARNING, logger="pyloader_core.runtime.loader"):
        resumed.load_state_dict(state, strict_files=False)
    messages = [r.getMessage() for r in caplog.records]
    assert any("added: chunk9000.jsonl" in m and "strict_files=False" in m for m in messages)
    tail = batches(resumed)
    assert tail and resumed.stats()["samples"] == sum(SIZES) + 4 - 5 * 8  # the current files' plan, from the position


def test_large_file_sets_keep_only_digests(tmp_path):
    root = write_id_chunks(tmp_path / "many", [2] * 300)
    state = make(root).state_dict()
    assert "list" not in state["files"] and len(json.dumps(state)) < 1000
    (root / "chunk007.jsonl").rename(root / "chunk999.jsonl")
    with pytest.raises(ConfigError, match="file names or their order changed"):
        make(root).load_state_dict(state)
    (root / "chunk999.jsonl").rename(root / "chunk007.jsonl")
    with open(root / "chunk010.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": 999, "input_text": "1", "label": 1}) + "\n")
    with pytest.raises(ConfigError, match="file sizes changed"):
        make(root).load_state_dict(state)
    (root / "chunk011.jsonl").unlink()
    with pytest.raises(ConfigError, match="300 files then, 299 now"):
        make(root).load_state_dict(state)


def test_remote_files_are_fingerprinted_by_their_reported_size():
    fsspec = pytest.importorskip("fsspec")
    from pyloader_core.runtime.fingerprint import files_changes, files_fingerprint

    fs = fsspec.filesystem("memory")
    for i, n in enumerate([10, 20, 30]):
        fs.pipe(f"/fp-test/data/part-{i}.jsonl", b"x" * n)
    files = [f"memory://fp-test/data/part-{i}.jsonl" for i in range(3)]
    try:
        before = files_fingerprint(files)
        assert [e[:2] for e in before["list"]] == [["part-0.jsonl", 10], ["part-1.jsonl", 20], ["part-2.jsonl", 30]]
        fs.pipe("/fp-test/data/part-1.jsonl", b"x" * 21)
        assert files_changes(before, files_fingerprint(files)) == ["resized: part-1.jsonl (20 -> 21 bytes)"]
        assert files_changes(before, before) == []
    finally:
        fs.rm("/fp-test", recursive=True)


def test_version_1_states_load_with_a_warning(data, caplog):
    cfg = dict(num_epoch=2, shuffle=True)
    full = batches(make(data, **cfg))
    loader = make(data, **cfg)
    it = iter(loader)
    head = [next(it)["id"].tolist() for _ in range(20)]  # into epoch 1
    state = loader.state_dict()
    it.close()
    old = {k: v for k, v in state.items() if k not in {"files", "pass_end"}}
    old.update(version=1, num_files=len(SIZES))  # what PyLoader wrote before files were fingerprinted
    resumed = make(data, **cfg)
    with caplog.at_level(logging.WARNING, logger="pyloader_core.runtime.loader"):
        resumed.load_state_dict(old)
    assert any("version 1" in r.getMessage() for r in caplog.records)
    assert head + batches(resumed) == full  # a version 1 pass ran up to num_epoch, and still does
    with pytest.raises(ConfigError, match="7 files then, 6 now"):
        make(sorted(data.iterdir())[:-1], **cfg).load_state_dict(old)
    make(sorted(data.iterdir())[:-1], **cfg).load_state_dict(old, strict_files=False)


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


def _as_version_1(state):
    old = {k: v for k, v in state.items() if k not in {"files", "pass_end"}}
    old.update(version=1, num_files=state["files"]["count"])  # what PyLoader wrote before
    return old


def test_version_1_states_of_sharded_runs_with_a_remainder_are_refused(data, tmp_path):
    cfg = dict(shuffle=True, rank=1, world_size=3)  # 79 samples: one left over, which version 1 put last
    old = _as_version_1(make(data, **cfg).state_dict())
    with pytest.raises(ConfigError, match=r"version 1 state .* set_epoch\(0\)"):
        make(data, **cfg).load_state_dict(old)
    even = write_id_chunks(tmp_path / "even", [10, 12])  # 22 samples on 2 ranks: nothing left over
    cfg = dict(shuffle=True, rank=1, world_size=2, num_epoch=2)
    full = batches(make(even, **cfg))
    loader = make(even, **cfg)
    it = iter(loader)
    head = [next(it)["id"].tolist() for _ in range(2)]
    old = _as_version_1(loader.state_dict())
    it.close()
    resumed = make(even, **cfg)
    resumed.load_state_dict(old)  # the plan is what version 1 planned: resumes exactly
    assert head + batches(resumed) == full


def test_equal_sized_files_that_swap_names_are_caught_without_an_index(tmp_path):
    """No index.json: a digest of each file's first and last bytes still tells two equal-sized files apart."""
    import json as _json

    from helpers import IdDataset, IdReader

    from pyloader_core import ConfigError

    data = tmp_path / "d"
    data.mkdir()
    for c in range(3):  # ids 100..129, 200..229, 300..329: the same width, so the same sizes
        lines = [_json.dumps({"id": 100 * (c + 1) + i, "input_text": "a b", "label": 0}) for i in range(30)]
        (data / f"chunk{c:03d}.jsonl").write_text("\n".join(lines) + "\n")
    a, b = data / "chunk001.jsonl", data / "chunk002.jsonl"
    assert a.stat().st_size == b.stat().st_size
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, data)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    it.close()
    a.rename(data / "x")
    b.rename(a)
    (data / "x").rename(b)
    again = DataLoader(IdReader(batch_size=4), IdDataset(), None, data)
    with pytest.raises(ConfigError, match=r"chunk001\.jsonl <-> chunk002\.jsonl"):
        again.load_state_dict(state)
