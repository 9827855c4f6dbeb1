"""Process workers take tasks from one queue: a slow worker never holds up a task another could run."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
from helpers import IdDataset, IdReader, worker_processes, write_id_chunks

from pyloader_core import DataLoader, WorkerDiedError

FORK = multiprocessing.get_context("fork")
GATE_WAIT_S = 60.0  # a task stuck behind the slow worker would never open the gate: a failure, not a hang
SLOW = 4  # the chunk one worker is stuck on
QUEUE = 4  # windows in flight


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_id_chunks(tmp_path_factory.mktemp("queue") / "d", [6] * 10)


class SlowChunkReader(IdReader):
    """Reading chunk ``SLOW`` waits until the windows in flight after it (``QUEUE - 1``) have been read."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.after = FORK.Value("i", 0)
        self.gate = FORK.Event()
        self.slow_pid = FORK.Value("i", 0)

    def read_file(self, path: str):
        index = int(os.path.basename(path)[5:8])
        if index == SLOW:
            self.slow_pid.value = os.getpid()
            if not self.gate.wait(GATE_WAIT_S):
                raise RuntimeError(f"chunks after {SLOW} waited behind it")
        elif index > SLOW:
            with self.after.get_lock():
                self.after.value += 1
                if self.after.value >= QUEUE - 1:
                    self.gate.set()
        return super().read_file(path)


def test_the_free_worker_takes_every_task_in_flight_while_the_other_is_stuck(data):
    reader = SlowChunkReader(batch_size=3)
    loader = DataLoader(reader, IdDataset(), None, data, num_workers=2, worker_type="process",
                        start_method="fork", max_queue_size=QUEUE)
    ids = [i for b in loader for i in b["id"].tolist()]
    assert sorted(ids) == list(range(60)) and ids == list(range(60))  # plan order kept
    assert reader.after.value == 10 - SLOW - 1


class KillSiblingReader(IdReader):
    """The worker reading chunk000 kills its idle sibling (SIGKILL), then waits to be stopped."""

    def read_file(self, path: str):
        import psutil

        me = os.getpid()
        for p in psutil.Process(os.getppid()).children():
            if p.pid != me and "resource_tracker" not in " ".join(p.cmdline()):
                os.kill(p.pid, signal.SIGKILL)
        FORK.Event().wait(GATE_WAIT_S)  # stopped by the consumer's close long before this ends
        return super().read_file(path)


def test_a_worker_that_dies_between_chunks_is_an_error_naming_it(tmp_path):
    one = write_id_chunks(tmp_path / "one", [6])  # one task: the other worker has nothing to do
    loader = DataLoader(KillSiblingReader(batch_size=3), IdDataset(), None, one, num_workers=2,
                        worker_type="process", start_method="fork")
    with pytest.raises(WorkerDiedError, match=r"worker process \d \(pid \d+\) died with exit code -9 \(SIGKILL\) "
                                              r"between chunks"):
        for _ in loader:
            pass
    assert worker_processes() == []  # the one still reading was stopped
