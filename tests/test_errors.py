"""Errors from user code travel to the consumer with their type, traceback and file; skips are counted."""

from __future__ import annotations

import json
import threading
import traceback
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    FailingDataset,
    FailingReader,
    IdDataset,
    IdReader,
    KillSelfReader,
    UnpicklableErrorReader,
    ids_of,
)

from pyloader_core import DataCollator, DataFormatError, DataLoader, JsonLineDataReader, WorkerDiedError, WorkerError

TOTAL = sum(13 + c for c in range(7))
MODES = [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, worker_type="process")]


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def no_pyloader_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("pyloader-")]


@pytest.mark.parametrize("mode", MODES, ids=["inline", "threads", "processes"])
def test_read_file_error_keeps_type_and_names_file(id_chunks, mode):
    loader = DataLoader(FailingReader("chunk003", KeyError, batch_size=5), IdDataset(), None, id_chunks, **mode)
    got = []
    with pytest.raises(KeyError, match="broken chunk chunk003") as info:
        for batch in loader:
            got.extend(batch["id"].tolist())
    assert got == list(range(len(got))) and len(got) >= 13 + 14 + 15 - 5  # batches before the bad chunk arrived
    text = notes(info.value)
    assert "read_file failed on" in text and "chunk003.jsonl" in text and "epoch 0, window 3" in text
    if mode.get("worker_type") == "process":
        assert "Worker traceback" in text and "helpers.py" in text
    else:
        frames = "".join(traceback.format_tb(info.value.__traceback__))
        assert "helpers.py" in frames  # the original traceback, down to the raising line
    assert no_pyloader_threads()


@pytest.mark.parametrize("mode", MODES, ids=["inline", "threads", "processes"])
def test_batch_encode_error_names_file(id_chunks, mode):
    loader = DataLoader(IdReader(batch_size=5), FailingDataset({40}), None, id_chunks, **mode)
    with pytest.raises(ValueError, match=r"cannot encode ids \[40\]") as info:
        ids_of(loader)
    assert "batch_encode failed on" in notes(info.value) and "chunk002.jsonl" in notes(info.value)


def test_collate_error_names_sources(id_chunks):
    class Bad(DataCollator):
        def collate_batch(self, batch):
            raise RuntimeError("no collate")

    with pytest.raises(RuntimeError, match="no collate") as info:
        ids_of(DataLoader(IdReader(batch_size=5), IdDataset(), Bad(), id_chunks))
    assert "collate_batch failed" in notes(info.value) and "chunk000.jsonl" in notes(info.value)


def test_unpicklable_worker_error_becomes_worker_error(id_chunks):
    loader = DataLoader(UnpicklableErrorReader(batch_size=5), IdDataset(), None, id_chunks, num_workers=1, worker_type="process")
    with pytest.raises(WorkerError, match="UnpicklableError: x/y") as info:
        ids_of(loader)
    assert "chunk001.jsonl" in notes(info.value)


def test_killed_worker_process_is_a_clear_error(id_chunks):
    loader = DataLoader(KillSelfReader("chunk002", batch_size=5), IdDataset(), None, id_chunks, num_workers=2, worker_type="process")
    with pytest.raises(WorkerDiedError, match=r"died with exit code -9 \(SIGKILL\) while processing .*chunk002\.jsonl"):
        ids_of(loader)


@pytest.mark.parametrize("mode", MODES, ids=["inline", "threads", "processes"])
def test_skip_bad_file_counts_and_delivers_the_rest_once(id_chunks, mode):
    loader = DataLoader(FailingReader("chunk004", OSError, batch_size=6), IdDataset(), None, id_chunks, on_error="skip", **mode)
    ids = ids_of(loader)
    bad = set(range(13 + 14 + 15 + 16, 13 + 14 + 15 + 16 + 17))
    assert sorted(ids) == sorted(set(range(TOTAL)) - bad)
    stats = loader.stats()
    assert stats["skipped_count"] == 17  # records: the whole file's
    assert len(stats["skipped"]) == 1 and stats["skipped"][0]["records"] == 17
    assert stats["skipped"][0]["path"].endswith("chunk004.jsonl") and "OSError" in stats["skipped"][0]["reason"]


def test_skip_bad_samples_in_batch_encode(id_chunks):
    loader = DataLoader(IdReader(batch_size=6), FailingDataset({3, 50, 51}), None, id_chunks, on_error="skip", num_workers=2)
    ids = ids_of(loader)
    assert sorted(ids) == sorted(set(range(TOTAL)) - {3, 50, 51})
    assert loader.stats()["skipped_count"] == 3


def test_skip_bad_json_record_counts_line(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.jsonl").write_text("\n".join(json.dumps({"id": i}) for i in range(5)) + "\n")
    (d / "b.jsonl").write_text(json.dumps({"id": 5}) + "\n{not json\n" + json.dumps({"id": 6}) + "\n")
    loader = DataLoader(JsonLineDataReader(batch_size=3), None, None, d, on_error="skip")
    assert sorted(ids_of(loader)) == list(range(7))
    s = loader.stats()
    assert s["skipped_count"] == 1 and s["skipped"][0]["record"] == 2 and s["skipped"][0]["path"].endswith("b.jsonl")
    with pytest.raises(DataFormatError, match=r"b\.jsonl.*2"):
        ids_of(DataLoader(JsonLineDataReader(batch_size=3), None, None, d))


def test_skip_failing_collate_counts_batch(id_chunks):
    class Picky(DataCollator):
        def collate_batch(self, batch):
            if 0 in batch["id"]:
                raise ValueError("picky")
            return {k: np.asarray(v) for k, v in batch.items()}

    loader = DataLoader(IdReader(batch_size=10), IdDataset(), Picky(), id_chunks, on_error="skip")
    ids = ids_of(loader)
    assert sorted(ids) == list(range(10, TOTAL))
    assert loader.stats()["skipped_batches"] == 1 and loader.stats()["skipped_count"] == 10  # the batch's records


def test_reader_class_not_importable_in_workers(id_chunks, tmp_path):
    """A reader defined where spawned workers cannot import it is a clear WorkerError, not a hang."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "unimportable.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from helpers import IdReader
            from pyloader_core import DataLoader, WorkerError

            class LocalReader(IdReader):  # lives in __main__ of a script run with -c: not importable
                pass

            try:
                list(DataLoader(LocalReader(batch_size=4), None, None, {str(id_chunks)!r}, num_workers=2,
                                worker_type="process", start_method="spawn"))
            except WorkerError as exc:
                print("WorkerError", "could not load the reader" in str(exc), "LocalReader" in str(exc))
            """
        )
    )
    code = script.read_text()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["WorkerError", "True", "True"], proc.stderr
