"""PyLoader against the bare loop, torch DataLoader, tf.data, HF datasets streaming and Grain, in one command.

Two workloads, each with its own table. On each, every contender does the same work on the same
generated chunk files and its consumer only touches each batch:

- default (``benchmarks/workload.py``): JSON lines -> orjson parse -> whitespace tokenise -> vocab ids ->
  pad to 128 (numpy, vectorised) -> batches of 64;
- "lists" (``benchmarks/lists_workload.py``, rows ``lists-*``): the user's own ``DataReader`` / ``Dataset`` /
  ``DataCollator`` subclasses: stdlib ``json`` per line -> crc32-hashed word ids, cut and padded to 128 as
  Python lists of lists -> ``np.asarray`` per batch of 64.

Each run of each contender is a fresh interpreter (``python -m benchmarks.run --one NAME``), so time to
the first batch and the peak RSS of its process tree (the run plus every child, sampled every 20 ms from
here) are its own. Repeats are interleaved
(repeat 1 of every contender, then repeat 2, ...) so drifts in machine load hit all of them alike.

Usage (from the repository root)::

    python -m benchmarks.run                      # both workloads' full tables
    python -m benchmarks.run --workload lists     # only the "lists" workload's table
    python -m benchmarks.run --quick              # smoke run: tiny data, 1 repeat, core + torch rows + lists rows
    python -m benchmarks.run --only bare,pyloader-process-2 --repeats 5 --json /tmp/r.json
    python -m benchmarks.run --list               # the contenders

Samples/s is the median over repeats of samples / (time to the last batch), counted from the moment
the pipeline starts being built (imports excluded; vocab loading and worker start-up included).
Ratios ("x bare", and every target) are medians of the ratios within each round of repeats
(:func:`paired_ratio`), so a drift of the machine's speed between rounds cancels out.
Results (every run, medians, target checks) are saved as JSON (``--json``, default
``benchmarks/results.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

from benchmarks.peers import (
    CONTENDERS,
    DEFAULT,
    LISTS_PREFIX,
    QUICK,
    QUICK_LISTS,
    WORKLOADS,
    Contender,
    Context,
    measure,
    missing_module,
)
from benchmarks.workload import generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_TAG = "BENCH-RESULT "
SAMPLE_INTERVAL_S = 0.02  # RSS sampling period
TREE_REFRESH_S = 0.1  # how often the process tree (new children) is re-listed
PSS_INTERVAL_S = 0.5  # PSS (smaps_rollup) is dearer to read than RSS, and locks the process it reads: rarely

FULL = {"chunks": 32, "samples_per_chunk": 4096, "repeats": 3}
QUICK_SIZE = {"chunks": 4, "samples_per_chunk": 512, "repeats": 1}
# The "lists" workload's data (its own directory, seed 1): 32 chunks of 3,000 records; --quick: 4 of 300.
LISTS_FULL = {"chunks": 32, "samples_per_chunk": 3000}
LISTS_QUICK = {"chunks": 4, "samples_per_chunk": 300}
PREFIXES = {"default": "", "lists": LISTS_PREFIX}  # row-name prefix of each workload

# Targets of issue 6 (ratios within one run, on a 2-core machine).
ONE_WORKER_MIN = 0.95
TWO_PROCESS_MIN = 1.8
VS_TORCH_MIN = 1.0
RSS_GROWTH_MAX = 1.05
TTFB_SLACK_S = 0.050
VS_GRAIN_MIN = 1.4  # PyLoader, 2 process workers, against Grain with 2 workers


# -- the child: one contender, one pass ------------------------------------------------------------


def run_one(name: str, spec_path: str) -> None:
    """Measure ``name`` once in this process and print its result as one JSON line."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    contender = CONTENDERS[name]
    # Imports are not what we measure: load everything the pipeline needs before the clock starts.
    importlib.import_module("pyloader_core")
    with contextlib.suppress(ImportError):
        importlib.import_module("orjson")
    if contender.module:
        importlib.import_module(f"benchmarks.{contender.module}")
    data = spec["workloads"][contender.workload]
    files = data["files"][: data["chunks"] * contender.scale]
    ctx = Context(data["vocab"], files, data["samples_per_chunk"])
    rss_start = _rss_bytes(os.getpid())
    result = measure(contender, ctx)
    result["rss_start_bytes"] = rss_start
    result["files"] = len(files)
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(result), flush=True)


