"""Real distributed runs: torchrun, 2 ranks, gloo on CPU, DDP training (bounded time, loopback only).

The runs listen on 127.0.0.1 only (tests/torchrun_loopback.py, ``GLOO_SOCKET_IFNAME=lo``), and every
process a run starts is killed when it ends (its own session).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

from torch_helpers import env_with_repo, write_chunks  # noqa: E402

SCRIPT = Path(__file__).with_name("torch_ddp_script.py")
LAUNCHER = Path(__file__).with_name("torchrun_loopback.py")
TIMEOUT_S = 150
NPROC = 2
EPOCHS = 2


def run_torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --nproc_per_node=NPROC args...`` on one node, listening on 127.0.0.1 only."""
    cmd = [
        sys.executable,
        str(LAUNCHER),
        "--nnodes=1",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",  # a free port, on loopback (the launcher makes the stores keep to it)
        f"--nproc_per_node={NPROC}",
        *args,
    ]
    env = env_with_repo()
    env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo listens on loopback too
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # torchrun sets them for its ranks
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own session and process group, so everything it starts can be killed
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S}s (a rank hung?); output:\n{out[-5000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left behind (a rank, a torch worker)
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def assert_loopback_only(listening: list[str]) -> None:
    """Every socket the run listened on (rank 0's view of its session) is on 127.0.0.1 or ::1."""
    assert listening, "the run listened on nothing? (the check found no socket)"
    hosts = {address.rsplit(":", 1)[0] for address in listening}
    assert hosts <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, listening


def test_torchrun_ddp_two_ranks(tmp_path: Path) -> None:
    ids = write_chunks(tmp_path / "data", (37, 50, 23, 61, 30))  # 201 samples: one dropped per epoch
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    done = run_torchrun(
        [str(SCRIPT), "--data", str(tmp_path / "data"), "--out", str(out_dir), "--epochs", str(EPOCHS)], tmp_path
    )
    assert done.returncode == 0, done.stdout[-5000:]
    results = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(NPROC)]

    for r, res in enumerate(results):
        assert (res["rank"], res["world_size"]) == (r, NPROC)
        assert (res["ds_rank"], res["ds_world_size"]) == (r, NPROC)  # taken from torch.distributed
        assert res["dropped_per_epoch"] == len(ids) % NPROC == 1
        assert len(res["epochs"]) == EPOCHS
    assert "dropped from every epoch" in done.stdout  # reported, not silent

    orders = []
    for epoch in range(EPOCHS):
        steps = [res["epochs"][epoch]["steps"] for res in results]
        assert steps == [results[0]["len"]] * NPROC == [13] * NPROC  # equal steps: 100 samples / 8
        per_rank = [res["epochs"][epoch]["ids"] for res in results]
        seen = [i for rank_ids in per_rank for i in rank_ids]
        assert len(seen) == len(set(seen)), "a sample was seen twice in one epoch"
        assert set(seen) <= set(ids)
        assert len(seen) == len(ids) - results[0]["dropped_per_epoch"]  # the dataset once, minus the reported drop
        orders.append(seen)
    assert orders[0] != orders[1]  # set_epoch reshuffled
    assert_loopback_only(results[0]["listening"])


def test_torchrun_dataset_built_before_init_process_group(tmp_path: Path) -> None:
    """Built before init_process_group: each rank finds its rank when iteration starts, in torch workers too."""
    ids = write_chunks(tmp_path / "data", (37, 50, 23, 61, 30))  # 201 samples: one dropped per epoch
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["--data", str(tmp_path / "data"), "--out", str(out_dir), "--epochs", "1", "--build-before-init"]
    done = run_torchrun([str(SCRIPT), *args, "--torch-workers", "2,0"], tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    results = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(NPROC)]
    assert_loopback_only(results[0]["listening"])

    for r, res in enumerate(results):
        assert (res["ds_rank"], res["ds_world_size"]) == (r, NPROC)
        assert res["dropped_per_epoch"] == 1
        assert [run["torch_workers"] for run in res["runs"]] == [2, 0]
    per_workers = []
    for run in range(2):
        per_rank = [res["runs"][run]["epochs"][0]["ids"] for res in results]
        assert not set(per_rank[0]) & set(per_rank[1]), "ranks read the same samples"
        seen = per_rank[0] + per_rank[1]
        assert len(seen) == len(set(seen)) == len(ids) - 1 and set(seen) <= set(ids)  # everything, minus the drop
        steps = [res["runs"][run]["epochs"][0]["steps"] for res in results]
        assert steps == [results[0]["len"]] * NPROC == [13] * NPROC  # equal batch counts: 100 samples / 8
        per_workers.append([sorted(ids_) for ids_ in per_rank])
    assert per_workers[0] == per_workers[1]  # the same shares with 2 torch workers and with none
