"""Mid-epoch resume through torchdata's StatefulDataLoader (the Stateful protocol), torch workers 0/1/2."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader", reason="resume with torch needs torchdata")

from torch_helpers import SIZES, make_ds, write_chunks  # noqa: E402

from pyloader_core import ConfigError  # noqa: E402

StatefulDataLoader = stateful.StatefulDataLoader


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_resume")
    write_chunks(root, SIZES)
    return root


def run(data, num_workers, epochs, stop=None, state=None, **options):
    """Batches (as id lists) of ``epochs`` epochs; stop after ``stop`` batches and return the state."""
    ds = make_ds(data, batch_size=8, shuffle=True, shuffle_buffer=2, **options)
    dl = StatefulDataLoader(ds, batch_size=None, num_workers=num_workers)
    if state is not None:
        dl.load_state_dict(state)
    out, taken = [], 0
    for _ in range(epochs):
        for batch in dl:
            out.append(batch["id"].tolist())
            taken += 1
            if stop is not None and taken == stop:
                return out, dl.state_dict()
    return out, None


@pytest.mark.parametrize("num_workers", [0, 1, 2])
@pytest.mark.parametrize("stop", [3, 17, 30])  # early and late in epoch 0, and in epoch 1
def test_stateful_dataloader_resumes_exactly(data, num_workers, stop):
    full, _ = run(data, num_workers, epochs=2)
    head, state = run(data, num_workers, epochs=2, stop=stop)
    assert state is not None
    # The resumed loader first finishes the epoch it stopped in (25 batches an epoch).
    tail, _ = run(data, num_workers, epochs=2 - stop // 25, state=state)
    assert head + tail == full
    ids = [i for b in full[:25] for i in b]
    assert sorted(ids) == list(range(sum(SIZES)))


def test_dataset_state_is_json_serialisable(data):
    ds = make_ds(data, batch_size=8, shuffle=True)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["epoch"] == 0 and state["loader"]["offset"] == 8
    it.close()


# -- the state knows its files -----------------------------------------------------------------------


def _state_after(root, batches=3, **options):
    ds = make_ds(root, batch_size=8, shuffle=True, **options)
    it = iter(ds)
    head = [next(it)["id"].tolist() for _ in range(batches)]
    state = json.loads(json.dumps(ds.state_dict()))
    it.close()
    return head, state


def test_resume_on_changed_files_is_an_error_naming_the_change(tmp_path):
    root = tmp_path / "d"
    write_chunks(root, SIZES)
    _, state = _state_after(root)
    assert state["loader"]["files"]["count"] == len(SIZES)
    (root / "part-0001.jsonl").rename(root / "part-0009.jsonl")
    ds = make_ds(root, batch_size=8, shuffle=True)
    ds.load_state_dict(state)
    with pytest.raises(ConfigError, match=r"renamed: part-0001\.jsonl -> part-0009\.jsonl"):
        next(iter(ds))


@pytest.mark.parametrize("how", ["argument", "attribute", "constructor"])
def test_strict_files_false_passes_through(tmp_path, how):
    root = tmp_path / "d"
    write_chunks(root, SIZES)
    head, state = _state_after(root)
    write_chunks(tmp_path / "extra", (5,), start_id=1000)
    (tmp_path / "extra" / "part-0000.jsonl").rename(root / "part-0100.jsonl")  # a file added
    ds = make_ds(root, batch_size=8, shuffle=True, **({"strict_files": False} if how == "constructor" else {}))
    if how == "attribute":
        ds.strict_files = False
    ds.load_state_dict(state, **({"strict_files": False} if how == "argument" else {}))
    ids = [i for b in ds for i in b["id"].tolist()]
    assert ids and len(ids) == sum(SIZES) + 5 - 3 * 8  # the rest of the current files' epoch
    assert not set(ids) & {i for b in head for i in b}


def test_stateful_dataloader_workers_check_the_files(tmp_path):
    root = tmp_path / "d"
    write_chunks(root, SIZES)
    _, state = run(root, 2, epochs=1, stop=4)
    with open(root / "part-0000.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": 9999, "x": [0.0, 0.0], "label": 0}) + "\n")  # resized
    ds = make_ds(root, batch_size=8, shuffle=True, shuffle_buffer=2)
    dl = StatefulDataLoader(ds, batch_size=None, num_workers=2)
    dl.load_state_dict(state)
    with pytest.raises(ConfigError, match=r"resized: part-0000\.jsonl"):
        next(iter(dl))
