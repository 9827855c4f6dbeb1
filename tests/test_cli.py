"""Tests of the ``pyloader`` command line (:mod:`pyloader_core.tools.cli`): every command, option and error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from pyloader_core import JsonLineDataReader, list_files
from pyloader_core.tools.cli import main
from pyloader_core.index import INDEX_NAME, load_index

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys, *argv: str) -> dict:
    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m pyloader_core ARGV`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "pyloader_core", *argv], capture_output=True, text=True, env=ENV, timeout=timeout
    )


def write_jsonl(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            words = " ".join(str(1 + (i * 7 + j) % 50) for j in range(3 + i % 5))
            f.write(json.dumps({"id": i, "input_text": words, "label": i % 2}) + "\n")
    return path


@pytest.fixture
def chunks(tmp_path):
    """A split dataset: 300 samples in 4 jsonl chunks, with index.json."""
    src = write_jsonl(tmp_path / "in.jsonl", 300)
    assert main(["split", str(src), "--out", str(tmp_path / "data"), "--samples", "80", "-q"]) == 0
    return tmp_path / "data"


# ------------------------------------------------------------------------------ help and entry point


@pytest.mark.parametrize("command", [[], ["split"], ["index"], ["inspect"], ["bench"]])
def test_help_for_every_command(capsys, command):
    rc, out, _ = run(capsys, *command, "--help")
    assert rc == 0
    assert out.startswith("usage: pyloader" + (" " + command[0] if command else ""))
    assert "Example" in out or not command


def test_version_and_no_command(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.startswith("pyloader 0.")
    rc, _, err = run(capsys)
    assert (
        rc == 2
        and err.strip() == "pyloader: error: choose a command: split, index, inspect or bench (see 'pyloader --help')"
    )


def test_module_and_console_script_entry_points(tmp_path):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("pyloader ")
    proc = cli("split", "--help")
    assert proc.returncode == 0 and "--chunk-size" in proc.stdout
    script = Path(sys.executable).with_name("pyloader")
    if script.exists():  # installed (tox, pip install -e .): the console script itself
        proc = subprocess.run([str(script), "inspect", "--help"], capture_output=True, text=True, env=ENV, timeout=60)
        assert proc.returncode == 0 and "usage: pyloader inspect" in proc.stdout
    eps = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "pyloader"]
    if eps:
        assert eps[0].value == "pyloader_core.tools.cli:main"
        assert eps[0].load() is main
    cfg = (Path(__file__).resolve().parents[1] / "setup.cfg").read_text()
    assert "pyloader = pyloader_core.tools.cli:main" in cfg


# ------------------------------------------------------------------------------ split


def test_split_text_output_and_options(capsys, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    rc, out, err = run(
        capsys,
        "split",
        str(src),
        "--out",
        str(tmp_path / "o"),
        "--chunk-size",
        "4K",
        "--shuffle",
        "--seed",
        "3",
        "--compression",
        "gzip",
        "--max-memory",
        "2MB",
    )
    assert rc == 0, err
    assert "samples  500" in out and "gzip compression" in out and "seed 3" in out and "peak RSS" in out
    files = list_files(tmp_path / "o")
    assert all(f.endswith(".jsonl.gz") for f in files) and len(files) > 3
    ids = [i for f in files for i in JsonLineDataReader().read_file(f)[0]["id"]]
    assert sorted(ids) == list(range(500)) and ids != list(range(500))


def test_split_json_format_tmp_dir_and_overwrite(capsys, tmp_path):
    src = tmp_path / "in.log"
    src.write_text("".join(f"line {i}\n" for i in range(50)))
    (tmp_path / "tmp").mkdir()
    report = run_json(
        capsys,
        "split",
        str(src),
        "-o",
        str(tmp_path / "o"),
        "--format",
        "txt",
        "--samples",
        "20",
        "--shuffle",
        "--tmp-dir",
        str(tmp_path / "tmp"),
    )
    assert report["chunks"] == 3 and report["samples"] == 50 and report["format"] == "txt"
    assert report["peak_rss_bytes"] > 0 and report["index"].endswith(INDEX_NAME)
    rc, _, err = run(capsys, "split", str(src), "-o", str(tmp_path / "o"), "--format", "txt")
    assert rc == 1 and "--overwrite" in err
    rc, out, _ = run(capsys, "split", str(src), "-o", str(tmp_path / "o"), "--format", "txt", "--overwrite", "-q")
    assert rc == 0 and out == ""
    assert sorted(os.listdir(tmp_path / "o")) == [INDEX_NAME, "part-00000.txt"]


def test_split_csv_and_parquet(capsys, tmp_path):
    (tmp_path / "a.csv").write_text("id,x\n" + "".join(f"{i},{i * 2}\n" for i in range(30)))
    assert (
        run_json(capsys, "split", str(tmp_path / "a.csv"), "-o", str(tmp_path / "c"), "--samples", "10")["chunks"] == 3
    )
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(30))}), tmp_path / "a.parquet")
    report = run_json(
        capsys,
        "split",
        str(tmp_path / "a.parquet"),
        "-o",
        str(tmp_path / "p"),
        "--samples",
        "7",
        "--compression",
        "zstd",
    )
    assert report["chunks"] == 5 and report["samples"] == 30


def test_split_a_file_larger_than_its_memory_limit_in_bounded_memory(tmp_path):
    """A 60 MB input, --max-memory 16MB, shuffled: the child's peak RSS stays within the limit's reach."""
    big = tmp_path / "big.jsonl"
    n = 0
    with open(big, "w", encoding="utf-8") as f:
        text = " ".join(str(k) for k in range(20))
        while f.tell() < 60 * 10**6:
            f.write(
                "".join(f'{{"id": {i}, "input_text": "{text} {i}", "label": {i % 2}}}\n' for i in range(n, n + 10000))
            )
            n += 10000
    size = big.stat().st_size
    for extra in (["--shuffle"], ["--compression", "zstd"]):
        out = tmp_path / ("o" + extra[0])
        proc = cli(
            "split", str(big), "--out", str(out), "--max-memory", "16MB", "--chunk-size", "4MB", "--json", *extra
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["samples"] == n and report["record_bytes"] == size
        assert report["peak_above_start_bytes"] < 16 * 2**20, report  # within --max-memory, far below 60 MB
        index = load_index(str(out), strict=True)
        assert index is not None and index.total_samples == n and len(index.chunks) >= 14


# ------------------------------------------------------------------------------ index


def test_index_builds_and_verifies(capsys, chunks, tmp_path):
    os.unlink(chunks / INDEX_NAME)
    rc, out, _ = run(capsys, "index", str(chunks))
    assert rc == 0 and "indexed 4 chunk(s): 300 samples" in out
    assert load_index(str(chunks), strict=True).total_samples == 300
    rc, out, _ = run(capsys, "index", str(chunks), "--verify")
    assert rc == 0 and "0 differ, 0 listed but missing" in out
    report = run_json(capsys, "index", str(chunks), "--format", "jsonl")
    assert report["samples"] == 300 and report["chunks"] == 4
    rc, out, _ = run(capsys, "index", str(chunks), "-q")
    assert rc == 0 and out == ""
    first = chunks / "part-00000.jsonl"
    data = bytearray(first.read_bytes())
    data[3] ^= 1
    first.write_bytes(bytes(data))
    os.unlink(chunks / "part-00003.jsonl")
    rc, out, err = run(capsys, "index", str(chunks), "--verify")
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("pyloader: error: 2 chunk(s) do not match index.json")
    assert "part-00000.jsonl" in err and "part-00003.jsonl (missing)" in err
    assert json.loads(run(capsys, "index", str(chunks), "--verify", "--json")[1])["missing"] == ["part-00003.jsonl"]


def test_index_on_a_memory_url(capsys, chunks):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/cli-index-{os.getpid()}"
    for f in chunks.glob("part-*"):
        fs.pipe_file(f"{root}/{f.name}", f.read_bytes())
    try:
        rc, _, err = run(capsys, "index", f"memory://{root}")
        assert rc == 0, err
        assert fs.exists(f"{root}/{INDEX_NAME}")
        assert run_json(capsys, "inspect", f"memory://{root}")["samples_source"] == "index.json"
    finally:
        fs.rm(root, recursive=True)


# ------------------------------------------------------------------------------ inspect


def test_inspect_reports_counts_bytes_and_schema(capsys, chunks):
    rc, out, _ = run(capsys, "inspect", str(chunks))
    assert rc == 0
    assert "chunks     4 (jsonl: 4)" in out and "300 (index.json)" in out and "up to date" in out
    assert "id: int, input_text: str, label: int" in out
    report = run_json(capsys, "inspect", str(chunks))
    assert report["samples"] == 300 and report["min_samples_per_chunk"] == 60 and report["max_samples_per_chunk"] == 80
    assert report["bytes"] == sum(p.stat().st_size for p in chunks.glob("part-*"))
    assert report["first_record"]["id"] == 0
    os.unlink(chunks / INDEX_NAME)
    report = run_json(capsys, "inspect", str(chunks))
    assert report["samples"] == 300 and report["index"] == "absent" and report["samples_source"].startswith("counted")
    with open(chunks / "part-00001.jsonl", "a") as f:
        f.write(json.dumps({"id": 999, "input_text": "1", "label": 0}) + "\n")
    (chunks / INDEX_NAME).write_text(json.dumps({"pyloader_index": 1, "chunks": []}))
    report = run_json(capsys, "inspect", str(chunks))
    assert report["samples"] == 301 and report["index"] == "stale or incomplete"


def test_inspect_other_formats(capsys, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.csv").write_text("id,name\n1,x\n2,y\n")
    assert run_json(capsys, "inspect", str(d))["schema"] == {"id": "str", "name": "str"}
    (d / "a.csv").unlink()
    (d / "a.txt").write_text("hello\nworld\n")
    report = run_json(capsys, "inspect", str(d))
    assert report["schema"] == {"text": "str"} and report["first_record"] == {"text": "hello"}
    (d / "a.txt").unlink()
    np.save(d / "a.npy", np.zeros((5, 3), dtype=np.float32))
    report = run_json(capsys, "inspect", str(d))
    assert report["samples"] == 5 and report["schema"] == {"data": "float32[3]"}
    (d / "a.npy").unlink()
    (d / "a.data").write_text('{"k": [1]}\n')
    report = run_json(capsys, "inspect", str(d), "--format", "jsonl")
    assert report["schema"] == {"k": "list"}
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (d / "a.data").unlink()
    pq.write_table(pa.table({"id": [1, 2], "s": ["a", "b"]}), d / "a.parquet")
    report = run_json(capsys, "inspect", str(d))
    assert report["schema"] == {"id": "int64", "s": "string"} and report["first_record"] == {"id": 1, "s": "a"}


# ------------------------------------------------------------------------------ bench


def test_bench_one_epoch_with_a_verdict(capsys, chunks):
    rc, out, err = run(capsys, "bench", str(chunks), "--workers", "2", "--seconds", "0", "--step-rate", "0.001")
    assert rc == 0, err
    assert "300 samples" in out and "samples/s" in out and "first batch" in out and "start-up" in out
    assert "(steady state" in out and "verdict (steady state, after " in out
    assert "not input-bound at 0.001 steps/s" in out
    rc, out, _ = run(capsys, "bench", str(chunks), "--workers", "1", "--seconds", "0", "--step-rate", "1e12")
    assert rc == 0 and "INPUT-BOUND at 1e+12 steps/s" in out and "verdict (steady state" in out


def test_bench_steady_state_leaves_out_the_warm_up(capsys, chunks):
    report = run_json(capsys, "bench", str(chunks), "--workers", "1", "--seconds", "0", "--warmup", "5")
    assert report["steady_state"] is True and report["batches"] == 5  # 300 samples, batch size 64
    assert 0 < report["startup_s"] <= report["seconds"] and report["steady_s"] > 0
    assert report["startup_s"] >= report["first_batch_s"]
    short = run_json(capsys, "bench", str(chunks), "--workers", "1", "--seconds", "0", "--warmup", "50")
    assert short["steady_state"] is True and short["startup_s"] == pytest.approx(short["first_batch_s"], abs=0.05)


def test_bench_verdict_does_not_ask_for_more_idle_workers():
    import argparse

    from pyloader_core.tools.cli import bench

    args = argparse.Namespace(step_rate=100.0, worker_type="thread")
    report = {"batches_per_s": 10.0, "worker_utilisation": 0.06, "workers": 4, "startup_s": 1.5, "steady_state": True}
    verdict = bench._verdict(args, report)
    assert verdict.startswith("verdict (steady state, after 1.50 s start-up): INPUT-BOUND")
    assert "only 6% busy" in verdict and "would not help" in verdict and "add workers" not in verdict
    verdict = bench._verdict(args, dict(report, worker_utilisation=0.95))
    assert "95% busy: add workers" in verdict


def test_bench_json_with_text_dataset_and_options(capsys, chunks, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<unk>\n" + "".join(f"{i}\n" for i in range(1, 51)))
    report = run_json(
        capsys,
        "bench",
        str(chunks),
        "--workers",
        "2",
        "--reader",
        "jsonl",
        "--batch-size",
        "16",
        "--seconds",
        "0",
        "--epochs",
        "2",
        "--shuffle",
        "--queue-size",
        "3",
        "--text-key",
        "input_text",
        "--label-key",
        "label",
        "--max-seq-len",
        "8",
        "--vocab",
        str(vocab),
        "--step-rate",
        "5",
    )
    assert report["samples"] == 600 and report["batches"] == 2 * -(-300 // 16)
    assert report["dataset"] == "TextDataset" and report["batch_size"] == 16 and report["epochs_started"] == 2
    assert report["input_bound"] is False and report["samples_per_s"] > 0 and report["bytes_read"] > 0


def test_bench_process_workers(capsys, chunks):
    report = run_json(capsys, "bench", str(chunks), "--workers", "2", "--worker-type", "process", "--seconds", "0")
    assert report["samples"] == 300 and report["worker_type"] == "process"
    assert "largest_worker_peak_rss_bytes" in report


def test_bench_auto_workers_queue_and_memory_budget(capsys, chunks):
    report = run_json(
        capsys,
        "bench",
        str(chunks),
        "--workers",
        "auto",
        "--queue-size",
        "auto",
        "--max-memory",
        "64MB",
        "--seconds",
        "0",
    )
    assert report["samples"] == 300 and report["workers"] >= 1
    rc, _, err = run(capsys, "bench", str(chunks), "--workers", "many")
    _one_line_error(rc, err, 2, "--workers", "'auto'")


def test_bench_runs_for_the_given_seconds(capsys, chunks):
    report = run_json(capsys, "bench", str(chunks), "--workers", "0", "--seconds", "0.3", "--epochs", "0")
    assert report["seconds"] >= 0.3 and report["epochs_started"] > 1


# ------------------------------------------------------------------------------ errors


def _one_line_error(rc: int, err: str, expected_rc: int, *words: str) -> None:
    assert rc == expected_rc, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("pyloader: error: "), err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize(
    ("argv", "rc", "words"),
    [
        (["split", "{tmp}/missing.jsonl", "--out", "{tmp}/o"], 1, ["does not exist", "missing.jsonl"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--chunk-size", "12XB"], 2, ["--chunk-size", "bad size"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--chunk-size", "0"], 2, ["--chunk-size", "at least 1 byte"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--max-memory", "-5MB"], 2, ["--max-memory"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--max-memory", "100K"], 1, ["at least 1MB"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--samples", "0"], 2, ["--samples", "at least 1"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--format", "xml"], 2, ["--format", "invalid choice"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/o", "--compression", "lzma"], 2, ["--compression"]),
        (["split", "{tmp}/in.jsonl"], 2, ["--out"]),
        (["split", "{tmp}/notes.md", "--out", "{tmp}/o"], 1, ["cannot tell the format", "--format"]),
        (["split", "{tmp}/bad.jsonl", "--out", "{tmp}/o"], 1, ["bad.jsonl", "not JSON lines"]),
        (["split", "{tmp}/in.jsonl", "--out", "{tmp}/in.jsonl"], 1, ["not a directory"]),
        (["index", "{tmp}/missing"], 1, ["does not exist"]),
        (["index", "{tmp}/in.jsonl"], 1, ["not a directory"]),
        (["index", "{tmp}/empty"], 1, ["no data files"]),
        (["index", "{tmp}/odd"], 1, ["cannot tell the format"]),
        (["index", "{tmp}/odd", "--verify"], 1, ["index.json does not exist"]),
        (["inspect", "{tmp}/missing"], 1, ["does not exist"]),
        (["inspect", "{tmp}/bad.jsonl"], 1, ["bad.jsonl", "invalid JSON"]),
        (["bench", "{tmp}/missing", "--workers", "2"], 1, ["does not exist"]),
        (["bench", "{tmp}/in.jsonl", "--workers", "-1"], 2, ["--workers"]),
        (["bench", "{tmp}/in.jsonl", "--reader", "xml"], 1, ["unknown reader 'xml'"]),
        (["bench", "{tmp}/in.jsonl", "--step-rate", "0"], 2, ["--step-rate"]),
        (["bench", "{tmp}/bad.jsonl", "--seconds", "0"], 1, ["invalid JSON"]),
        (["bench", "{tmp}/in.jsonl", "--text-key", "nope"], 1, ["TextDataset needs key 'nope'"]),
        (["frobnicate"], 2, ["invalid choice"]),
        (["--bogus"], 2, ["unrecognized arguments"]),
    ],
)
def test_errors_are_one_line_without_traceback(capsys, tmp_path, argv, rc, words):
    write_jsonl(tmp_path / "in.jsonl", 5)
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "bad.jsonl").write_text("this is not json\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "a.weird").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    got_rc, _, err = run(capsys, *argv)
    _one_line_error(got_rc, err, rc, *words)


def test_errors_in_a_real_process(tmp_path):
    """Exit status and stderr as a shell sees them: one line, no traceback."""
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    for argv, rc in (
        (["split", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")], 1),
        (["split", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o"), "--chunk-size", "lots"], 2),
        (["split", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o"), "--format", "xml"], 2),
    ):
        proc = cli(*argv)
        _one_line_error(proc.returncode, proc.stderr, rc)


def test_unexpected_errors_are_one_line_unless_traceback(capsys, chunks, monkeypatch):
    from pyloader_core.tools.cli import run as cli_run

    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    parser = cli_run.build_parser

    def patched():
        p = parser()
        for action in p._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["inspect"].set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli_run, "build_parser", patched)
    rc, _, err = run(capsys, "inspect", str(chunks))
    _one_line_error(rc, err, 1, "unexpected RuntimeError: kaboom second line", "--traceback")
    with pytest.raises(RuntimeError):
        main(["--traceback", "inspect", str(chunks)])


def test_verbose_logging_goes_to_stderr(capsys, chunks, tmp_path):
    shutil.copytree(chunks, tmp_path / "copy")
    rc, _, err = run(capsys, "-v", "index", str(tmp_path / "copy"))
    assert rc == 0 and "pyloader: INFO: wrote" in err
