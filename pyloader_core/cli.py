"""The ``pyloader`` command: ``split``, ``index``, ``inspect`` and ``bench``.

Run it as ``pyloader COMMAND ...`` (the console script) or ``python -m pyloader_core COMMAND ...``;
``pyloader COMMAND --help`` describes each command. Errors print one line,
``pyloader: error: ...``, on stderr and exit with 2 (bad usage) or 1 (anything else), never a
traceback (``--traceback`` shows it for unexpected errors).

Example::

    pyloader split big.jsonl --out data/ --chunk-size 64MB --shuffle --compression zstd
    pyloader inspect data/
    pyloader bench data/ --workers 4 --step-rate 20
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyloader_core.errors import ConfigError, DataFormatError, PyLoaderError
from pyloader_core.sizes import format_size, parse_size

__all__ = ["main"]

logger = logging.getLogger(__name__)

PROG = "pyloader"


class _UsageError(Exception):
    """A command line argparse rejected."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage dump
        raise _UsageError(f"{message} (see '{self.prog} --help')")


_READ_FORMATS = ["jsonl", "csv", "parquet", "txt", "numpy"]  # what --format accepts for reading

def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int_or_auto(text: str, minimum: int) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum} or 'auto', got {value}")
    return value


def _workers(text: str) -> int | str:
    return _int_or_auto(text, 0)


def _queue(text: str) -> int | str:
    return _int_or_auto(text, 1)


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


# -- memory reporting ------------------------------------------------------------------------


def _rss_now() -> int | None:
    """This process's resident set size in bytes, where the platform tells it."""
    rss = _status_kib("self", "VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


def _status_kib(pid: int | str, field: str) -> int | None:
    """A ``kB`` field (``VmHWM``, ``VmRSS``) of ``/proc/PID/status``, in bytes; ``None`` off Linux."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _peak_rss() -> int | None:
    """This process's peak RSS in bytes.

    Linux: ``VmHWM``, the high-water mark of this program's own memory. (``ru_maxrss`` is not used
    there: it keeps the parent's size across fork and exec, so a child of a big process reports
    the parent's peak.) Elsewhere: ``ru_maxrss``.
    """
    hwm = _status_kib("self", "VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def _children_peak_rss() -> int | None:
    """The largest peak RSS among this process's live child processes (Linux, with psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    peaks = [_status_kib(c.pid, "VmHWM") for c in psutil.Process().children(recursive=True)]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


class _Memory:
    """The process's RSS when the command started, to report the peak above it."""

    def __init__(self) -> None:
        self.start = _rss_now()

    def describe(self) -> str | None:
        peak = _peak_rss()
        if peak is None:
            return None
        text = f"{format_size(peak)} peak RSS"
        if self.start is not None:
            text += f" ({format_size(max(0, peak - self.start))} above the {format_size(self.start)} at start)"
        return text

    def fields(self) -> dict[str, int | None]:
        peak = _peak_rss()
        return {
            "peak_rss_bytes": peak,
            "start_rss_bytes": self.start,
            "peak_above_start_bytes": None if peak is None or self.start is None else max(0, peak - self.start),
        }


def _table(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


# -- split -----------------------------------------------------------------------------------


def _cmd_split(args: argparse.Namespace) -> int:
    from pyloader_core.split import split

    memory = _Memory()
    result = split(
        args.inputs,
        args.out,
        fmt=args.format,
        chunk_size=args.chunk_size,
        samples_per_chunk=args.samples,
        shuffle=args.shuffle,
        seed=args.seed,
        compression=args.compression,
        max_memory=args.max_memory,
        tmp_dir=args.tmp_dir,
        overwrite=args.overwrite,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "out_dir": result.out_dir,
                    "format": result.format,
                    "chunks": len(result.chunks),
                    "samples": result.samples,
                    "input_bytes": result.input_bytes,
                    "record_bytes": result.record_bytes,
                    "output_bytes": result.output_bytes,
                    "seconds": result.seconds,
                    "buckets": result.buckets,
                    "compression": result.compression,
                    "index": result.index_path,
                    **memory.fields(),
                }
            )
        )
        return 0
    if args.quiet:
        return 0
    rate = result.input_bytes / result.seconds if result.seconds > 0 else 0.0
    print(
        f"split {len(args.inputs)} input(s) ({format_size(result.input_bytes)}, {result.format}) into {result.out_dir}"
    )
    limits = []
    if args.samples:
        limits.append(f"{args.samples:,} samples")
    if args.chunk_size or not args.samples:
        limits.append(f"{format_size(args.chunk_size or 64 << 20)} of records")
    rows = [
        ("chunks", f"{len(result.chunks):,} (at most {' or '.join(limits)} each)"),
        ("samples", f"{result.samples:,}"),
        (
            "written",
            f"{format_size(result.output_bytes)} ({result.compression.replace('none', 'no')} compression; "
            + f"{format_size(result.record_bytes)} of records)",
        ),
    ]
    if args.shuffle:
        rows.append(("shuffle", f"seed {args.seed}, 2 passes through {result.buckets} bucket file(s)"))
    rows.append(("index", result.index_path))
    rows.append(("time", f"{result.seconds:.1f} s ({format_size(rate)}/s of input)"))
    mem = memory.describe()
    if mem:
        rows.append(("memory", f"{mem}; limit {format_size(args.max_memory)}"))
    _table(rows)
    return 0


