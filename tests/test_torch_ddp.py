"""A real distributed run: torchrun, 2 ranks, gloo on CPU, DDP training for 2 epochs (bounded time)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install pyloader[torch])")

from torch_helpers import env_with_repo, write_chunks  # noqa: E402

SCRIPT = Path(__file__).with_name("torch_ddp_script.py")
TIMEOUT_S = 150
NPROC = 2
EPOCHS = 2


def run_torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NPROC}", *args]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env_with_repo(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a hang can be killed whole
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S}s (a rank hung?); output:\n{out[-5000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


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