# -- memory of a process tree -----------------------------------------------------------------------


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process(pid).memory_info().rss)
        except Exception:  # noqa: BLE001 - gone, or no psutil
            return 0


def _hwm_bytes(pid: int) -> int:
    """The kernel's high-water mark of ``pid``'s RSS (``VmHWM``; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _proc_tree(root: int) -> list[int]:
    """``root`` and its descendants from ``/proc/*/stat`` (Linux without psutil; else ``[root]``)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])  # after "pid (comm) state"
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


class TreeWatcher(threading.Thread):
    """Samples the summed RSS (and PSS, where Linux gives it) of a process and all its descendants.

    RSS counts pages shared between processes once per process (libraries, fork's copy-on-write
    pages, shared memory mapped by two processes), so the sum over a tree overstates what it uses;
    PSS splits shared pages between their users and adds up correctly.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-watcher", daemon=True)
        self.pid = pid
        self.peak_rss = 0  # of the whole tree
        self.peak_main_rss = 0  # of the measured process alone (the consumer)
        # each process's own peak RSS (the kernel's VmHWM where Linux gives it, else the sampled peak):
        # their sum bounds the tree's peak and, unlike it, does not depend on when the samples fall
        self.peak_by_pid: dict[int, int] = {}
        self.peak_pss: int | None = None
        self.max_procs = 1
        self._stop_event = threading.Event()
        try:
            import psutil

            self._psutil: Any = psutil
        except ImportError:
            self._psutil = None

    def _tree(self) -> list[int]:
        if self._psutil is None:
            return _proc_tree(self.pid)
        try:
            return [self.pid, *(c.pid for c in self._psutil.Process(self.pid).children(recursive=True))]
        except self._psutil.Error:
            return [self.pid]

    def run(self) -> None:
        pids = [self.pid]
        next_tree = next_pss = 0.0
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_tree:
                pids = self._tree()
                self.max_procs = max(self.max_procs, len(pids))
                next_tree = now + TREE_REFRESH_S
            rss = [_rss_bytes(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(rss))
            self.peak_main_rss = max(self.peak_main_rss, rss[0])
            for pid, value in zip(pids, rss):
                self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), value, _hwm_bytes(pid))
            if now >= next_pss:
                pss = [_pss_bytes(p) for p in pids]
                if all(x is not None for x in pss):
                    self.peak_pss = max(self.peak_pss or 0, sum(pss))  # type: ignore[arg-type]
                next_pss = now + PSS_INTERVAL_S
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# -- the parent: every contender, every repeat --------------------------------------------------------


def _child_env(data_root: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["HF_DATASETS_OFFLINE"] = env["HF_HUB_OFFLINE"] = "1"  # local files only, never the network
    env["HF_HOME"] = os.path.join(data_root, "hf-home")
    env["HF_DATASETS_CACHE"] = os.path.join(data_root, "hf-cache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """Kill the child we started and its descendants, by pid."""
    kids = _proc_tree(proc.pid)[1:]
    proc.kill()
    for pid in kids:
        with contextlib.suppress(OSError):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))


def _machine_busy_s() -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``), or ``None``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s() -> float:
    """CPU seconds of this process's finished (waited-for) children and their descendants."""
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(name: str, spec_path: str, data_root: str, timeout_s: float) -> dict[str, Any]:
    """One fresh interpreter measuring ``name``; its result plus the tree's peak RSS/PSS."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--one", name, "--spec", spec_path]
    load = os.getloadavg()[0]  # other work on the machine distorts timings: keep it with every run
    busy0, tree0, own0 = _machine_busy_s(), _tree_cpu_s(), time.process_time()
    wall = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(data_root), stdout=out, stderr=err, text=True)
        watcher = TreeWatcher(proc.pid)
        watcher.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            proc.wait()
            code = None
        finally:
            watcher.stop()
        wall = time.perf_counter() - wall
        busy1, tree1, own1 = _machine_busy_s(), _tree_cpu_s(), time.process_time()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    # CPU the rest of the machine used meanwhile (everything busy minus this run's tree and this runner, whose
    # watcher thread costs ~0.02 cores), in cores
    mine = (tree1 - tree0) + (own1 - own0)
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - mine) / wall
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    why = f"timed out after {timeout_s:.0f}s" if code is None else f"exit code {code}"
    if not lines:
        text = [ln for ln in (stderr.strip().splitlines() or stdout.strip().splitlines()) if ln.strip()]
        return {"error": f"{why}: " + " | ".join(text[-3:])[-500:], "load_before": load, "other_cpu_cores": other}
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_TAG):])
    if code != 0:  # measured, then hung or crashed on the way out: the numbers stand, the exit is noted
        result["exit"] = why
    result["peak_rss_bytes"] = watcher.peak_rss
    result["peak_pss_bytes"] = watcher.peak_pss
    result["peak_main_rss_bytes"] = watcher.peak_by_pid.get(proc.pid, watcher.peak_main_rss)
    # every child's own peak RSS, largest first (the measured process itself is peak_main_rss_bytes)
    result["peak_child_rss_bytes"] = sorted((v for p, v in watcher.peak_by_pid.items() if p != proc.pid), reverse=True)
    result["processes"] = watcher.max_procs
    result["wall_s"] = wall
    result["load_before"] = load
    result["other_cpu_cores"] = other
    result["sum_of_process_peaks_bytes"] = result["peak_main_rss_bytes"] + sum(result["peak_child_rss_bytes"])
    return result


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("numpy", "orjson", "torch", "tensorflow-cpu", "tensorflow", "datasets", "grain", "psutil"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _warm_cache(files: list[str]) -> None:
    """Read every file once, so each contender starts with page-cached data."""
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


@contextlib.contextmanager
def _data_root(path: str | None) -> Iterator[str]:
    if path:
        yield path
        return
    root = tempfile.mkdtemp(prefix="pyloader-bench-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def summarise(name: str, runs: list[dict[str, Any]], skipped: str | None) -> dict[str, Any]:
    """One row: medians over the successful runs."""
    c = CONTENDERS[name]
    row: dict[str, Any] = {"name": name, "description": c.description, "family": c.family, "workers": c.workers,
                           "scale": c.scale, "workload": c.workload, "runs": runs}
    if skipped:
        row["status"] = f"skipped: {skipped} not installed"
        return row
    ok = [r for r in runs if "error" not in r]
    if not ok:
        row["status"] = "failed: " + (runs[-1]["error"] if runs else "not run")
        return row
    row["status"] = "ok" if len(ok) == len(runs) else f"ok ({len(runs) - len(ok)} of {len(runs)} runs failed)"

    def med(key: str) -> Any:
        values = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    row.update(
        samples_per_s=med("samples_per_s"),
        steady_samples_per_s=med("steady_samples_per_s"),
        ttfb_s=med("ttfb_s"),
        seconds=med("seconds"),
        peak_rss_bytes=med("peak_rss_bytes"),
        peak_pss_bytes=med("peak_pss_bytes"),
        peak_main_rss_bytes=med("peak_main_rss_bytes"),
        sum_of_process_peaks_bytes=med("sum_of_process_peaks_bytes"),
        other_cpu_cores=med("other_cpu_cores"),
        rss_start_bytes=med("rss_start_bytes"),
        tally=ok[0]["tally"],
        tally_consistent=all(r["tally"] == ok[0]["tally"] for r in ok),
    )
    if c.family == "bare":
        row["first_chunk_s"] = statistics.median(r["extra"]["first_chunk_s"] for r in ok)
        row["median_chunk_s"] = statistics.median(r["extra"]["median_chunk_s"] for r in ok)
    return row


def _base(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The row the others' tallies are held to: the bare loop where it ran, else the first 1x row."""
    measured = [r for r in rows.values() if r.get("tally") and r["scale"] == 1]
    return next((r for r in measured if r.get("family") == "bare"), measured[0] if measured else None)


def check_consistency(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Every 1x contender must have seen the same samples and token sums; 4x rows 4x the samples.

    ``rows``: one workload's rows (the workloads do different work, so their tallies differ).
    """
    problems = []
    base = _base(rows)
    if base is None:
        return problems
    keys = ("samples", "ids_sum", "mask_sum", "label_sum")
    for r in rows.values():
        if not r.get("tally"):
            continue
        if not r["tally_consistent"]:
            problems.append(f"{r['name']}: its repeats disagree")
        if r["scale"] == 1:
            diff = {k: (r["tally"][k], base["tally"][k]) for k in keys if r["tally"][k] != base["tally"][k]}
            if diff:
                problems.append(f"{r['name']}: {diff} (vs {base['name']})")
        elif r["tally"]["samples"] != r["scale"] * base["tally"]["samples"]:
            problems.append(f"{r['name']}: {r['tally']['samples']} samples, expected {r['scale']}x "
                            f"{base['tally']['samples']}")
    return problems


def _rate(rows: dict[str, dict[str, Any]], name: str) -> float | None:
    r = rows.get(name)
    return r.get("samples_per_s") if r else None


def paired_ratio(rows: dict[str, dict[str, Any]], name: str, base: str, key: str = "samples_per_s") -> float | None:
    """``name``'s speed over ``base``'s: the median over rounds of the ratio within each round.

    Each round runs every contender once, back to back, so a drift of the machine's speed (a shared
    or throttled VM: +-20% from one minute to the next is common) hits both runs of a round alike;
    the ratio of two medians taken over different minutes would carry that drift. ``None`` when no
    round has both runs.
    """
    mine, theirs = rows.get(name, {}).get("runs", []), rows.get(base, {}).get("runs", [])
    ratios = [a[key] / b[key] for a, b in zip(mine, theirs) if a.get(key) and b.get(key)]
    return statistics.median(ratios) if ratios else None


def check_targets(rows: dict[str, dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """The issue's targets, each as PASS / MISS with its numbers (absent rows: not evaluated).

    ``rows``: one workload's rows, named ``prefix + name`` (``""`` for the default workload, ``"lists-"``).
    """
    out: list[dict[str, Any]] = []
    p = prefix
    bare_name = p + "bare"
    bare = _rate(rows, bare_name)

    def add(target: str, name: str, value: float | None, limit: float | None, ok: bool | None, detail: str) -> None:
        out.append({"target": target, "contender": name, "value": value, "limit": limit,
                    "status": "n/a" if ok is None else ("PASS" if ok else "MISS"), "detail": detail})

    def steady(name: str) -> str:
        ratio = paired_ratio(rows, name, bare_name, "steady_samples_per_s")
        return f"; steady (after the first batch) {ratio:.2f}x" if ratio else ""

    for name in (p + "pyloader-thread-1", p + "pyloader-process-1"):
        ratio = paired_ratio(rows, name, bare_name) if bare else None
        if ratio:
            add(f"1 worker >= {ONE_WORKER_MIN}x bare", name, ratio, ONE_WORKER_MIN, ratio >= ONE_WORKER_MIN,
                f"{ratio:.2f}x bare" + _short(ratio, ONE_WORKER_MIN) + steady(name))
    two = p + "pyloader-process-2"
    rate = _rate(rows, two)
    ratio = paired_ratio(rows, two, bare_name) if rate and bare else None
    if ratio:
        add(f"2 process workers >= {TWO_PROCESS_MIN}x bare", two, ratio, TWO_PROCESS_MIN,
            ratio >= TWO_PROCESS_MIN, f"{ratio:.2f}x bare" + _short(ratio, TWO_PROCESS_MIN) + steady(two)
            + _against_pool(rows, p, two, bare_name, ratio))
    grain_rate = _rate(rows, p + "grain-2")
    ratio = paired_ratio(rows, two, p + "grain-2") if rate and grain_rate else None
    if ratio:
        add(f"2 process workers >= {VS_GRAIN_MIN}x Grain at 2 workers", two, ratio, VS_GRAIN_MIN,
            ratio >= VS_GRAIN_MIN, f"{ratio:.2f}x {p}grain-2" + _short(ratio, VS_GRAIN_MIN))
    for w in (0, 1, 2):
        torch_rows = [n for n in (f"{p}torch-numpy-{w}", f"{p}torch-tensor-{w}") if _rate(rows, n)]
        if not torch_rows:
            continue
        best_torch = max(torch_rows, key=lambda n: _rate(rows, n) or 0.0)
        kinds = ("",) if w == 0 else ("thread-", "process-")
        mine = [n for n in (f"{p}pyloader-{kind}{w}" for kind in kinds) if _rate(rows, n)]
        for name in mine:
            ratio = paired_ratio(rows, name, best_torch) or 0.0
            add(f">= {VS_TORCH_MIN}x torch DataLoader at {w} workers", name, ratio, VS_TORCH_MIN,
                ratio >= VS_TORCH_MIN, f"{ratio:.2f}x {best_torch} (the faster torch variant)"
                + _short(ratio, VS_TORCH_MIN))
    one, four = rows.get(two, {}), rows.get(p + "pyloader-process-2-4x", {})
    pss = ""
    if one.get("peak_pss_bytes") and four.get("peak_pss_bytes"):
        pss = f"; PSS {four['peak_pss_bytes'] / one['peak_pss_bytes']:.3f}x"
    # Two readings of "peak RSS of the process tree": each process's own peak (the kernel's VmHWM), summed,
    # which does not depend on when the samples fall; and the sampled peak of the summed RSS, which is
    # higher the longer a run lasts (more chances to catch every worker at its peak at once).
    readings = (("sum_of_process_peaks_bytes", "sum of per-process peaks"), ("peak_rss_bytes", "sampled tree peak"))
    for key, how in readings:
        if not (one.get(key) and four.get(key)):
            continue
        growth = four[key] / one[key]
        over = "" if growth <= RSS_GROWTH_MAX else f" (over by {growth / RSS_GROWTH_MAX - 1:.1%})"
        add(f"peak RSS at 4x data <= {RSS_GROWTH_MAX}x 1x, {how}", p + "pyloader-process-2-4x", growth, RSS_GROWTH_MAX,
            growth <= RSS_GROWTH_MAX, f"{_mb(four[key])} MB vs {_mb(one[key])} MB = {growth:.3f}x{over}{pss}")
    first_chunk = rows.get(bare_name, {}).get("first_chunk_s")
    if first_chunk:
        for name, r in rows.items():
            if r["family"] != "pyloader" or r["scale"] != 1 or r.get("ttfb_s") is None:
                continue
            late = ttfb_over_first_chunk(rows, name, bare_name)
            if late is None:
                continue
            add("TTFB <= first chunk read+encode + 50 ms", name, late, TTFB_SLACK_S, late <= TTFB_SLACK_S,
                f"{r['ttfb_s'] * 1000:.0f} ms vs first chunk {first_chunk * 1000:.0f} ms (medians); within a round "
                f"{late * 1000:+.0f} ms vs +{TTFB_SLACK_S * 1000:.0f}"
                + ("" if late <= TTFB_SLACK_S else f" (over by {(late - TTFB_SLACK_S) * 1000:.0f} ms)"))
    return out


def _against_pool(rows: dict[str, dict[str, Any]], prefix: str, name: str, bare: str, ratio: float) -> str:
    """How ``name``'s ratio compares with the perfect Pool's in the same run (``""``: no pool row)."""
    top = paired_ratio(rows, prefix + "pool-2", bare) if _rate(rows, prefix + "pool-2") else None
    return f"; a perfect fork Pool {top:.2f}x bare in this run: {ratio / top:.0%} of it" if top else ""


def ttfb_over_first_chunk(rows: dict[str, dict[str, Any]], name: str, bare: str) -> float | None:
    """How much later than the bare loop's first chunk ``name``'s first batch came: the median over rounds
    of the difference within each round (as :func:`paired_ratio`, so drift between rounds cancels)."""
    mine, theirs = rows.get(name, {}).get("runs", []), rows.get(bare, {}).get("runs", [])
    late = [a["ttfb_s"] - b["extra"]["first_chunk_s"] for a, b in zip(mine, theirs)
            if a.get("ttfb_s") is not None and b.get("extra", {}).get("first_chunk_s") is not None]
    if late:
        return statistics.median(late)
    ttfb, first = rows.get(name, {}).get("ttfb_s"), rows.get(bare, {}).get("first_chunk_s")
    return None if ttfb is None or first is None else ttfb - first  # no rounds to pair: the medians


def _short(ratio: float, limit: float) -> str:
    return "" if ratio >= limit else f" (short by {1 - ratio / limit:.1%})"


def _other(result: dict[str, Any]) -> str:
    other = result.get("other_cpu_cores")
    return "" if other is None else f" (other processes: {other:.2f} cores)"


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.0f}"


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """One workload's table; ``x bare`` is against that workload's bare loop, round by round (:func:`paired_ratio`)."""
    bare = next((r["name"] for r in rows.values() if r.get("family") == "bare" and r.get("samples_per_s")), None)
    head = (f"{'contender':<24} {'samples/s':>10} {'x bare':>7} {'steady/s':>10} {'TTFB ms':>8} "
            f"{'peak RSS MB':>11} {'peak PSS MB':>11} {'others':>6}  runs (samples/s)")
    lines = [head, "-" * len(head)]
    for r in rows.values():
        if r["status"].startswith(("skipped", "failed")):
            lines.append(f"{r['name']:<24} {r['status']}")
            continue
        rate = r["samples_per_s"]
        runs = ", ".join(f"{x['samples_per_s']:,.0f}" for x in r["runs"] if "samples_per_s" in x)
        paired = paired_ratio(rows, r["name"], bare) if bare else None
        ratio = f"{paired:.2f}x" if paired else "-"
        lines.append(
            f"{r['name']:<24} {rate:>10,.0f} {ratio:>7} {r['steady_samples_per_s']:>10,.0f} "
            f"{r['ttfb_s'] * 1000:>8,.0f} {_mb(r['peak_rss_bytes']):>11} {_mb(r['peak_pss_bytes']):>11} "
            f"{'-' if r.get('other_cpu_cores') is None else format(r['other_cpu_cores'], '.2f'):>6}  {runs}"
            + ("" if r["status"] == "ok" else f"  [{r['status']}]")
        )
    return "\n".join(lines)


def _sizes(args: argparse.Namespace) -> dict[str, dict[str, int]]:
    """Chunks and samples per chunk of each workload's 1x data, and the repeats (under ``"default"``)."""
    default = dict(QUICK_SIZE if args.quick else FULL)
    lists = dict(LISTS_QUICK if args.quick else LISTS_FULL)
    for key in ("chunks", "samples_per_chunk"):  # given explicitly: the same for both workloads
        if getattr(args, key) is not None:
            default[key] = lists[key] = getattr(args, key)
    if args.repeats is not None:
        default["repeats"] = args.repeats
    lists["repeats"] = default["repeats"]
    return {"default": default, "lists": lists}


def _report_workload(workload: str, rows: dict[str, dict[str, Any]], size: dict[str, int]) -> dict[str, Any]:
    """Print one workload's table, consistency check and targets; return its section of the JSON report."""
    problems = check_consistency(rows)
    targets = check_targets(rows, PREFIXES[workload])
    for t in targets:
        t["workload"] = workload
    n = size["chunks"] * size["samples_per_chunk"]
    what = ("orjson reader + TextDataset (vocab ids, numpy out of the workers)" if workload == "default" else
            "the user's json.loads reader + crc32-hash Dataset returning lists of lists + np.asarray collator")
    print()
    print(f"== {workload} workload: {n:,} samples in {size['chunks']} chunks of {size['samples_per_chunk']:,}; "
          f"{what} ==")
    print(format_table(rows))
    print()
    if problems:
        print("CONSISTENCY PROBLEMS (contenders did not do the same work):")
        for prob in problems:
            print(f"  {prob}")
    else:
        base = _base(rows)
        if base:
            t = base["tally"]
            four = "; 4x rows 4x as many" if any(r["scale"] > 1 for r in rows.values()) else ""
            print(f"Consistency: every contender saw the same {t['samples']:,} samples ({t['mask_sum']:,} tokens, "
                  f"id sum {t['ids_sum']:,}){four}.")
    bare = next((r for r in rows.values() if r.get("family") == "bare" and r.get("first_chunk_s")), None)
    if bare:
        print(f"Bare loop: first chunk read+encode {bare['first_chunk_s'] * 1000:.0f} ms "
              f"(median chunk {bare['median_chunk_s'] * 1000:.0f} ms).")
    if targets:
        width = max(len(t["target"]) for t in targets)
        cwidth = max(22, *(len(t["contender"]) for t in targets))
        print("Targets:")
        for t in targets:
            print(f"  [{t['status']}] {t['target']:<{width}} {t['contender']:<{cwidth}} {t['detail']}")
    return {"workload": {**size, "samples": n, "batch": 64, "max_seq_len": 128}, "rows": list(rows.values()),
            "consistency_problems": problems, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: tiny data, 1 repeat, core + torch rows and the lists workload's rows")
    ap.add_argument("--workload", choices=("all", *WORKLOADS), default="all",
                    help="only this workload's rows (default: all)")
    ap.add_argument("--repeats", type=int, help="runs per contender; the median counts (default 3; quick 1)")
    ap.add_argument("--chunks", type=int,
                    help="chunk files of the 1x data, every workload (default 32; quick 4)")
    ap.add_argument("--samples-per-chunk", type=int,
                    help="samples per chunk file, every workload (default 4096, lists 3000; quick 512, lists 300)")
    ap.add_argument("--only", help="comma-separated contenders (see --list); default: all but tf-pyfunc-element")
    ap.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results.json"), help="where to save results")
    ap.add_argument("--data-dir", help="generate (or reuse) the data here and keep it (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds one run of one contender may take")
    ap.add_argument("--list", action="store_true", help="list the contenders and exit")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one contender in this process
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        run_one(args.one, args.spec)
        return 0
    if args.list:
        for c in CONTENDERS.values():
            if args.workload in ("all", c.workload):
                flag = "" if c.name in DEFAULT else "  (opt-in)"
                print(f"{c.name:<24} {c.description}{flag}")
        return 0

    sizes = _sizes(args)
    if min(v for size in sizes.values() for v in size.values()) < 1:
        ap.error("--repeats, --chunks and --samples-per-chunk must be >= 1")
    repeats = sizes["default"]["repeats"]
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    else:
        names = [*QUICK, *QUICK_LISTS] if args.quick else list(DEFAULT)
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        ap.error(f"unknown contenders {unknown}; see --list")
    if args.workload != "all":
        names = [n for n in names if CONTENDERS[n].workload == args.workload]
    if not names:
        ap.error("--only / --workload name no contender")

    started = time.perf_counter()
    load_before = os.getloadavg()
    contenders: list[Contender] = [CONTENDERS[n] for n in names]
    workloads = [w for w in WORKLOADS if any(c.workload == w for c in contenders)]
    skipped = {c.name: missing_module(c) for c in contenders}
    with _data_root(args.data_dir) as root:
        spec: dict[str, Any] = {"workloads": {}}
        for w in workloads:
            size = sizes[w]
            max_scale = max(c.scale for c in contenders if c.workload == w)
            t = time.perf_counter()
            # the default workload's data stays where it always was (``--data-dir`` reuse); "lists" beside it
            data = generate(root if w == "default" else os.path.join(root, w), size["chunks"] * max_scale,
                            size["samples_per_chunk"], seed=0 if w == "default" else 1)
            gen_s = time.perf_counter() - t
            _warm_cache(list(data.files))
            spec["workloads"][w] = {"vocab": data.vocab, "files": list(data.files), "chunks": size["chunks"],
                                    "samples_per_chunk": size["samples_per_chunk"]}
            n = size["chunks"] * size["samples_per_chunk"]
            four = f" (4x rows: {4 * n:,})" if max_scale > 1 else ""
            print(f"PyLoader benchmark, {w} workload: {n:,} samples in {size['chunks']} chunks of "
                  f"{size['samples_per_chunk']}{four}, batch 64, max_seq_len 128; data generated in {gen_s:.1f}s",
                  flush=True)
        spec_path = os.path.join(root, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        print(f"{repeats} repeat(s), interleaved; {os.cpu_count()} CPUs, load average {load_before[0]:.2f}; "
              f"data under {root}", flush=True)
        versions = _versions()
        print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
        for rep in range(repeats):
            for c in contenders:
                if skipped[c.name]:
                    continue
                result = run_child(c.name, spec_path, root, args.timeout)
                runs[c.name].append(result)
                if "error" in result:
                    note = result["error"]
                else:
                    note = (f"{result['samples_per_s']:>10,.0f} samples/s, TTFB {result['ttfb_s'] * 1000:,.0f} ms, "
                            f"peak RSS {_mb(result['peak_rss_bytes'])} MB"
                            + _other(result))
                print(f"  [{rep + 1}/{repeats}] {c.name:<24} {note}", flush=True)
    sections: dict[str, dict[str, Any]] = {}
    for w in workloads:
        rows = {c.name: summarise(c.name, runs[c.name], skipped[c.name]) for c in contenders if c.workload == w}
        sections[w] = _report_workload(w, rows, sizes[w])
    problems = [p for s in sections.values() for p in s["consistency_problems"]]
    targets = [t for s in sections.values() for t in s["targets"]]
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print()
    print(f"Total time {elapsed:.0f}s; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
          "'others' = CPU cores other processes used during a run (median): on a 2-core machine anything "
          "above ~0.1 distorts the numbers, the 2-worker rows most.")

    first = sections[workloads[0]]
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                    "load_after": load_after},
        "versions": versions,
        # the first workload run (the default one unless --workload/--only leave it out), as before two workloads
        "workload": first["workload"],
        "elapsed_s": elapsed,
        "rows": first["rows"],
        # every workload's problems and targets (each target names its workload)
        "consistency_problems": problems,
        "targets": targets,
        "workloads": sections,  # each workload in full: workload, rows, consistency_problems, targets
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"Saved {args.json}")
    return 1 if problems else 0


if __name__ == "__main__":  # required: PyLoader's process workers re-import this module (spawn)
    sys.exit(main())