# -- index -----------------------------------------------------------------------------------


def _check_dir(path: str) -> None:
    from pyloader_core import remote

    if remote.is_url(path):
        if remote.is_http(path):
            raise ConfigError(f"{path}: an HTTP URL cannot be indexed here (no listing); index the local copy")
        fs, p = remote.url_to_fs(path)
        ok = fs.isdir(p)
    else:
        ok = os.path.isdir(path)
    if not ok:
        if remote.exists(path):
            raise ConfigError(f"{path} is not a directory")
        raise FileNotFoundError(f"directory {path!r} does not exist")


def _cmd_index(args: argparse.Namespace) -> int:
    from pyloader_core import index as ix
    from pyloader_core.files import list_files

    _check_dir(args.dir)
    memory = _Memory()
    files = list_files(args.dir)
    if args.verify:
        return _verify(args, files)
    started = time.perf_counter()
    data = ix.build_index(files, args.format, args.dir)
    previous = ix.load_index(args.dir)
    if previous is not None and "split" in previous.meta:  # keep how the chunks were made
        data = {**data, "split": previous.meta["split"]}
    path = ix.write_index(args.dir, data)
    seconds = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "index": path,
                    "chunks": len(data["chunks"]),
                    "samples": data["total_samples"],
                    "bytes": data["total_bytes"],
                    "seconds": seconds,
                    **memory.fields(),
                }
            )
        )
    elif not args.quiet:
        print(
            f"indexed {len(data['chunks']):,} chunk(s): {data['total_samples']:,} samples, "
            f"{format_size(data['total_bytes'])} in {seconds:.1f} s -> {path}"
        )
    return 0


def _verify(args: argparse.Namespace, files: list[str]) -> int:
    from pyloader_core import index as ix
    from pyloader_core import remote

    index = ix.load_index(args.dir, strict=True)
    if index is None:
        raise FileNotFoundError(
            f"{remote.join(args.dir, ix.INDEX_NAME)} does not exist; build it with `pyloader index {args.dir}`"
        )
    bad = ix.verify_checksums(files)
    present = {ix.relative_name(f, args.dir) for f in files}
    missing = [name for name in index.chunks if name not in present]
    if args.json:
        print(json.dumps({"chunks": len(files), "bad": bad, "missing": missing}))
    elif not args.quiet:
        print(
            f"verified {len(files):,} chunk(s) against {remote.join(args.dir, ix.INDEX_NAME)}: "
            f"{len(bad)} differ, {len(missing)} listed but missing"
        )
    if bad or missing:
        problems = [*bad, *(f"{name} (missing)" for name in missing)]
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ix.ChecksumError(f"{len(problems)} chunk(s) do not match index.json: {shown}")
    return 0


# -- inspect ---------------------------------------------------------------------------------


