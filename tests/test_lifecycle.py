"""Every way a pass can end stops its threads and processes; the counts return to their baseline."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest
from helpers import IdDataset, IdReader, worker_processes

from pyloader_core import DataLoader

SHM_DIR = "/dev/shm"

MODES = [dict(num_workers=2), dict(num_workers=2, worker_type="process")]
IDS = ["threads", "processes"]


def workers_running() -> tuple[int, int]:
    threads = sum(t.name.startswith("pyloader-") for t in threading.enumerate())
    return threads, len(worker_processes())


def shm_files() -> list[str]:
    return sorted(f for f in os.listdir(SHM_DIR) if "pyloader" in f) if os.path.isdir(SHM_DIR) else []


@pytest.fixture
def loader(id_chunks):
    def make(**mode):
        return DataLoader(IdReader(batch_size=4), IdDataset(), None, id_chunks, num_epoch=3, max_queue_size=4, **mode)

    return make


@pytest.fixture(autouse=True)
def baseline():
    before, files = workers_running(), shm_files()
    yield
    assert workers_running() == before
    assert shm_files() == files  # results travel in anonymous memory: nothing is ever named in /dev/shm


def started(it) -> None:
    next(it)
    assert it.workers_alive() == 2


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_exhaustion(loader, mode):
    it = iter(loader(**mode))
    started(it)
    for _ in it:
        pass
    assert it.workers_alive() == 0 and workers_running() == (0, 0)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_close_and_idempotent(loader, mode):
    ld = loader(**mode)
    it = iter(ld)
    started(it)
    ld.close()
    ld.close()
    it.close()
    assert workers_running() == (0, 0)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_context_manager(loader, mode):
    with loader(**mode) as ld:
        it = iter(ld)
        started(it)
    assert workers_running() == (0, 0)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_break_then_garbage_collection(loader, mode):
    ld = loader(**mode)
    for i, _ in enumerate(ld):
        if i == 2:
            assert workers_running() != (0, 0)
            break
    # No close(): dropping the loop's iterator is enough (CPython frees it at once; gc for safety).
    gc.collect()
    assert workers_running() == (0, 0)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_exception_in_consumer_loop(loader, mode):
    ld = loader(**mode)
    with pytest.raises(ZeroDivisionError):
        for i, _ in enumerate(ld):
            if i == 1:
                1 / 0
    gc.collect()
    assert workers_running() == (0, 0)


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_get_batch_then_close(loader, mode):
    ld = loader(**mode)
    ld.get_batch()
    assert workers_running() != (0, 0)
    ld.close()
    assert workers_running() == (0, 0)


SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from helpers import IdReader, IdDataset, worker_processes
    from pyloader_core import DataLoader

    if __name__ == "__main__":
        loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, {data!r}, num_epoch=50,
                            num_workers=2, worker_type={wtype!r}, max_queue_size=4)
        it = iter(loader)
        next(it)
        kids = worker_processes()
        print(os.getpid(), " ".join(str(p.pid) for p in kids), flush=True)
        # exit mid-epoch without closing anything
    """
)


@pytest.mark.parametrize("wtype", ["thread", "process"])
def test_interpreter_exit_mid_epoch(id_chunks, tmp_path, wtype):
    script = tmp_path / "exit_script.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(__file__), data=str(id_chunks), wtype=wtype))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    parent, *pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == (2 if wtype == "process" else 0)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_close_does_not_wait_for_a_stuck_worker_process(id_chunks):
    import time

    from helpers import StuckReader

    loader = DataLoader(StuckReader(batch_size=4), IdDataset(), None, id_chunks, num_workers=2, worker_type="process")
    it = iter(loader)
    next(it)  # the first chunk is read by the consumer; both workers are now stuck in read_file
    start = time.monotonic()
    it.close()
    assert time.monotonic() - start < 5  # terminated after the grace period, not after 120 s
    assert workers_running() == (0, 0)


def test_files_it_did_not_create_are_never_touched(id_chunks):
    """Names that look like an old loader's, of a dead pid and of this one, stay where they are."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)  # a pid that has exited
    paths = [os.path.join(SHM_DIR, f"pyloader-{pid}-0-init-test") for pid in (dead, os.getpid())]
    for path in paths:
        with open(path, "wb") as f:
            f.write(b"x")
    try:
        loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, id_chunks, num_workers=1, worker_type="process")
        ids = [i for b in loader for i in b["id"].tolist()]
        assert len(ids) == sum(13 + c for c in range(7))
        assert all(os.path.exists(p) for p in paths)
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)
