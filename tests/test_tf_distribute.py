"""Exact resume under real tf.distribute strategies (child processes: TF's devices are fixed at start-up).

MirroredStrategy over 2 logical CPUs (a custom loop and Keras ``fit``, one process), and
MultiWorkerMirroredStrategy over 2 local workers on 127.0.0.1 (a custom loop: Keras 3's ``fit``
cannot run MWMS here), each saving a checkpoint mid-epoch and resuming in fresh objects or processes:
every sample is trained on exactly once (beyond the documented per-rank remainder).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYLOADER_REQUIRE_ALL") != "1":  # under CI's PYLOADER_REQUIRE_ALL=1 a missing TensorFlow fails
    pytest.importorskip("tensorflow", reason="the tf.distribute tests need TensorFlow (pip install tensorflow-cpu)")

from helpers import write_id_chunks  # noqa: E402

SCRIPT = Path(__file__).with_name("tf_distribute_script.py")
REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
SIZES = [50, 70, 40, 41]  # 201 samples, in batches of 10 per replica (global batch 20)
HEAD = 4 * 20  # samples trained before the checkpoint: 4 steps of a global batch


def env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def start(args: list[str], cwd: Path, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env={**env(), **(extra or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, so a hang is killed whole
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Wait for every process to exit (killing all on a timeout or a failure); their outputs."""
    outs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
            outs.append(out)
            if proc.returncode != 0:
                break
    except subprocess.TimeoutExpired:
        outs.append(f"timed out after {TIMEOUT_S}s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    assert len(outs) == len(procs) and all(p.returncode == 0 for p in procs), "\n".join(o[-4000:] for o in outs)
    return outs


def assert_once(head: list[int], tail: list[int], expected: set[int]) -> None:
    counts = collections.Counter(head + tail)
    twice = sorted(i for i, c in counts.items() if c > 1)
    assert not twice, f"{len(twice)} samples trained twice: {twice[:20]}"
    assert set(counts) == expected, f"missing {sorted(expected - set(counts))[:20]}"


def test_mirrored_strategy_resumes_exactly_custom_loop_and_fit(tmp_path: Path) -> None:
    data = write_id_chunks(tmp_path / "data", SIZES)
    (out,) = finish([start(["mirrored", str(tmp_path), str(data)], tmp_path)])
    results = json.loads((tmp_path / "mirrored.json").read_text())
    # One input pipeline feeds both replicas: a step takes 2 of its batches, and that is what counts.
    assert results["loop_batches_per_step"] == 2 and results["loop_consumed"] == 2 * 4
    everything = set(range(sum(SIZES)))
    for run in ("loop", "fit_fn", "fit_split"):
        head, tail = results[run]["head"], results[run]["tail"]
        assert len(head) == HEAD, (run, len(head))
        assert_once(head, tail, everything)


def _unshare_refused() -> str | None:
    try:
        done = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -rn cannot run here: {exc}"
    return None if done.returncode == 0 else f"unshare -rn is refused here: {done.stderr.strip()}"


def test_multi_worker_mirrored_strategy_resumes_exactly_in_new_processes(tmp_path: Path) -> None:
    # TensorFlow's gRPC servers listen on 0.0.0.0: the cluster runs in a network namespace of its own,
    # where loopback is the only interface (tests/loopback_cluster.py), so nothing is reachable beyond it.
    refused = _unshare_refused()
    if refused:
        pytest.skip(f"the multi-worker cluster must be confined to loopback and {refused}")
    data = write_id_chunks(tmp_path / "data", SIZES)
    for phase in ("save", "resume"):  # new processes, new servers, new ports
        launcher = subprocess.Popen(
            ["unshare", "-rn", sys.executable, str(SCRIPT.with_name("loopback_cluster.py")), "2", str(TIMEOUT_S),
             "--", sys.executable, str(SCRIPT), "mwms", str(tmp_path), str(data), phase],
            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        finish([launcher])  # every worker (and its server) has exited, and the namespace with them
    runs = {(phase, i): json.loads((tmp_path / f"mwms-{phase}-{i}.json").read_text())
            for phase in ("save", "resume") for i in range(2)}
    shards = []
    for i in range(2):
        save, resume = runs["save", i], runs["resume", i]
        assert save["pipelines"] == resume["pipelines"] == [i] and save["batches_per_step"] == 1
        assert len(save["ids"]) == 4 * 10  # 4 steps of 10 per worker
        assert resume["weight"] > save["weight"] > 0  # the model state came back with the loader's
        assert resume["dropped"] == 1  # 201 % 2: the documented remainder, once per epoch
        counts = collections.Counter(save["ids"] + resume["ids"])
        assert max(counts.values()) == 1, "a sample trained twice"
        assert len(counts) == sum(SIZES) // 2
        shards.append(set(counts))
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == sum(SIZES) - 1 and shards[0] | shards[1] <= set(range(sum(SIZES)))
