"""examples/train_torch.py runs, its loss goes down, and it prints samples/s for PyLoader and the baseline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

from torch_helpers import env_with_repo  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_torch.py"


def test_train_torch_example(tmp_path: Path) -> None:
    cmd = [sys.executable, str(EXAMPLE), "--compare", "--chunks", "6", "--samples-per-chunk", "500", "--epochs", "2"]
    done = subprocess.run(
        cmd, cwd=tmp_path, env=env_with_repo(), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for name in ("pyloader", "baseline"):
        losses = [float(x) for x in re.findall(rf"^{name} epoch \d+: loss ([0-9.]+)", out, re.MULTILINE)]
        assert len(losses) == 2 and losses[1] < losses[0], out
        assert re.search(rf"^{name}: 6,000 samples in .* samples/s overall", out, re.MULTILINE), out
    assert re.search(r"^samples/s: pyloader [\d,]+ vs plain torch DataLoader [\d,]+", out, re.MULTILINE), out
