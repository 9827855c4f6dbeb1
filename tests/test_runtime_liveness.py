"""Liveness: a stuck or stopped worker is an error naming it (with ``timeout``) or a warning; nothing hangs."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from helpers import GatedReader, IdDataset, StuckReader, worker_processes

from pyloader_core import ConfigError, DataLoader, WorkerTimeoutError
from pyloader_core.runtime import stall


def test_timeout_must_be_positive(id_chunks):
    for bad in (0, -1, "2", True):
        with pytest.raises(ConfigError, match="timeout"):
            DataLoader(StuckReader(batch_size=4), IdDataset(), None, id_chunks, timeout=bad)


def test_stopped_worker_process_is_a_timeout_error_naming_it(id_chunks):
    """SIGSTOP (as a stuck network read or a deadlock would) -> WorkerTimeoutError, not a hang."""
    loader = DataLoader(StuckReader(batch_size=4), IdDataset(), None, id_chunks, num_workers=1,
                        worker_type="process", start_method="fork", timeout=2)
    it = iter(loader)
    try:
        # chunk000 is fast, every later chunk blocks: the worker holds chunk001 from now on.
        for _ in range(3):
            next(it)
        (worker,) = worker_processes()
        os.kill(worker.pid, signal.SIGSTOP)
        with pytest.raises(WorkerTimeoutError) as info:
            for _ in it:
                pass
        message = str(info.value)
        assert f"worker process 0 (pid {worker.pid})" in message
        assert "chunk001.jsonl" in message and "timeout=2s" in message
        assert "stopped" in (info.value.stack or "")
    finally:
        it.close()
    assert worker_processes() == []  # a stopped worker is killed on close


def test_stuck_worker_process_timeout_carries_its_python_stack(id_chunks):
    loader = DataLoader(StuckReader(batch_size=4), IdDataset(), None, id_chunks, num_workers=2,
                        worker_type="process", start_method="fork", timeout=1)
    with pytest.raises(WorkerTimeoutError) as info:
        for _ in loader:
            pass
    stack = info.value.stack or ""
    assert "read_file" in stack and "helpers.py" in stack, stack  # faulthandler's dump of the stuck worker
    assert isinstance(info.value, TimeoutError)
    assert worker_processes() == []


def test_stuck_worker_thread_timeout_names_it_with_its_stack(id_chunks):
    reader = GatedReader(batch_size=4)
    loader = DataLoader(reader, IdDataset(), None, id_chunks, num_workers=2, timeout=0.5)
    try:
        with pytest.raises(WorkerTimeoutError) as info:
            for _ in loader:
                pass
        assert "worker thread" in str(info.value) and "chunk00" in str(info.value)
        assert "read_file" in (info.value.stack or "") and "wait" in (info.value.stack or "")
    finally:
        reader.release.set()
        loader.close()


class _ReleaseOnWarning(logging.Handler):
    def __init__(self, reader: GatedReader) -> None:
        super().__init__(logging.WARNING)
        self.reader = reader
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.reader.release.set()


def test_without_timeout_a_stall_is_logged_naming_the_worker_and_chunk(id_chunks, monkeypatch):
    monkeypatch.setattr(stall, "WARN_EVERY_S", 0.2)
    reader = GatedReader(batch_size=4)
    handler = _ReleaseOnWarning(reader)
    logging.getLogger("pyloader_core.runtime.stall").addHandler(handler)
    try:
        ids = [i for b in DataLoader(reader, IdDataset(), None, id_chunks, num_workers=2) for i in b["id"].tolist()]
    finally:
        logging.getLogger("pyloader_core.runtime.stall").removeHandler(handler)
        reader.release.set()
    assert sorted(ids) == list(range(112))  # the warning released the reader: the pass then completed
    assert handler.messages and "worker thread" in handler.messages[0] and "chunk00" in handler.messages[0]
    assert "set timeout=" in handler.messages[0]
