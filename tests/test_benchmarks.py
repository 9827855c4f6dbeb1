"""The benchmark suite (``python -m benchmarks.run``): a smoke run and its bookkeeping; no timing assertions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the benchmarks package lives at the repository root, outside the installed package

from benchmarks import peers, run  # noqa: E402
from benchmarks.workload import Tally, batches_of, encode_file, generate, make_encoder, make_reader  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_quick_run_has_every_row_and_the_same_work(tmp_path):
    """``--quick`` end to end: every row measured (or skipped for a missing framework), same samples."""
    out = tmp_path / "results.json"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out), "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "samples/s" in proc.stdout and "Targets:" in proc.stdout
    report = json.loads(out.read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == peers.QUICK
    assert report["consistency_problems"] == []
    expected = report["workload"]["samples"]
    assert expected == 4 * 512
    for name, row in rows.items():
        contender = peers.CONTENDERS[name]
        if "torch" in contender.requires and not HAS_TORCH:
            assert row["status"] == "skipped: torch not installed", row
            continue
        assert row["status"] == "ok", row
        assert row["samples_per_s"] > 0 and row["ttfb_s"] > 0, row
        assert row["peak_rss_bytes"] > 0, row
        assert row["tally"]["samples"] == expected * contender.scale, row
    base = rows["bare"]["tally"]
    for name, row in rows.items():
        if row["status"] == "ok" and row["scale"] == 1:
            assert {k: row["tally"][k] for k in ("samples", "ids_sum", "mask_sum", "label_sum")} == {
                k: base[k] for k in ("samples", "ids_sum", "mask_sum", "label_sum")
            }, name
    assert {t["status"] for t in report["targets"]} <= {"PASS", "MISS"}
    assert any(t["target"].startswith("peak RSS at 4x") for t in report["targets"])


def test_workload_is_deterministic_and_nested(tmp_path):
    small = generate(str(tmp_path / "a"), 2, 50, seed=3)
    big = generate(str(tmp_path / "b"), 5, 50, seed=3)
    for a, b in zip(small.files, big.files):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()  # the 1x data is the first chunks of the 4x data
    with open(small.vocab, encoding="utf-8") as f:
        vocab = f.read().split("\n")
    assert vocab[:2] == ["<pad>", "<unk>"]
    again = generate(str(tmp_path / "a"), 2, 50, seed=3)  # reused, not rewritten
    assert again == small
    lines = open(big.files[4], encoding="utf-8").read().splitlines()
    assert len(lines) == 50
    assert [json.loads(line)["id"] for line in lines] == list(range(200, 250))


def test_shared_work_matches_pyloader(tmp_path):
    """The bare loop's batches are PyLoader's (same reader and TextDataset): same tallies."""
    from pyloader_core import DataLoader, NumpyDataCollator

    w = generate(str(tmp_path / "d"), 3, 100)
    reader, encoder = make_reader(), make_encoder(w.vocab)
    bare = Tally()
    for path in w.files:
        encoded, n = encode_file(reader, encoder, path)
        assert encoded["input_ids"].shape == (n, 128) and encoded["input_ids"].dtype.name == "int64"
        for b in batches_of(encoded, n):
            bare.touch(b["input_ids"], b["attention_mask"], b["label"])
    mine = Tally()
    with DataLoader(make_reader(), make_encoder(w.vocab), NumpyDataCollator(), list(w.files), num_workers=1) as loader:
        for b in loader:
            mine.touch(b["input_ids"], b["attention_mask"], b["label"])
    assert bare.as_dict()["samples"] == 300
    assert {k: v for k, v in bare.as_dict().items() if k != "batches"} == {
        k: v for k, v in mine.as_dict().items() if k != "batches"
    }
    assert 0 < bare.label_sum < 300 and bare.mask_sum > 300 * 20 * 0.9


def test_missing_module_makes_a_skipped_row():
    fake = peers.Contender("fake", peers.bare_loop, "needs a module nobody has", requires=("no_such_module_xyz",))
    assert peers.missing_module(fake) == "no_such_module_xyz"
    assert peers.missing_module(peers.CONTENDERS["bare"]) is None
    peers.CONTENDERS["fake"] = fake
    try:
        row = run.summarise("fake", [], peers.missing_module(fake))
    finally:
        del peers.CONTENDERS["fake"]
    assert row["status"] == "skipped: no_such_module_xyz not installed"
    assert "skipped: no_such_module_xyz not installed" in run.format_table({"fake": row})


def _row(name: str, rate: float, **kw):
    c = peers.CONTENDERS[name]
    return {"name": name, "family": c.family, "scale": c.scale, "status": "ok", "samples_per_s": rate,
            "steady_samples_per_s": rate, "ttfb_s": 0.1, "peak_rss_bytes": 100e6, "peak_pss_bytes": 80e6,
            "runs": [{"samples_per_s": rate}], **kw}


def test_targets_pass_and_miss_with_margins():
    rows = {
        "bare": _row("bare", 100.0, first_chunk_s=0.08, median_chunk_s=0.07),
        "pyloader-thread-1": _row("pyloader-thread-1", 96.0),
        "pyloader-process-1": _row("pyloader-process-1", 90.0, ttfb_s=0.5),
        "pyloader-process-2": _row("pyloader-process-2", 190.0),
        "pyloader-process-2-4x": _row("pyloader-process-2-4x", 190.0, peak_rss_bytes=110e6),
        "torch-numpy-2": _row("torch-numpy-2", 95.0),
        "torch-tensor-2": _row("torch-tensor-2", 50.0),
        "pool-2": _row("pool-2", 200.0),
    }
    targets = run.check_targets(rows)
    by = {(t["target"].split()[0], t["contender"]): t for t in targets}
    assert by[("1", "pyloader-thread-1")]["status"] == "PASS"
    miss = by[("1", "pyloader-process-1")]
    assert miss["status"] == "MISS" and "short by 5.3%" in miss["detail"]
    assert by[("2", "pyloader-process-2")]["status"] == "PASS"
    assert "a perfect fork Pool 2.00x bare in this run: 95% of it" in by[("2", "pyloader-process-2")]["detail"]
    vs_torch = by[(">=", "pyloader-process-2")]
    assert vs_torch["status"] == "PASS" and "torch-numpy-2" in vs_torch["detail"]
    rss = by[("peak", "pyloader-process-2-4x")]
    assert rss["status"] == "MISS" and rss["value"] == pytest.approx(1.1)
    ttfb = by[("TTFB", "pyloader-process-1")]
    assert ttfb["status"] == "MISS" and "over by 370 ms" in ttfb["detail"]
    assert by[("TTFB", "pyloader-thread-1")]["status"] == "PASS"


def test_ratios_are_taken_round_by_round_so_a_drifting_machine_cancels_out():
    from benchmarks.run import paired_ratio

    # The machine halves its speed after round 1: medians over rounds would give 100/60 = 1.67x,
    # but within every round the contender is exactly 2x the base.
    rows = {
        "base": {"runs": [{"samples_per_s": 100.0}, {"samples_per_s": 50.0}, {"samples_per_s": 60.0}]},
        "two": {"runs": [{"samples_per_s": 200.0}, {"samples_per_s": 100.0}, {"error": "boom"}]},
    }
    assert paired_ratio(rows, "two", "base") == 2.0
    assert paired_ratio(rows, "two", "missing") is None