def _first_record(path: str, fmt: str | None) -> tuple[dict[str, str], dict[str, Any]] | None:
    """``({key: type}, {key: value})`` of ``path``'s first record, read without loading the file."""
    from pyloader_core import remote
    from pyloader_core.readers._open import iter_lines

    if fmt == "jsonl":
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        rec = json.loads(line.lstrip(b"\xef\xbb\xbf"))
                    except ValueError as exc:
                        raise DataFormatError(f"invalid JSON: {exc}", path, lineno) from None
                    if not isinstance(rec, dict):
                        raise DataFormatError(f"expected a JSON object, got {type(rec).__name__}", path, lineno)
                    return {k: type(v).__name__ for k, v in rec.items()}, rec
        return None
    if fmt == "txt":
        with iter_lines(path) as lines:
            for line in lines:
                text = line.lstrip(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8", "replace")
                return {"text": "str"}, {"text": text}
        return None
    if fmt == "csv":
        import csv
        import io

        from pyloader_core.readers._open import open_binary

        with open_binary(path) as raw:
            rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))
            header = next((r for r in rows if r), None)
            first = next((r for r in rows if r), None)
        if header is None:
            return None
        values = dict(zip(header, first or [], strict=False))
        return {h: "str" for h in header}, values
    if fmt == "parquet":
        from pyloader_core.readers.parquet import _pyarrow

        _, pq = _pyarrow()
        with remote.open_binary_any(path, seekable=True) as f:
            pf = pq.ParquetFile(f)
            types = {field.name: str(field.type) for field in pf.schema_arrow}
            values: dict[str, Any] = {}
            for batch in pf.iter_batches(batch_size=1):
                if batch.num_rows:
                    values = batch.slice(0, 1).to_pylist()[0]
                    break
        return types, values
    if fmt == "numpy":
        from pyloader_core.readers import NumpyDataReader

        columns, n = NumpyDataReader(mmap=True).read_file(path)
        types = {k: f"{v.dtype}{list(v.shape[1:]) if v.ndim > 1 else ''}" for k, v in columns.items()}
        values = {k: (v[0].tolist() if n else None) for k, v in columns.items()}
        return types, values
    return None


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pyloader_core import index as ix
    from pyloader_core import remote
    from pyloader_core.files import list_files

    files = list_files(args.dir)
    formats: dict[str, int] = {}
    for f in files:
        fmt = args.format or ix.detect_format(f) or "unknown"
        formats[fmt] = formats.get(fmt, 0) + 1
    sizes = [remote.file_size(f) for f in files]
    index = ix.load_index(files)
    counts = ix.lookup_counts(files, ix.reader_for_format(args.format) if args.format else None)
    source = "index.json"
    if counts is None:
        if index is not None:
            source = "counted; index.json is stale or incomplete"
        else:
            source = "counted; no index.json"
        counts = []
        readers: dict[str, Any] = {}
        for f in files:
            fmt = args.format or ix.detect_format(f)
            if fmt is None:
                raise ConfigError(f"cannot tell the format of {f} from its name; pass --format")
            reader = readers.setdefault(fmt, ix.reader_for_format(fmt))
            counts.append(ix._count(reader, f))
    first_fmt = args.format or ix.detect_format(files[0])
    sample = _first_record(files[0], first_fmt)
    report: dict[str, Any] = {
        "dir": args.dir,
        "chunks": len(files),
        "formats": formats,
        "samples": sum(counts),
        "samples_source": source,
        "bytes": sum(sizes),
        "min_samples_per_chunk": min(counts),
        "max_samples_per_chunk": max(counts),
        "index": "absent" if index is None else ("up to date" if source == "index.json" else "stale or incomplete"),
        "schema": sample[0] if sample else {},
        "first_record": sample[1] if sample else {},
        "schema_from": files[0],
    }
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    print(f"{args.dir}")
    schema = ", ".join(f"{k}: {t}" for k, t in report["schema"].items()) or "(no records)"
    _table(
        [
            ("chunks", f"{len(files):,} ({', '.join(f'{k}: {v}' for k, v in sorted(formats.items()))})"),
            ("samples", f"{report['samples']:,} ({source})"),
            ("per chunk", f"{report['min_samples_per_chunk']:,} to {report['max_samples_per_chunk']:,} samples"),
            (
                "bytes",
                f"{format_size(report['bytes'])} ({format_size(report['bytes'] / len(files))} per chunk on average)",
            ),
            ("index", report["index"]),
            ("schema", f"{schema}  (first record of {os.path.basename(files[0].rstrip('/'))})"),
            ("example", _short(report["first_record"], 100)),
        ]
    )
    return 0


