"""``pyloader bench``: the loader's throughput over a dataset, and whether training would wait for it.

Example::

    pyloader bench data/ --workers 4 --worker-type process --text-key input_text --step-rate 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from pyloader_core import DataLoader, Dataset, NumpyDataCollator, TextDataset
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats import detect_format, get_reader
from pyloader_core.reader import DataReader
from pyloader_core.sizes import format_size
from pyloader_core.storage.listing import list_files
from pyloader_core.tools.cli.args import (
    add_output_options,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    queue_arg,
    size_arg,
    workers_arg,
)
from pyloader_core.tools.cli.report import Memory, children_peak_rss, emit, table

__all__ = ["add_parser", "run"]

_PROBE_EVERY_S = 0.25  # how often the workers' peak RSS is sampled
_NO_EPOCH_LIMIT = 10_000  # --epochs 0: "until --seconds"
_IDLE_WORKERS = 0.5  # workers busy less than this share of the steady state: more would not help


def add_parser(sub: Any) -> None:
    """Add the ``bench`` command to the subparsers ``sub``."""
    p = sub.add_parser(
        "bench",
        help="measure the loader's throughput; say whether training would be input-bound",
        description="Run the loader over DIR (reader -> Dataset -> NumpyDataCollator, or TextDataset "
        "tokenisation with --text-key) for --seconds or --epochs, and report samples/s, batches/s and "
        "time to the first batch. Rates are those of the steady state: start-up (starting workers, the "
        "first --warmup batches) is timed apart. With --step-rate, say whether a training loop at that "
        "many steps (batches) per second would wait for input.",
        epilog="Example: pyloader bench data/ --workers 4 --worker-type process --text-key input_text --step-rate 50",
    )
    p.add_argument("dir", metavar="DIR", help="directory, glob or URL of chunk files")
    p.add_argument("--workers", type=workers_arg, default=1, metavar="N", help="background workers, or 'auto' (default 1)")
    p.add_argument("--worker-type", choices=["thread", "process"], default="thread", help="default thread")
    p.add_argument(
        "--reader", metavar="NAME", help="reader name (jsonl, csv, parquet, txt, numpy; default: from file names)"
    )
    p.add_argument("--batch-size", type=positive_int, default=64, metavar="N", help="default 64")
    p.add_argument(
        "--seconds",
        type=nonneg_float,
        default=5.0,
        metavar="S",
        help="stop after S seconds (default 5; 0: run the --epochs in full)",
    )
    p.add_argument(
        "--epochs",
        type=nonneg_int,
        default=1,
        metavar="N",
        help="stop after N epochs (default 1; 0: until --seconds, at most 10000 epochs)",
    )
    p.add_argument(
        "--warmup",
        type=nonneg_int,
        default=10,
        metavar="N",
        help="batches of start-up left out of the rates (default 10; fewer when the run is short)",
    )
    p.add_argument(
        "--queue-size", type=queue_arg, default=10, metavar="N", help="max chunks in flight, or 'auto' (default 10)"
    )
    p.add_argument(
        "--max-memory", type=size_arg, metavar="SIZE", help="the loader's memory budget for chunks in flight (max_memory)"
    )
    p.add_argument("--shuffle", action="store_true", help="shuffle files and samples, as in training")
    p.add_argument(
        "--step-rate",
        type=positive_float,
        metavar="STEPS_PER_S",
        help="training steps per second to compare against (one batch per step)",
    )
    p.add_argument("--text-key", metavar="KEY", help="tokenise this text column with TextDataset")
    p.add_argument("--label-key", default="label", metavar="KEY", help="TextDataset's label column (default label)")
    p.add_argument(
        "--max-seq-len", type=positive_int, default=128, metavar="N", help="TextDataset length (default 128)"
    )
    p.add_argument("--vocab", metavar="FILE", help="TextDataset vocabulary (default: text is integer ids)")
    add_output_options(p, "report", quiet=False)
    p.set_defaults(func=run)


@dataclasses.dataclass
class _Run:
    """What one timed pass over the loader measured (seconds from the start of iteration).

    The steady state starts at batch ``warmup`` (at the first batch when the run has too few batches
    after it): rates and worker busy time count from there, start-up apart.

    Example::

        timing = _Run(started=time.perf_counter(), warmup=10)
    """

    started: float
    warmup: int = 10
    samples: int = 0
    batches: int = 0
    first_batch_s: float | None = None
    steady_from: float = 0.0
    last: float = 0.0
    steady_samples: int = 0
    steady_batches: int = 0
    workers_peak: int | None = None
    elapsed: float = 0.0
    close_s: float = 0.0
    first_busy_s: float = 0.0  # the workers' busy seconds when the first batch came
    warm: tuple[float, int, int, float] | None = None  # at batch `warmup`: time, samples, batches, busy
    busy_s: float = 0.0  # at the end

    def probe_workers(self) -> None:
        peak = children_peak_rss()
        if peak is not None:
            self.workers_peak = max(self.workers_peak or 0, peak)

    def count(self, now: float, n: int, busy: Any = None) -> None:
        """Batch number ``batches + 1`` of ``n`` samples came at ``now``; ``busy()``: the workers' busy seconds."""
        if self.first_batch_s is None:
            self.first_batch_s = now - self.started
            self.steady_from, self.steady_samples, self.steady_batches = now, 0, 0
            self.first_busy_s = busy() if busy else 0.0
        self.batches += 1
        self.samples += n
        if self.batches > 1:
            self.steady_samples += n
            self.steady_batches += 1
            self.last = now
        if self.batches == max(1, self.warmup) and self.warmup > 1:
            self.warm = (now, self.steady_samples, self.steady_batches, busy() if busy else 0.0)

    def _window(self) -> tuple[float, int, int, float]:
        """The steady state: ``(start, samples, batches, busy seconds)`` counted from its start to the last batch."""
        if self.warm is not None and self.steady_batches - self.warm[2] >= max(2, self.warmup // 2):
            at, samples, batches, busy = self.warm
            return at, self.steady_samples - samples, self.steady_batches - batches, self.busy_s - busy
        return self.steady_from, self.steady_samples, self.steady_batches, self.busy_s - self.first_busy_s

    def startup_s(self) -> float:
        """Seconds from the start of iteration to the steady state (the first batch and the warm-up)."""
        return self._window()[0] - self.started if self.batches > 1 else self.elapsed

    def steady_s(self) -> float:
        return self.last - self._window()[0] if self.batches > 1 else 0.0

    def rates(self) -> tuple[float, float]:
        """``(samples/s, batches/s)`` of the steady state (over the whole run when there was one batch)."""
        _, samples, batches, _ = self._window()
        steady_s = self.steady_s()
        if self.batches > 1 and steady_s > 0:
            return samples / steady_s, batches / steady_s
        return self.samples / self.elapsed, self.batches / self.elapsed

    def utilisation(self, workers: int) -> float:
        """The workers' busy share of the steady state (of the whole run when there was one batch)."""
        steady_s = self.steady_s()
        if self.batches > 1 and steady_s > 0:
            return self._window()[3] / (steady_s * max(1, workers))
        return self.busy_s / (self.elapsed * max(1, workers)) if self.elapsed > 0 else 0.0


def _reader_and_dataset(args: argparse.Namespace, files: list[str]) -> tuple[DataReader, Dataset]:
    name = args.reader or detect_format(files[0])
    if name is None:
        raise ConfigError(f"cannot tell the format of {files[0]} from its name; pass --reader")
    reader = get_reader(name, batch_size=args.batch_size)
    if args.text_key:
        dataset: Dataset = TextDataset(
            args.vocab, max_seq_len=args.max_seq_len, text_key=args.text_key, label_key=args.label_key
        )
    else:
        dataset = Dataset()
    return reader, dataset


def _loader(args: argparse.Namespace, reader: DataReader, dataset: Dataset, files: list[str]) -> DataLoader:
    return DataLoader(
        reader,
        dataset,
        NumpyDataCollator(),
        files,
        num_epoch=args.epochs if args.epochs else _NO_EPOCH_LIMIT,  # "no limit": --seconds ends it
        max_queue_size=args.queue_size,
        shuffle=args.shuffle,
        num_workers=args.workers,
        worker_type=args.worker_type,
        **({"max_memory": args.max_memory} if args.max_memory else {}),
    )


def _time(loader: DataLoader, args: argparse.Namespace) -> _Run:
    """Iterate ``loader`` until it ends or ``--seconds`` pass; always closes it."""
    timing = _Run(started=time.perf_counter(), warmup=args.warmup)
    deadline = timing.started + args.seconds if args.seconds > 0 else float("inf")
    processes = args.worker_type == "process"
    it = iter(loader)
    next_probe = 0.0
    try:
        for batch in it:
            now = time.perf_counter()
            if processes and now >= next_probe:  # workers exit with the last epoch
                timing.probe_workers()
                next_probe = now + _PROBE_EVERY_S
            timing.count(now, len(next(iter(batch.values()))) if batch else 0, lambda: _busy(loader))
            if now >= deadline:
                break
        if processes:
            timing.probe_workers()
    finally:
        ended = time.perf_counter()
        timing.busy_s = _busy(loader)
        close = getattr(it, "close", None)
        if close is not None:
            close()
        loader.close()
    timing.elapsed = ended - timing.started
    timing.close_s = time.perf_counter() - ended
    if timing.first_batch_s is None:
        raise DataFormatError(f"{args.dir} yielded no batches")
    return timing


def _busy(loader: DataLoader) -> float:
    """Seconds the loader's workers (or the consumer, inline) have spent on chunks so far."""
    return float(sum(loader.stats().get("worker_busy_s", {}).values()))


def _report(
    args: argparse.Namespace, reader: DataReader, dataset: Dataset, loader: DataLoader, timing: _Run, memory: Memory
) -> dict[str, Any]:
    stats = loader.stats()
    rate_s, rate_b = timing.rates()
    workers = stats.get("num_workers") or (args.workers if isinstance(args.workers, int) else 1)
    elapsed = timing.elapsed
    report: dict[str, Any] = {
        "dir": args.dir,
        "workers": workers,
        "worker_type": args.worker_type,
        "reader": type(reader).__name__,
        "dataset": type(dataset).__name__,
        "batch_size": args.batch_size,
        "seconds": elapsed,
        "close_s": timing.close_s,
        "first_batch_s": timing.first_batch_s,
        "startup_s": timing.startup_s(),
        "steady_s": timing.steady_s(),
        "steady_state": timing.steady_s() > 0,
        "samples": timing.samples,
        "batches": timing.batches,
        "epochs_started": stats.get("epoch", 0) + 1,
        "samples_per_s": rate_s,
        "batches_per_s": rate_b,
        "bytes_read": stats.get("bytes_read", 0),
        "mb_per_s": stats.get("bytes_read", 0) / elapsed / 1e6 if elapsed > 0 else 0.0,
        "worker_utilisation": timing.utilisation(workers),
        **memory.fields(),
    }
    if args.worker_type == "process":
        report["largest_worker_peak_rss_bytes"] = timing.workers_peak
    if args.step_rate:
        report["step_rate"] = args.step_rate
        report["input_bound"] = rate_b < args.step_rate
    return report


def _show(args: argparse.Namespace, report: dict[str, Any], files: list[str], memory: Memory) -> None:
    pipeline = f"{report['reader']}(batch_size={args.batch_size}) -> {report['dataset']}"
    if args.text_key:
        pipeline += f"(text_key={args.text_key!r}, max_seq_len={args.max_seq_len})"
    pipeline += " -> NumpyDataCollator"
    auto = " (auto)" if args.workers == "auto" else ""
    processes = args.worker_type == "process"
    emit(f"bench {args.dir}: {len(files):,} chunk(s), {report['workers']}{auto} {args.worker_type} worker(s)")
    rows = [
        ("pipeline", pipeline),
        (
            "ran",
            f"{report['seconds']:.1f} s, {report['batches']:,} batches, {report['samples']:,} samples, "
            f"epoch {report['epochs_started']}",
        ),
        ("stopping", f"{report['close_s']:.2f} s to stop the workers"),
        ("first batch", f"{report['first_batch_s']:.2f} s"),
        ("start-up", f"{report['startup_s']:.2f} s (first batch and warm-up; not in the rates below)"),
        (
            "throughput",
            f"{report['samples_per_s']:,.0f} samples/s, {report['batches_per_s']:,.1f} batches/s "
            + (f"(steady state, {report['steady_s']:.1f} s)" if report["steady_state"] else "(whole run: one batch)"),
        ),
        ("read", f"{format_size(report['bytes_read'])} of chunks ({report['mb_per_s']:.1f} MB/s)"),
        ("workers busy", f"{100 * report['worker_utilisation']:.0f}% of their time (steady state)"),
    ]
    mem = memory.describe()
    if mem:
        rows.append(("memory", mem + (" (this process)" if processes else "")))
    if processes and report.get("largest_worker_peak_rss_bytes"):
        rows.append(
            ("worker memory", f"{format_size(report['largest_worker_peak_rss_bytes'])} peak RSS of the largest worker")
        )
    table(rows)
    if args.step_rate:
        emit(_verdict(args, report))


def _verdict(args: argparse.Namespace, report: dict[str, Any]) -> str:
    """The verdict on the steady state: input-bound or not, and what would help (not more idle workers)."""
    need, rate_b, busy = args.step_rate, report["batches_per_s"], report["worker_utilisation"]
    when = f"steady state, after {report['startup_s']:.2f} s start-up" if report["steady_state"] else "one batch"
    if rate_b >= need:
        return (
            f"verdict ({when}): not input-bound at {need:g} steps/s: the loader delivers {rate_b:,.1f} "
            f"batches/s ({rate_b / need:.1f}x what training needs)"
        )
    head = (
        f"verdict ({when}): INPUT-BOUND at {need:g} steps/s: the loader delivers {rate_b:,.1f} batches/s, "
        f"{100 * rate_b / need:.0f}% of what training needs"
    )
    if report["workers"] and busy < _IDLE_WORKERS:
        return (
            f"{head}; the workers are only {100 * busy:.0f}% busy, so more workers would not help: the time "
            "goes in this process (collating, receiving batches; --worker-type process moves encoding out)"
            + ("" if report["steady_state"] else " or in start-up (run longer: --seconds)")
        )
    return (
        f"{head}; the workers are {100 * busy:.0f}% busy: add workers"
        + (" or use --worker-type process" if args.worker_type == "thread" else "")
        + " or make encoding cheaper"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``pyloader bench``; returns the exit status."""
    files = list_files(args.dir)
    reader, dataset = _reader_and_dataset(args, files)
    memory = Memory()
    loader = _loader(args, reader, dataset, files)
    timing = _time(loader, args)
    report = _report(args, reader, dataset, loader, timing, memory)
    if args.json:
        emit(json.dumps(report))
    else:
        _show(args, report, files, memory)
    return 0
