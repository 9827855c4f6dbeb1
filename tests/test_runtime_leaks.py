"""Nothing left behind, nothing touched that is not ours: killed trainers, forked children, a tiny /dev/shm."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))


def _ours(directory: str) -> set[str]:
    """Entries that PyLoader (or multiprocessing on its behalf: ``pymp-*`` temp dirs) could have made."""
    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    return {n for n in names if "pyloader" in n or n.startswith("pymp-")}


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, *sys.path]))


TRAINER = textwrap.dedent(
    """
    import os, sys
    from helpers import BlobDataset, IdReader, worker_processes
    from pyloader_core import DataLoader

    if __name__ == "__main__":
        loader = DataLoader(IdReader(batch_size=4), BlobDataset(), None, sys.argv[1], num_epoch=100,
                            num_workers=2, worker_type="process", start_method=sys.argv[2], max_queue_size=6)
        it = iter(loader)
        next(it)
        print(" ".join(str(p.pid) for p in worker_processes()), flush=True)
        sys.stdin.read()  # training goes on until the test kills us
    """
)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_training_process_leaves_no_worker_and_no_file(id_chunks, tmp_path, start_method, sig):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    shm_before, tmp_before = _ours("/dev/shm"), _ours("/tmp")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(id_chunks), start_method],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, proc.stderr.read() if not line else line
        workers = [psutil.Process(p) for p in pids]
        proc.send_signal(sig)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=2)  # the promise: within 2 s no worker is alive
        alive = [p for p in alive if _running(p)]  # a zombie has ended; reaping it is its new parent's job
        assert alive == [], f"workers still alive 2 s after {sig!r}: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert _ours("/dev/shm") - shm_before == set()
    assert _ours("/tmp") - tmp_before == set()


FORKER = textwrap.dedent(
    """
    import gc, os, sys
    from helpers import IdDataset, IdReader
    from pyloader_core import DataLoader

    if __name__ == "__main__":
        loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, sys.argv[1], num_epoch=3, num_workers=2,
                            worker_type=sys.argv[2], max_queue_size=3, persistent_workers=True)
        it = iter(loader)
        ids = next(it)["id"].tolist()
        child = os.fork()
        if child == 0:
            # A child forked after the loader started: closing its copies, collecting them and exiting
            # normally (atexit, finalizers) must leave the parent's workers alone.
            it.close()
            loader.close()
            del it, loader
            gc.collect()
            sys.exit(0)
        _, status = os.waitpid(child, 0)
        for batch in it:
            ids.extend(batch["id"].tolist())
        print(os.waitstatus_to_exitcode(status), len(ids), sorted(ids) == sorted(list(range(112)) * 3), flush=True)
    """
)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_forked_child_never_touches_the_parents_workers(id_chunks, tmp_path, worker_type):
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    proc = subprocess.run(
        [sys.executable, str(script), str(id_chunks), worker_type], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "336", "True"], proc.stderr


TINY_SHM = textwrap.dedent(
    """
    import sys
    from helpers import BlobDataset, IdReader
    from pyloader_core import DataLoader

    if __name__ == "__main__":
        total = 0
        for method in ("fork", "spawn"):
            loader = DataLoader(IdReader(batch_size=4), BlobDataset(), None, sys.argv[1], num_workers=2,
                                worker_type="process", start_method=method)
            for batch in loader:
                assert batch["blob"].shape[1] == 40_000 and (batch["blob"][:, 0] == batch["id"]).all()
                total += len(batch["id"])
        print(total, flush=True)
    """
)


def test_tiny_dev_shm_still_works(id_chunks, tmp_path):
    """Results travel in anonymous memory: a 1 MB /dev/shm (smaller than one chunk's 4 MB) is no obstacle."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is refused here: {probe.stderr.strip()}")
    script = tmp_path / "tiny.py"
    script.write_text(TINY_SHM)
    inner = f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {sys.executable} {script} {id_chunks}"
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
        capture_output=True, text=True, timeout=120, env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(2 * 112)], proc.stderr