# -- bench -----------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from pyloader_core import DataLoader, Dataset, NumpyDataCollator, TextDataset
    from pyloader_core import index as ix
    from pyloader_core.files import list_files
    from pyloader_core.readers import get_reader

    files = list_files(args.dir)
    name = args.reader or ix.detect_format(files[0])
    if name is None:
        raise ConfigError(f"cannot tell the format of {files[0]} from its name; pass --reader")
    reader = get_reader(name, batch_size=args.batch_size)
    if args.text_key:
        dataset: Dataset = TextDataset(
            args.vocab, max_seq_len=args.max_seq_len, text_key=args.text_key, label_key=args.label_key
        )
    else:
        dataset = Dataset()
    epochs = args.epochs if args.epochs else 10_000  # "no limit": --seconds ends it
    memory = _Memory()
    loader = DataLoader(
        reader,
        dataset,
        NumpyDataCollator(),
        files,
        num_epoch=epochs,
        max_queue_size=args.queue_size,
        shuffle=args.shuffle,
        num_workers=args.workers,
        worker_type=args.worker_type,
        **({"max_memory": args.max_memory} if args.max_memory else {}),
    )
    samples = batches = 0
    first_batch_s: float | None = None
    steady_from = last = 0.0
    steady_samples = steady_batches = 0
    started = time.perf_counter()
    deadline = started + args.seconds if args.seconds > 0 else float("inf")
    it = iter(loader)
    workers_peak: int | None = None
    next_probe = 0.0
    try:
        for batch in it:
            now = time.perf_counter()
            if args.worker_type == "process" and now >= next_probe:  # workers exit with the last epoch
                peak = _children_peak_rss()
                if peak is not None:
                    workers_peak = max(workers_peak or 0, peak)
                next_probe = now + 0.25
            if first_batch_s is None:
                first_batch_s = now - started
                steady_from, steady_samples, steady_batches = now, 0, 0
            batches += 1
            n = len(next(iter(batch.values()))) if batch else 0
            samples += n
            if batches > 1:
                steady_samples += n
                steady_batches += 1
                last = now
            if now >= deadline:
                break
        if args.worker_type == "process":
            peak = _children_peak_rss()
            if peak is not None:
                workers_peak = max(workers_peak or 0, peak)
    finally:
        ended = time.perf_counter()
        close = getattr(it, "close", None)
        if close is not None:
            close()
        loader.close()
    elapsed = ended - started
    close_s = time.perf_counter() - ended
    if first_batch_s is None:
        raise DataFormatError(f"{args.dir} yielded no batches")
    steady_s = last - steady_from if batches > 1 else elapsed
    stats = loader.stats()
    rate_b = steady_batches / steady_s if batches > 1 and steady_s > 0 else batches / elapsed
    rate_s = steady_samples / steady_s if batches > 1 and steady_s > 0 else samples / elapsed
    busy = sum(stats.get("worker_busy_s", {}).values())
    workers = stats.get("num_workers") or (args.workers if isinstance(args.workers, int) else 1)
    utilisation = busy / (elapsed * max(1, workers))
    report: dict[str, Any] = {
        "dir": args.dir,
        "workers": workers,
        "worker_type": args.worker_type,
        "reader": type(reader).__name__,
        "dataset": type(dataset).__name__,
        "batch_size": args.batch_size,
        "seconds": elapsed,
        "close_s": close_s,
        "first_batch_s": first_batch_s,
        "samples": samples,
        "batches": batches,
        "epochs_started": stats.get("epoch", 0) + 1,
        "samples_per_s": rate_s,
        "batches_per_s": rate_b,
        "bytes_read": stats.get("bytes_read", 0),
        "mb_per_s": stats.get("bytes_read", 0) / elapsed / 1e6 if elapsed > 0 else 0.0,
        "worker_utilisation": utilisation,
        **memory.fields(),
    }
    if args.worker_type == "process":
        report["largest_worker_peak_rss_bytes"] = workers_peak
    if args.step_rate:
        report["step_rate"] = args.step_rate
        report["input_bound"] = rate_b < args.step_rate
    if args.json:
        print(json.dumps(report))
        return 0
    pipeline = f"{type(reader).__name__}(batch_size={args.batch_size}) -> {type(dataset).__name__}"
    if args.text_key:
        pipeline += f"(text_key={args.text_key!r}, max_seq_len={args.max_seq_len})"
    pipeline += " -> NumpyDataCollator"
    auto = " (auto)" if args.workers == "auto" else ""
    print(f"bench {args.dir}: {len(files):,} chunk(s), {workers}{auto} {args.worker_type} worker(s)")
    rows = [
        ("pipeline", pipeline),
        ("ran", f"{elapsed:.1f} s, {batches:,} batches, {samples:,} samples, epoch {report['epochs_started']}"),
        ("stopping", f"{close_s:.2f} s to stop the workers"),
        ("first batch", f"{first_batch_s:.2f} s"),
        ("throughput", f"{rate_s:,.0f} samples/s, {rate_b:,.1f} batches/s (after the first batch)"),
        ("read", f"{format_size(report['bytes_read'])} of chunks ({report['mb_per_s']:.1f} MB/s)"),
        ("workers busy", f"{100 * utilisation:.0f}% of their time"),
    ]
    mem = memory.describe()
    if mem:
        rows.append(("memory", mem + (" (this process)" if args.worker_type == "process" else "")))
    if args.worker_type == "process" and report.get("largest_worker_peak_rss_bytes"):
        rows.append(
            ("worker memory", f"{format_size(report['largest_worker_peak_rss_bytes'])} peak RSS of the largest worker")
        )
    _table(rows)
    if args.step_rate:
        need = args.step_rate
        if rate_b < need:
            print(
                f"verdict: INPUT-BOUND at {need:g} steps/s: the loader delivers {rate_b:,.1f} batches/s, "
                f"{100 * rate_b / need:.0f}% of what training needs; add workers"
                + (" or use --worker-type process" if args.worker_type == "thread" else "")
                + " or make encoding cheaper"
            )
        else:
            print(
                f"verdict: not input-bound at {need:g} steps/s: the loader delivers {rate_b:,.1f} batches/s "
                f"({rate_b / need:.1f}x what training needs)"
            )
    return 0


