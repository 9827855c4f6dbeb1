"""The benchmark's "lists" workload: its user-code classes, and every contender doing the same work (no timing)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the benchmarks package lives at the repository root, outside the installed package

from benchmarks import lists_workload as lw  # noqa: E402
from benchmarks import peers, run  # noqa: E402
from benchmarks.workload import generate  # noqa: E402

KEYS = ("samples", "ids_sum", "mask_sum", "label_sum")
CHUNKS, PER_CHUNK = 3, 150  # 150 = 2 x 64 + 22: every chunk ends with a short batch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(str(tmp_path_factory.mktemp("lists")), CHUNKS, PER_CHUNK, seed=1)


@pytest.fixture(scope="module")
def bare_tally(data):
    return _measure("lists-bare", data)


def _measure(name: str, data) -> dict[str, int]:
    ctx = peers.Context(data.vocab, list(data.files), data.samples_per_chunk)
    return peers.measure(peers.CONTENDERS[name], ctx)["tally"]


def test_reader_returns_columns_of_lists(data):
    columns, n = lw.JsonLinesReader(batch_size=64).read_file(data.files[0])
    assert n == PER_CHUNK
    assert set(columns) == {"id", "input_text", "label"}
    assert all(isinstance(v, list) and len(v) == n for v in columns.values())
    assert isinstance(columns["input_text"][0], str) and columns["id"][:3] == [0, 1, 2]


def test_dataset_returns_lists_of_lists_cut_and_padded():
    long_text = " ".join(f"w{i}" for i in range(300))
    out = lw.HashedTextDataset().batch_encode({"input_text": ["a b c", long_text, ""], "label": [1, 0, 1]})
    assert set(out) == {"input_ids", "attention_mask", "label"}
    for key in ("input_ids", "attention_mask"):
        assert type(out[key]) is list and all(type(row) is list and len(row) == 128 for row in out[key])
        assert all(type(x) is int for row in out[key] for x in row)
    assert out["label"] == [1, 0, 1] and all(type(x) is int for x in out["label"])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert mask[0] == [1] * 3 + [0] * 125 and mask[1] == [1] * 128 and mask[2] == [0] * 128
    import zlib

    assert ids[0][:3] == [zlib.crc32(w.encode()) % 30000 + 2 for w in "abc"] and ids[0][3:] == [0] * 125
    assert all(2 <= x < 30002 for x in ids[1])
    assert ids[1] == [zlib.crc32(f"w{i}".encode()) % 30000 + 2 for i in range(128)]  # cut to the first 128


def test_ids_are_the_same_in_every_process():
    """crc32, not hash(): a worker with another PYTHONHASHSEED must give the same ids."""
    text = "the quick brown fox jumps over the lazy dog"
    here = lw.HashedTextDataset().batch_encode({"input_text": [text], "label": [0]})["input_ids"][0]
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from benchmarks.lists_workload import "
            f"HashedTextDataset as D; print(json.dumps(D().batch_encode({{'input_text': [{text!r}], 'label': [0]}})"
            "['input_ids'][0]))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code, REPO], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here


def test_collator_makes_int64_arrays():
    encoded = lw.HashedTextDataset().batch_encode({"input_text": ["x y", "z"], "label": [0, 1]})
    batch = lw.ListsCollator().collate_batch(encoded)
    assert set(batch) == {"input_ids", "attention_mask", "label"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.int64 for v in batch.values())
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 128) and batch["label"].shape == (2,)
    assert batch["attention_mask"].sum() == 3


def test_classes_are_the_public_base_classes():
    from pyloader_core import DataCollator, DataReader, Dataset

    reader, dataset, collator = lw.make_parts()
    assert isinstance(reader, DataReader) and isinstance(dataset, Dataset) and isinstance(collator, DataCollator)
    assert reader.batch_size == 64


def test_bare_tally_is_the_data(data, bare_tally):
    assert bare_tally["samples"] == CHUNKS * PER_CHUNK
    assert bare_tally["batches"] == CHUNKS * 3
    assert 0 < bare_tally["label_sum"] < CHUNKS * PER_CHUNK
    assert CHUNKS * PER_CHUNK * 20 <= bare_tally["mask_sum"] <= CHUNKS * PER_CHUNK * 120
    # every token id is in 2..30001, padding is 0: the id sum lies between
    assert 2 * bare_tally["mask_sum"] <= bare_tally["ids_sum"] <= 30001 * bare_tally["mask_sum"]


@pytest.mark.parametrize("name", [n for n in peers.QUICK_LISTS if n != "lists-bare"])
def test_lists_contender_does_the_same_work_as_bare(name, data, bare_tally):
    contender = peers.CONTENDERS[name]
    missing = peers.missing_module(contender)
    if missing:
        pytest.skip(f"{missing} not installed")
    tally = _measure(name, data)
    assert {k: tally[k] for k in KEYS} == {k: bare_tally[k] for k in KEYS}, name


def test_lists_rows_are_one_workload():
    lists = [c for c in peers.CONTENDERS.values() if c.workload == "lists"]
    assert [c.name for c in lists] == peers.QUICK_LISTS
    assert all(c.name.startswith(peers.LISTS_PREFIX) for c in lists)
    assert not any(c.name.startswith(peers.LISTS_PREFIX) for c in peers.CONTENDERS.values() if c.workload != "lists")
    assert set(peers.QUICK_LISTS) <= set(peers.DEFAULT) and not set(peers.QUICK_LISTS) & set(peers.QUICK)
    assert "grain-2" in peers.DEFAULT and peers.CONTENDERS["grain-2"].requires == ("grain",)


def _row(name: str, rate: float, **kw):
    c = peers.CONTENDERS[name]
    return {"name": name, "family": c.family, "scale": c.scale, "status": "ok", "samples_per_s": rate,
            "steady_samples_per_s": rate, "ttfb_s": 0.1, "peak_rss_bytes": 100e6, "peak_pss_bytes": 80e6,
            "runs": [{"samples_per_s": rate}], **kw}


def test_lists_targets_use_the_lists_rows():
    rows = {
        "lists-bare": _row("lists-bare", 100.0, first_chunk_s=0.2, median_chunk_s=0.2),
        "lists-pyloader-thread-1": _row("lists-pyloader-thread-1", 97.0),
        "lists-pyloader-process-1": _row("lists-pyloader-process-1", 90.0),
        "lists-pyloader-process-2": _row("lists-pyloader-process-2", 170.0, ttfb_s=0.3),
        "lists-grain-2": _row("lists-grain-2", 100.0),
    }
    by = {(t["target"], t["contender"]): t for t in run.check_targets(rows, peers.LISTS_PREFIX)}
    assert by[("1 worker >= 0.95x bare", "lists-pyloader-thread-1")]["status"] == "PASS"
    assert by[("1 worker >= 0.95x bare", "lists-pyloader-process-1")]["status"] == "MISS"
    two = by[("2 process workers >= 1.8x bare", "lists-pyloader-process-2")]
    assert two["status"] == "MISS" and "short by 5.6%" in two["detail"]
    grain = by[("2 process workers >= 1.4x Grain at 2 workers", "lists-pyloader-process-2")]
    assert grain["status"] == "PASS" and grain["value"] == pytest.approx(1.7) and "lists-grain-2" in grain["detail"]
    ttfb = by[("TTFB <= first chunk read+encode + 50 ms", "lists-pyloader-process-2")]
    assert ttfb["status"] == "MISS" and "over by 50 ms" in ttfb["detail"]
    # the default workload's names are not looked up here, and its table's "x bare" is against lists-bare
    assert all(t["contender"].startswith("lists-") for t in by.values())
    assert " 1.70x " in run.format_table(rows).splitlines()[5]


def test_quick_lists_run_end_to_end(tmp_path):
    """``--quick --workload lists`` through the runner: every lists row measured (or skipped), same tally."""
    out = tmp_path / "results.json"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--workload", "lists", "--json", str(out),
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== lists workload" in proc.stdout and "Targets:" in proc.stdout
    report = json.loads(out.read_text())
    assert list(report["workloads"]) == ["lists"]
    section = report["workloads"]["lists"]
    rows = {r["name"]: r for r in section["rows"]}
    assert list(rows) == peers.QUICK_LISTS == [r["name"] for r in report["rows"]]
    assert section["consistency_problems"] == [] == report["consistency_problems"]
    expected = section["workload"]["samples"]
    assert expected == run.LISTS_QUICK["chunks"] * run.LISTS_QUICK["samples_per_chunk"]
    base = rows["lists-bare"]["tally"]
    for name, row in rows.items():
        missing = peers.missing_module(peers.CONTENDERS[name])
        if missing:
            assert row["status"] == f"skipped: {missing} not installed", row
            continue
        assert row["status"] == "ok", row
        assert row["samples_per_s"] > 0 and row["ttfb_s"] > 0, row
        assert {k: row["tally"][k] for k in KEYS} == {k: base[k] for k in KEYS}, name
    assert base["samples"] == expected
    assert {t["status"] for t in section["targets"]} <= {"PASS", "MISS"}
    assert all(t["workload"] == "lists" for t in section["targets"])
    assert any(t["target"].startswith("2 process workers >= 1.8x") for t in section["targets"])
    if importlib.util.find_spec("grain") is not None:
        assert any("Grain" in t["target"] for t in section["targets"])
