"""Mid-epoch resume through torchdata's StatefulDataLoader (the Stateful protocol), torch workers 0/1/2."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader", reason="resume with torch needs torchdata")

from torch_helpers import SIZES, make_ds, write_chunks  # noqa: E402

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
