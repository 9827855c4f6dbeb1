"""``pyloader inspect``: chunk count and formats, samples, bytes and the first record's schema.

Example::

    pyloader inspect data/ --json
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from pyloader_core import index as ix
from pyloader_core import storage
from pyloader_core.errors import ConfigError
from pyloader_core.formats import FORMATS, detect_format, get_reader
from pyloader_core.reader import count_or_read
from pyloader_core.sizes import format_size
from pyloader_core.storage.listing import list_files
from pyloader_core.tools.cli.args import add_format_option, add_output_options
from pyloader_core.tools.cli.report import emit, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add the ``inspect`` command to the subparsers ``sub``."""
    p = sub.add_parser(
        "inspect",
        help="chunk count, samples, bytes and a schema sample",
        description="Describe a chunked dataset: chunk count and formats, samples (from index.json when "
        "up to date, else counted), bytes, and the keys and types of the first record.",
        epilog="Example: pyloader inspect data/ --json",
    )
    p.add_argument("dir", metavar="DIR", help="directory, glob or URL of chunk files")
    add_format_option(p, "read")
    add_output_options(p, "report", quiet=False)
    p.set_defaults(func=run)


def _first_record(path: str, fmt: str | None) -> tuple[dict[str, str], dict[str, Any]] | None:
    """``({key: type}, {key: value})`` of ``path``'s first record, read without loading the file."""
    known = FORMATS.get(fmt) if fmt is not None else None
    return known.first_record(path) if known is not None else None


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def run(args: argparse.Namespace) -> int:
    """Run ``pyloader inspect``; returns the exit status."""
    files = list_files(args.dir)
    formats: dict[str, int] = {}
    for f in files:
        fmt = args.format or detect_format(f) or "unknown"
        formats[fmt] = formats.get(fmt, 0) + 1
    sizes = [storage.file_size(f) for f in files]
    index = ix.load_index(files)
    counts = ix.lookup_counts(files, get_reader(args.format) if args.format else None)
    source = "index.json"
    if counts is None:
        if index is not None:
            source = "counted; index.json is stale or incomplete"
        else:
            source = "counted; no index.json"
        counts = []
        readers: dict[str, Any] = {}
        for f in files:
            fmt = args.format or detect_format(f)
            if fmt is None:
                raise ConfigError(f"cannot tell the format of {f} from its name; pass --format")
            reader = readers.setdefault(fmt, get_reader(fmt))
            counts.append(count_or_read(reader, f))
    first_fmt = args.format or detect_format(files[0])
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
        emit(json.dumps(report, default=str))
        return 0
    emit(f"{args.dir}")
    schema = ", ".join(f"{k}: {t}" for k, t in report["schema"].items()) or "(no records)"
    table(
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
