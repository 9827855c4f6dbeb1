"""``pyloader split``: input files into chunk files plus ``index.json`` (see :mod:`pyloader_core.tools.split`).

Example::

    pyloader split big.jsonl --out data/ --chunk-size 64MB --shuffle --compression zstd
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyloader_core.sizes import format_size
from pyloader_core.tools.cli.args import add_output_options, positive_int, size_arg, split_format_names
from pyloader_core.tools.cli.report import Memory, emit, table
from pyloader_core.tools.split import split

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add the ``split`` command to the subparsers ``sub``."""
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
        "--format", choices=split_format_names(), help="input format (default: from the file names)"
    )
    p.add_argument(
        "--chunk-size",
        type=size_arg,
        metavar="SIZE",
        help="roll over before a chunk's records exceed SIZE, uncompressed (default 64MB unless --samples)",
    )
    p.add_argument("--samples", type=positive_int, metavar="N", help="roll over after N samples per chunk")
    p.add_argument("--shuffle", action="store_true", help="shuffle the records (two-pass, bounded memory)")
    p.add_argument("--seed", type=int, default=42, help="shuffle seed (default 42)")
    p.add_argument(
        "--compression",
        choices=["none", "gzip", "zstd"],
        help="compress chunks (default none; Parquet: the column codec, default snappy)",
    )
    p.add_argument(
        "--max-memory",
        type=size_arg,
        default=256 << 20,
        metavar="SIZE",
        help="memory budget for buffers and shuffle buckets; the input may be far larger (default 256MB)",
    )
    p.add_argument("--tmp-dir", metavar="DIR", help="where shuffle buckets go (default: hidden folder in --out)")
    p.add_argument("--overwrite", action="store_true", help="replace part-* chunks and index.json already in --out")
    add_output_options(p, "result")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pyloader split``; returns the exit status."""
    memory = Memory()
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
        emit(
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
    emit(
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
    table(rows)
    return 0
