"""The README's demo (examples/demo.py) runs end to end on a small dataset and learns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_loss_goes_down():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--chunks", "6", "--samples-per-chunk", "800", "--epochs", "2"],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    losses = [float(x) for x in re.findall(r"epoch \d+: [\d,]+ samples, \d+ batches, loss ([\d.]+)", out)]
    assert len(losses) == 2 and losses[1] < losses[0], out
    assert re.search(r"time to first batch: [\d.]+ s", out) and "samples/s" in out and "peak RSS" in out
    assert "total samples: 9,600" in out  # every sample of both epochs
