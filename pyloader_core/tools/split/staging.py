"""``split``'s all-or-nothing output: a hidden staging directory, put in place only when complete.

Example::

    old = prepare_out_dir("data/", inputs, overwrite=True)
    stage = make_stage("data/")
    ...  # write the chunks and index.json into stage
    commit(stage, "data/", names, old)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Sequence

from pyloader_core.errors import ConfigError
from pyloader_core.index import ChunkEntry
from pyloader_core.storage.paths import INDEX_NAME, is_data_file_name, is_url

__all__ = ["commit", "make_stage", "prepare_out_dir", "widen_names"]

_PART_RE = re.compile(r"^part-\d+\.")


def prepare_out_dir(out_dir: str, inputs: Sequence[str], overwrite: bool) -> list[str]:
    """Check ``out_dir``; returns the names of an earlier split's files there, replaced at the end."""
    if is_url(out_dir):
        raise ConfigError(f"the output directory must be local, got {out_dir!r}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"output path {out_dir!r} exists and is not a directory")
    out_abs = os.path.realpath(out_dir)
    for path in inputs:
        if not is_url(path) and os.path.realpath(path).startswith(out_abs + os.sep):
            raise ConfigError(f"input {path} is inside the output directory {out_dir}")
    if not os.path.isdir(out_dir):
        return []
    existing = [n for n in sorted(os.listdir(out_dir)) if is_data_file_name(n) or n == INDEX_NAME]
    if not existing:
        return []
    ours = [n for n in existing if _PART_RE.match(n) or n == INDEX_NAME]
    others = [n for n in existing if n not in ours]
    if not overwrite or others:
        hint = " (use --overwrite to replace its part-* files)" if not others else ""
        raise ConfigError(f"output directory {out_dir!r} is not empty: {', '.join(existing[:3])}...{hint}")
    return ours


def make_stage(out_dir: str) -> str:
    """A fresh hidden directory to write the output into, on the output's file system.

    Beside ``out_dir`` when that does not exist yet (the end is then one rename of the whole
    directory); inside it when it does (it may be a mount point, or hold other hidden files).
    """
    if os.path.isdir(out_dir):
        return tempfile.mkdtemp(prefix=".pyloader-split-", dir=out_dir)
    out_abs = os.path.abspath(out_dir)
    parent = os.path.dirname(out_abs)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out_abs)}.pyloader-split-", dir=parent)


def commit(stage: str, out_dir: str, names: Sequence[str], old: Sequence[str]) -> None:
    """Put the staged chunks and ``index.json`` in place of ``old``: all of them, or (on an error) none.

    A stage beside ``out_dir`` is renamed to it in one step. A stage inside it is emptied into
    it: the earlier split's files are moved aside (its ``index.json`` first), the new chunks moved
    in and the new ``index.json`` last; an error on the way moves everything back. (A crash in
    the middle of those renames can still leave a part; the index is then missing or the old one
    is gone, never a new index over a partial set.)
    """
    if os.path.dirname(os.path.abspath(stage)) != os.path.abspath(out_dir):
        os.rename(stage, out_dir)  # out_dir absent, or an empty directory made meanwhile
        return
    aside = os.path.join(stage, ".replaced")
    os.mkdir(aside)
    old_order = sorted(old, key=lambda n: n != INDEX_NAME)  # the old index goes first
    new_order = [n for n in names if n != INDEX_NAME] + [INDEX_NAME]  # the new index comes last
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in old_order:
            os.replace(os.path.join(out_dir, name), os.path.join(aside, name))
            moved_old.append(name)
        for name in new_order:
            os.replace(os.path.join(stage, name), os.path.join(out_dir, name))
            moved_new.append(name)
    except BaseException:
        for name in reversed(moved_new):
            with contextlib.suppress(OSError):
                os.replace(os.path.join(out_dir, name), os.path.join(stage, name))
        for name in reversed(moved_old):
            with contextlib.suppress(OSError):
                os.replace(os.path.join(aside, name), os.path.join(out_dir, name))
        raise
    shutil.rmtree(stage, ignore_errors=True)


def widen_names(out_dir: str, chunks: list[ChunkEntry], digits: int = 5) -> list[ChunkEntry]:
    """Past 100000 chunks the 5-digit names would sort wrongly: rename them all to one width."""
    width = len(str(max(len(chunks) - 1, 0)))
    if width <= digits:
        return chunks
    renamed = []
    for i, c in enumerate(chunks):
        new = f"part-{i:0{width}d}" + c.name[c.name.index(".") :]
        os.replace(os.path.join(out_dir, c.name), os.path.join(out_dir, new))
        renamed.append(dataclasses.replace(c, name=new))
    return renamed
