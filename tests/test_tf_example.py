"""Smoke test of ``examples/train_tf.py`` (the TensorFlow demo), with a tiny dataset, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

if os.environ.get("PYLOADER_REQUIRE_ALL") != "1":  # under CI's PYLOADER_REQUIRE_ALL=1 a missing TensorFlow fails
    pytest.importorskip("tensorflow", reason="the demo needs TensorFlow (pip install tensorflow-cpu)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_tf_demo_runs_and_compares_with_plain_tf_data(tmp_path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = ["--chunks", "3", "--samples-per-chunk", "200", "--batch-size", "64", "--epochs", "2", "--workers", "1",
            "--worker-type", "process", "--baseline", "--keep", str(tmp_path / "demo")]
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "train_tf.py"), *args],
        env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "600 samples" in out
    for name in ("pyloader", "tf.data"):
        epoch_line = rf"\[{re.escape(name)}\] epoch 2/2: loss [0-9.]+, accuracy [0-9.]+, [0-9,]+ samples/s"
        assert re.search(epoch_line, out), out
        losses = re.search(rf"  {re.escape(name)}\s+fit per epoch .* loss ([0-9.]+) -> ([0-9.]+)", out)
        assert losses, out
        assert float(losses.group(2)) < float(losses.group(1))  # it learns
    assert sorted(os.listdir(tmp_path / "demo" / "data")) == [f"chunk-{c:05d}.jsonl" for c in range(3)]
