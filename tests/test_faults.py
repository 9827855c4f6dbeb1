"""The fault matrix: each fault ends in a clear error naming the file (or a counted skip), never a hang,
and never leaves a thread or process behind."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading

import numpy as np
import psutil
import pytest
from helpers import IdDataset, IdReader, ids_of, worker_processes, write_id_chunks

from pyloader_core import DataFormatError, DataLoader, JsonLineDataReader, NumpyDataCollator, TextDataset

MODES = [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, worker_type="process")]
IDS = ["inline", "threads", "processes"]


def workers_running() -> tuple[int, int]:
    threads = sum(t.name.startswith("pyloader-") for t in threading.enumerate())
    procs = len(worker_processes())
    return threads, procs


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert workers_running() == (0, 0)


def notes(exc: BaseException) -> str:
    return str(exc) + "\n" + "\n".join(getattr(exc, "__notes__", []))


def jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


@pytest.fixture
def data(tmp_path):
    return write_id_chunks(tmp_path / "d", [10, 10, 10, 10])


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_corrupt_record(data, mode):
    jsonl(data / "chunk001.jsonl", [{"id": 10, "input_text": "1", "label": 0}], tail='{"id": 11, "input_t\n')
    with pytest.raises(DataFormatError, match=r"chunk001\.jsonl, record 2") as info:
        ids_of(DataLoader(JsonLineDataReader(batch_size=4), None, None, data, **mode))
    assert "chunk001.jsonl" in notes(info.value)
    loader = DataLoader(JsonLineDataReader(batch_size=4), None, None, data, on_error="skip", **mode)
    assert sorted(ids_of(loader)) == [*range(10), 10, *range(20, 40)]
    assert loader.stats()["skipped_count"] == 1 and loader.stats()["skipped"][0]["record"] == 2


def test_wrong_field_type(data):
    jsonl(data / "chunk002.jsonl", [{"id": 20, "input_text": 12345, "label": 0}])
    loader = DataLoader(JsonLineDataReader(batch_size=4), TextDataset(max_seq_len=4), NumpyDataCollator(), data)
    with pytest.raises(DataFormatError, match="must hold strings") as info:
        list(loader)
    assert "chunk002.jsonl" in notes(info.value)
    skipping = DataLoader(JsonLineDataReader(batch_size=4), TextDataset(max_seq_len=4), None, data, on_error="skip")
    assert sum(len(b["label"]) for b in skipping) == 30
    assert skipping.stats()["skipped_count"] == 1


def test_truncated_and_empty_files(data):
    (data / "chunk000.jsonl").write_text("")  # empty: valid, zero samples
    with open(data / "chunk001.jsonl", "rb") as f:
        raw = gzip.compress(f.read())
    os.remove(data / "chunk001.jsonl")
    (data / "chunk001.jsonl.gz").write_bytes(raw[: len(raw) // 2])  # truncated mid-stream
    with pytest.raises(DataFormatError, match=r"chunk001\.jsonl\.gz"):
        ids_of(DataLoader(JsonLineDataReader(batch_size=4), None, None, data))
    loader = DataLoader(JsonLineDataReader(batch_size=4), None, None, data, on_error="skip")
    assert sorted(ids_of(loader)) == list(range(20, 40))
    assert [s["path"].endswith("chunk001.jsonl.gz") for s in loader.stats()["skipped"]] == [True]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_vanished_file(data, mode):
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, data, **mode)
    os.remove(data / "chunk002.jsonl")  # listed at construction, gone when read
    with pytest.raises(FileNotFoundError) as info:
        ids_of(loader)
    assert "chunk002.jsonl" in notes(info.value)
    skipping = DataLoader(IdReader(batch_size=4), IdDataset(), None, data / "chunk000.jsonl", on_error="skip", **mode)
    os.remove(data / "chunk000.jsonl")
    assert ids_of(skipping) == [] and skipping.stats()["skipped_count"] == 1


def test_unreadable_file(data):
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, data, on_error="skip")
    (data / "chunk003.jsonl").unlink()
    (data / "chunk003.jsonl").mkdir()  # a directory where a file was listed: open() fails even as root
    assert sorted(ids_of(loader)) == list(range(30))
    assert loader.stats()["skipped_count"] == 1 and "IsADirectoryError" in loader.stats()["skipped"][0]["reason"]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_schema_drift_between_chunks(data, mode):
    jsonl(data / "chunk002.jsonl", [{"id": 20 + i, "text": "x"} for i in range(10)])
    with pytest.raises(DataFormatError, match=r"schema drift.*chunk002\.jsonl|chunk002\.jsonl.*schema drift"):
        ids_of(DataLoader(JsonLineDataReader(batch_size=4), None, None, data, **mode))
    loader = DataLoader(JsonLineDataReader(batch_size=4), None, None, data, on_error="skip", **mode)
    assert sorted(ids_of(loader)) == [*range(20), *range(30, 40)]
    assert loader.stats()["skipped_count"] == 10  # the drifted chunk's records


class MidChunkFailure(IdReader):
    """Parses a few records, then fails: no partial chunk may reach the consumer."""

    def read_file(self, path):
        cols, n = super().read_file(path)
        if path.endswith("chunk001.jsonl"):
            raise RuntimeError("disk went away after 3 records")
        return cols, n


def test_reader_raising_mid_chunk(data):
    with pytest.raises(RuntimeError, match="disk went away") as info:
        ids_of(DataLoader(MidChunkFailure(batch_size=5), IdDataset(), None, data, num_workers=2))
    assert "chunk001.jsonl" in notes(info.value)
    loader = DataLoader(MidChunkFailure(batch_size=5), IdDataset(), None, data, num_workers=2, on_error="skip")
    assert sorted(ids_of(loader)) == [*range(10), *range(20, 40)]


class InterruptingReader(IdReader):
    """Delivers Ctrl-C to the main thread while it is blocked waiting for this chunk."""

    def read_file(self, path):
        if path.endswith("chunk002.jsonl"):
            # A real SIGINT, as from a terminal; the chunk is held back (a slow disk) so the consumer
            # is blocked waiting for it when the signal lands.
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(0.2)
        return super().read_file(path)


def test_keyboard_interrupt_while_waiting(data):
    loader = DataLoader(InterruptingReader(batch_size=5), IdDataset(), None, data, num_workers=2)
    with pytest.raises(KeyboardInterrupt):
        ids_of(loader)


def test_keyboard_interrupt_in_training_step_with_processes(data):
    loader = DataLoader(IdReader(batch_size=5), IdDataset(), None, data, num_workers=2, worker_type="process")
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(loader):
            if i == 0:
                # Ctrl-C in a terminal reaches the workers too: they ignore it and the consumer decides.
                for p in worker_processes():
                    os.kill(p.pid, signal.SIGINT)
            if i == 3:
                raise KeyboardInterrupt


def test_sigint_to_workers_does_not_kill_them(data):
    loader = DataLoader(IdReader(batch_size=5), IdDataset(), None, data, num_epoch=3, num_workers=2, worker_type="process", max_queue_size=2)
    it = iter(loader)
    first = next(it)["id"].tolist()
    for p in worker_processes():
        os.kill(p.pid, signal.SIGINT)
    rest = ids_of(it)
    assert sorted(first + rest) == sorted(list(range(40)) * 3)
    assert np.array_equal(np.sort(first + rest), np.sort(np.tile(np.arange(40), 3)))
