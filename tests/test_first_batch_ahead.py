"""A pass's first window sends its first batch ahead: the first batch never waits for the whole window."""

from __future__ import annotations

import json
import multiprocessing
import threading

import numpy as np
import pytest
from helpers import IdDataset, IdReader, LockColumnDataset, write_id_chunks

from pyloader_core import DataLoader, WorkerError
from pyloader_core.runtime.execute import WindowWork, run_window
from pyloader_core.runtime.plan import WorkUnit

SIZES = [13, 9, 17, 11, 15]
GATE_WAIT_S = 60.0  # a broken lead would deadlock: this turns it into a failure instead


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("ahead") / "d", SIZES)


class GatedAfterFirstBatch(IdDataset):
    """The second ``batch_encode`` (a worker's: the consumer encodes only joined batches, later) waits
    until the consumer has the first batch."""

    def __init__(self, gate) -> None:
        self.gate = gate
        self.calls = 0

    def batch_encode(self, batch):
        self.calls += 1
        if self.calls == 2 and not self.gate.wait(GATE_WAIT_S):
            raise RuntimeError("the consumer never got the first batch while its window was still encoding")
        return super().batch_encode(batch)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_first_batch_arrives_while_its_window_is_still_encoding(data, worker_type):
    gate = threading.Event() if worker_type == "thread" else multiprocessing.get_context("fork").Event()
    loader = DataLoader(IdReader(batch_size=4), GatedAfterFirstBatch(gate), None, data, num_workers=1,
                        worker_type=worker_type, start_method="fork")
    with loader:
        it = iter(loader)
        first = next(it)  # the worker is now blocked in its second batch_encode of chunk000
        gate.set()
        rest = [b["id"].tolist() for b in it]
    assert first["id"].tolist() == [0, 1, 2, 3]
    assert sorted(first["id"].tolist() + sum(rest, [])) == list(range(sum(SIZES)))


def _work(path: str, lead: int, **kw) -> WindowWork:
    return WindowWork((WorkUnit(epoch=0, index=0, file_index=0, path=str(path), expected=13),), 0, 4, lead=lead, **kw)


def test_the_part_sent_ahead_and_the_rest_make_the_whole_window(data):
    path = data / "chunk000.jsonl"
    whole = run_window(IdReader(), IdDataset(), _work(path, 0, start=0), worker=0, skip=False)
    parts = []
    rest = run_window(IdReader(), IdDataset(), _work(path, 1, start=0), worker=0, skip=False, send_lead=parts.append)
    (lead,) = parts
    assert lead.lead and not rest.lead
    assert [b["id"].tolist() for b in lead.batches] == [[0, 1, 2, 3]] and lead.batch_planned == [4]
    joined = [b["id"].tolist() for b in lead.batches + rest.batches]
    assert joined == [b["id"].tolist() for b in whole.batches]
    assert rest.tail["id"] == whole.tail["id"] == [12] and rest.planned == whole.planned == 13
    # A head (a batch begun in the window before) goes ahead too; the window's result then has none.
    parts.clear()
    rest = run_window(IdReader(), IdDataset(), _work(path, 1, start=2), worker=0, skip=False, send_lead=parts.append)
    assert parts[0].head["id"] == [0, 1] and parts[0].head_planned == 2 and rest.head is None
    assert [b["id"].tolist() for b in parts[0].batches] == [[2, 3, 4, 5]]


def test_nothing_goes_ahead_when_no_batch_follows_or_the_send_fails(data):
    path = data / "chunk000.jsonl"
    parts = []
    alone = run_window(IdReader(), IdDataset(), _work(path, 4), worker=0, skip=False, send_lead=parts.append)
    assert parts == [] and len(alone.batches) == 4  # 3 full + the short last: nothing would follow a lead of 4

    def refuse(part):
        raise TypeError("cannot pickle")

    kept = run_window(IdReader(), IdDataset(), _work(path, 1), worker=0, skip=False, send_lead=refuse)
    assert kept.error is None and [b["id"].tolist() for b in kept.batches][0] == [0, 1, 2, 3]
    assert len(kept.batches) == 4


class FailingThirdBatch(IdDataset):
    def batch_encode(self, batch):
        if 8 in batch["id"]:
            raise ValueError("bad sample 8")
        return super().batch_encode(batch)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_error_after_the_part_sent_ahead_comes_at_its_place(data, worker_type):
    loader = DataLoader(IdReader(batch_size=4), FailingThirdBatch(), None, data, num_workers=2,
                        worker_type=worker_type, start_method="fork")
    got = []
    with pytest.raises(ValueError, match="bad sample 8") as info:
        for b in loader:
            got.append(b["id"].tolist())
    assert got == [[0, 1, 2, 3]]  # the part sent ahead; the window's result (from [4..7] on) is the error
    assert any("chunk000.jsonl" in note for note in info.value.__notes__)


def test_a_column_that_cannot_be_pickled_still_names_the_column(data):
    loader = DataLoader(IdReader(batch_size=4), LockColumnDataset(), None, data, num_workers=1,
                        worker_type="process", start_method="fork")
    with pytest.raises(WorkerError, match="lock"):
        for _ in loader:
            pass


@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("cfg", [dict(), dict(shuffle=True), dict(shuffle=True, shuffle_buffer=2, drop_last=True)])
def test_same_batches_and_exact_resume_inside_the_part_sent_ahead(data, worker_type, cfg):
    def make():
        return DataLoader(IdReader(batch_size=4), IdDataset(), None, data, num_epoch=2, random_seed=3,
                          num_workers=2, worker_type=worker_type, start_method="fork", **cfg)

    reference = [b["id"].tolist() for b in DataLoader(IdReader(batch_size=4), IdDataset(), None, data,
                                                       num_epoch=2, random_seed=3, **cfg)]
    assert [b["id"].tolist() for b in make()] == reference
    for stop in (1, 2):  # inside the part sent ahead, then just after it
        loader = make()
        it = iter(loader)
        head = [next(it)["id"].tolist() for _ in range(stop)]
        state = json.loads(json.dumps(loader.state_dict()))
        it.close()
        resumed = make()
        resumed.load_state_dict(state)
        assert head + [b["id"].tolist() for b in resumed] == reference
    assert np.unique(sum(reference, [])).size == sum(SIZES)