# -- the parser ------------------------------------------------------------------------------


def _build_parser() -> _Parser:
    from pyloader_core import __version__

    parser = _Parser(
        prog=PROG,
        description="PyLoader's toolkit: split big datasets into chunks, index, inspect and benchmark them.",
        epilog="Sizes take binary units: 64MB = 64 MiB, also K, G, T (e.g. 512K, 1.5G). "
        "Run 'pyloader COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pyloader {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-vv: debug)")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "split",
        help="split input files into chunk files plus index.json",
        description="Split INPUT files (jsonl, csv, parquet, txt) into chunk files part-NNNNN.* in --out, "
        "streaming in bounded memory, optionally shuffled, then write index.json beside them.",
        epilog="Example: pyloader split big.jsonl --out data/ --chunk-size 64MB --shuffle --compression zstd",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="input files, directories, globs or URLs")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory (created; must hold no data)")
    p.add_argument(
        "--format", choices=["jsonl", "csv", "parquet", "txt"], help="input format (default: from the file names)"
    )
    p.add_argument(
        "--chunk-size",
        type=_size,
        metavar="SIZE",
        help="roll over before a chunk's records exceed SIZE, uncompressed (default 64MB unless --samples)",
    )
    p.add_argument("--samples", type=_positive_int, metavar="N", help="roll over after N samples per chunk")
    p.add_argument("--shuffle", action="store_true", help="shuffle the records (two-pass, bounded memory)")
    p.add_argument("--seed", type=int, default=42, help="shuffle seed (default 42)")
    p.add_argument(
        "--compression",
        choices=["none", "gzip", "zstd"],
        help="compress chunks (default none; Parquet: the column codec, default snappy)",
    )
    p.add_argument(
        "--max-memory",
        type=_size,
        default=256 << 20,
        metavar="SIZE",
        help="memory budget for buffers and shuffle buckets; the input may be far larger (default 256MB)",
    )
    p.add_argument("--tmp-dir", metavar="DIR", help="where shuffle buckets go (default: hidden folder in --out)")
    p.add_argument("--overwrite", action="store_true", help="replace part-* chunks and index.json already in --out")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser(
        "index",
        help="write index.json for existing chunk files",
        description="Count the samples of every chunk file in DIR and write DIR/index.json (name, samples, "
        "bytes, sha256, format of each chunk). The loader then knows len() and shards exactly without a "
        "counting pass. With --verify, check the chunks against an existing index.json instead.",
        epilog="Example: pyloader index data/ && pyloader index data/ --verify",
    )
    p.add_argument("dir", metavar="DIR", help="directory of chunk files (local or an fsspec URL)")
    p.add_argument(
        "--format",
        choices=_READ_FORMATS,
        help="count every file as this format (default: from each file's name)",
    )
    p.add_argument("--verify", action="store_true", help="verify sizes and SHA-256 checksums against index.json")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser(
        "inspect",
        help="chunk count, samples, bytes and a schema sample",
        description="Describe a chunked dataset: chunk count and formats, samples (from index.json when "
        "up to date, else counted), bytes, and the keys and types of the first record.",
        epilog="Example: pyloader inspect data/ --json",
    )
    p.add_argument("dir", metavar="DIR", help="directory, glob or URL of chunk files")
    p.add_argument(
        "--format",
        choices=_READ_FORMATS,
        help="read every file as this format (default: from each file's name)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "bench",
        help="measure the loader's throughput; say whether training would be input-bound",
        description="Run the loader over DIR (reader -> Dataset -> NumpyDataCollator, or TextDataset "
        "tokenisation with --text-key) for --seconds or --epochs, and report samples/s, batches/s and "
        "time to the first batch. With --step-rate, say whether a training loop at that many steps "
        "(batches) per second would wait for input.",
        epilog="Example: pyloader bench data/ --workers 4 --worker-type process --text-key input_text --step-rate 50",
    )
    p.add_argument("dir", metavar="DIR", help="directory, glob or URL of chunk files")
    p.add_argument("--workers", type=_workers, default=1, metavar="N", help="background workers, or 'auto' (default 1)")
    p.add_argument("--worker-type", choices=["thread", "process"], default="thread", help="default thread")
    p.add_argument(
        "--reader", metavar="NAME", help="reader name (jsonl, csv, parquet, txt, numpy; default: from file names)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N", help="default 64")
    p.add_argument(
        "--seconds",
        type=_nonneg_float,
        default=5.0,
        metavar="S",
        help="stop after S seconds (default 5; 0: run the --epochs in full)",
    )
    p.add_argument(
        "--epochs",
        type=_nonneg_int,
        default=1,
        metavar="N",
        help="stop after N epochs (default 1; 0: until --seconds, at most 10000 epochs)",
    )
    p.add_argument(
        "--queue-size", type=_queue, default=10, metavar="N", help="max chunks in flight, or 'auto' (default 10)"
    )
    p.add_argument(
        "--max-memory", type=_size, metavar="SIZE", help="the loader's memory budget for chunks in flight (max_memory)"
    )
    p.add_argument("--shuffle", action="store_true", help="shuffle files and samples, as in training")
    p.add_argument(
        "--step-rate",
        type=_positive_float,
        metavar="STEPS_PER_S",
        help="training steps per second to compare against (one batch per step)",
    )
    p.add_argument("--text-key", metavar="KEY", help="tokenise this text column with TextDataset")
    p.add_argument("--label-key", default="label", metavar="KEY", help="TextDataset's label column (default label)")
    p.add_argument(
        "--max-seq-len", type=_positive_int, default=128, metavar="N", help="TextDataset length (default 128)"
    )
    p.add_argument("--vocab", metavar="FILE", help="TextDataset vocabulary (default: text is integer ids)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_cmd_bench)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if (
        isinstance(exc, OSError)
        and not isinstance(exc, PyLoaderError)
        and exc.filename
        and str(exc.filename) not in text
    ):
        text += f": {exc.filename}"
    if isinstance(exc, (KeyError, MemoryError)):
        text = f"{type(exc).__name__}: {text}"
    return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: int) -> Any:
    """Log ``pyloader_core`` messages to stderr for this command; returns the undo function."""
    log = logging.getLogger("pyloader_core")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("pyloader: %(levelname)s: %(message)s"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    log.propagate = False

    def undo() -> None:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pyloader`` command line; returns the exit status (0 ok, 1 failed, 2 bad usage).

    Example::

        main(["inspect", "data/"])       # prints the report, returns 0
        main(["split", "missing.jsonl", "--out", "x"])  # prints one error line, returns 1
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    if args.command is None:
        print(f"{PROG}: error: choose a command: split, index, inspect or bench (see '{PROG} --help')", file=sys.stderr)
        return 2
    undo_logging = _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pyloader inspect ... | head`
        return 1
    except (PyLoaderError, OSError, ValueError, ImportError, MemoryError, KeyError) as exc:
        if args.traceback:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.traceback:
            raise
        print(
            f"{PROG}: error: unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        undo_logging()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
