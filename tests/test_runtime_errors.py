"""Errors cross from workers intact: BaseException included, classes and notes kept, unpicklable results named."""

from __future__ import annotations

import pytest
from helpers import (
    ExitingReader,
    IdDataset,
    IdReader,
    LockColumnDataset,
    MiscountingReader,
    NotedErrorReader,
    ids_of,
    worker_processes,
)

from pyloader_core import DataLoader, SampleCountError, WorkerError

MODES = [
    dict(num_workers=0),
    dict(num_workers=2),
    dict(num_workers=2, worker_type="process", start_method="fork"),
    dict(num_workers=2, worker_type="process", start_method="spawn"),
]
IDS = ["inline", "threads", "fork", "spawn"]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_base_exceptions_from_the_reader_reach_the_consumer(id_chunks, mode, exc_type):
    loader = DataLoader(ExitingReader("chunk003", exc_type, batch_size=4), IdDataset(), None, id_chunks, **mode)
    with pytest.raises(exc_type) as info:
        ids_of(loader)
    assert any("chunk003.jsonl" in note for note in getattr(info.value, "__notes__", []))
    assert worker_processes() == []


@pytest.mark.parametrize("mode", MODES[2:], ids=IDS[2:])
def test_unpicklable_column_is_a_worker_error_naming_key_and_type(id_chunks, mode):
    loader = DataLoader(IdReader(batch_size=4), LockColumnDataset(), None, id_chunks, **mode)
    with pytest.raises(WorkerError, match=r"column 'guard' holds a _thread\.lock") as info:
        ids_of(loader)
    # With spawn the consumer reads chunk000 itself while the workers boot: the first worker chunk fails.
    assert "chunk000.jsonl" in str(info.value) or "chunk001.jsonl" in str(info.value)
    assert worker_processes() == []


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_error_classes_and_notes_survive_the_trip(id_chunks, mode):
    with pytest.raises(SampleCountError) as info:
        ids_of(DataLoader(MiscountingReader("chunk002", batch_size=4), IdDataset(), None, id_chunks, **mode))
    assert type(info.value) is SampleCountError and info.value.path.endswith("chunk002.jsonl")
    with pytest.raises(ValueError) as info:
        ids_of(DataLoader(NotedErrorReader("chunk004", batch_size=4), IdDataset(), None, id_chunks, **mode))
    notes = info.value.__notes__
    assert "reader note: offset 17" in notes  # the worker's own note
    assert any("chunk004.jsonl" in n for n in notes)  # PyLoader's, naming the chunk
