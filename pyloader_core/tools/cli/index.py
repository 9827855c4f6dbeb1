"""``pyloader index``: write (or, with ``--verify``, check) ``index.json`` for existing chunk files.

Example::

    pyloader index data/ && pyloader index data/ --verify
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from pyloader_core import index as ix
from pyloader_core import storage
from pyloader_core.errors import ConfigError
from pyloader_core.sizes import format_size
from pyloader_core.storage.listing import list_files
from pyloader_core.tools.cli.args import add_format_option, add_output_options
from pyloader_core.tools.cli.report import Memory, emit
from pyloader_core.tools.indexing import build_index, write_index

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add the ``index`` command to the subparsers ``sub``."""
    p = sub.add_parser(
        "index",
        help="write index.json for existing chunk files",
        description="Count the samples of every chunk file in DIR and write DIR/index.json (name, samples, "
        "bytes, sha256, format of each chunk). The loader then knows len() and shards exactly without a "
        "counting pass. With --verify, check the chunks against an existing index.json instead.",
        epilog="Example: pyloader index data/ && pyloader index data/ --verify",
    )
    p.add_argument("dir", metavar="DIR", help="directory of chunk files (local or an fsspec URL)")
    add_format_option(p, "count")
    p.add_argument("--verify", action="store_true", help="verify sizes and SHA-256 checksums against index.json")
    add_output_options(p, "result")
    p.set_defaults(func=run)


def _check_dir(path: str) -> None:
    if storage.is_url(path):
        if storage.is_http(path):
            raise ConfigError(f"{path}: an HTTP URL cannot be indexed here (no listing); index the local copy")
        fs, p = storage.url_to_fs(path)
        ok = fs.isdir(p)
    else:
        ok = os.path.isdir(path)
    if not ok:
        if storage.exists(path):
            raise ConfigError(f"{path} is not a directory")
        raise FileNotFoundError(f"directory {path!r} does not exist")


def run(args: argparse.Namespace) -> int:
    """Run ``pyloader index``; returns the exit status."""
    _check_dir(args.dir)
    memory = Memory()
    files = list_files(args.dir)
    if args.verify:
        return _verify(args, files)
    started = time.perf_counter()
    data = build_index(files, args.format, args.dir)
    previous = ix.load_index(args.dir)
    if previous is not None and "split" in previous.meta:  # keep how the chunks were made
        data = {**data, "split": previous.meta["split"]}
    path = write_index(args.dir, data)
    seconds = time.perf_counter() - started
    if args.json:
        emit(
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
        emit(
            f"indexed {len(data['chunks']):,} chunk(s): {data['total_samples']:,} samples, "
            f"{format_size(data['total_bytes'])} in {seconds:.1f} s -> {path}"
        )
    return 0


def _verify(args: argparse.Namespace, files: list[str]) -> int:
    index = ix.load_index(args.dir, strict=True)
    if index is None:
        raise FileNotFoundError(
            f"{storage.join(args.dir, ix.INDEX_NAME)} does not exist; build it with `pyloader index {args.dir}`"
        )
    bad = ix.verify_checksums(files)
    present = {ix.relative_name(f, args.dir) for f in files}
    missing = [name for name in index.chunks if name not in present]
    if args.json:
        emit(json.dumps({"chunks": len(files), "bad": bad, "missing": missing}))
    elif not args.quiet:
        emit(
            f"verified {len(files):,} chunk(s) against {storage.join(args.dir, ix.INDEX_NAME)}: "
            f"{len(bad)} differ, {len(missing)} listed but missing"
        )
    if bad or missing:
        problems = [*bad, *(f"{name} (missing)" for name in missing)]
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ix.ChecksumError(f"{len(problems)} chunk(s) do not match index.json: {shown}")
    return 0
