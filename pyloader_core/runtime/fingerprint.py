"""What a loader state records of its data files, and what changed since (names, sizes, content, order).

A state lists file by file (names relative to their common directory, sizes, ``index.json`` checksums
or sampled head/tail digests) up to :data:`LISTED_FILES` files, digests beyond, so that resuming on
files that changed is an error naming the change rather than silent duplicates and misses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from pyloader_core import storage as remote
from pyloader_core.index import Index, load_index

__all__ = ["LISTED_FILES", "files_changes", "files_fingerprint"]

#: File sets up to this size are listed file by file in a state (names, sizes, checksums), so that a
#: mismatch names the files that changed; larger sets keep only digests (the error then says what
#: kind of change it is: names or order, sizes, content).
LISTED_FILES = 256

logger = logging.getLogger(__name__)


def _digest(value: Any) -> str:
    """A short (16 hex digits), stable digest of a JSON-able value."""
    text = json.dumps(value, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _parent(path: str) -> str:
    if remote.is_url(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def _common_root(files: Sequence[str]) -> str | None:
    """The directory (or URL prefix) every file is under; ``None`` for a mix of URLs and local paths."""
    urls = [remote.is_url(f) for f in files]
    if not files or (any(urls) and not all(urls)):
        return None
    if all(urls):
        parts = [_parent(f).split("/") for f in files]
        common: list[str] = []
        for level in zip(*parts):
            if any(p != level[0] for p in level):
                break
            common.append(level[0])
        return "/".join(common)
    return os.path.commonpath([_parent(f) for f in files])


def _relative(path: str, root: str | None) -> str:
    if root is None:
        return path
    if remote.is_url(path):
        return path[len(root) :].lstrip("/")
    return os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")


def _size(path: str) -> int | None:
    try:
        return remote.file_size(path)
    except (OSError, ImportError, ValueError) as exc:
        logger.debug("no size for %s: %s", path, exc)
        return None


def _checksums(files: Sequence[str], sizes: Sequence[int | None], root: str | None) -> list[str] | None:
    """Every file's SHA-256 from the ``index.json`` of its directory or of the common directory, or
    ``None`` unless an up-to-date entry (same size) with a checksum lists every file."""
    indexes: dict[str, Index | None] = {}
    out: list[str] = []
    for path, size in zip(files, sizes, strict=True):
        entry = None
        for directory in dict.fromkeys([_parent(path), *([root] if root else [])]):
            if directory not in indexes:
                try:
                    indexes[directory] = load_index(directory)
                except (OSError, ImportError, ValueError) as exc:
                    logger.debug("cannot read the index of %s: %s", directory, exc)
                    indexes[directory] = None
            index = indexes[directory]
            entry = index.entry_for(path) if index is not None else None
            if entry is not None:
                break
        if entry is None or not entry.sha256 or size is None or entry.bytes != size:
            return None
        out.append(entry.sha256)
    return out


_SAMPLE_BYTES = 4096


def _samples(files: Sequence[str], sizes: Sequence[int | None]) -> list[str] | None:
    """SHA-256 of each local file's size, first and last 4 KiB (``None`` if any file is remote or
    unreadable): two small reads per file, once per loader, enough to tell equal-sized files apart."""
    out = []
    for path, size in zip(files, sizes, strict=True):
        if size is None or "://" in path:
            return None
        try:
            with open(path, "rb") as f:
                head = f.read(_SAMPLE_BYTES)
                f.seek(max(0, size - _SAMPLE_BYTES))
                tail = f.read(_SAMPLE_BYTES)
        except OSError:
            return None
        out.append(hashlib.sha256(b"%d:" % size + head + b":" + tail).hexdigest())
    return out


def files_fingerprint(files: Sequence[str]) -> dict[str, Any]:
    """What a loader state records of its data files: small, JSON-able, independent of where they live.

    ``names`` is a digest of the files' names relative to their common directory, in order (data
    moved or copied elsewhere keeps its fingerprint); ``sizes`` a digest of their sizes in bytes
    (``os.stat``, or what the server reports for a URL); ``checksums`` a digest of their SHA-256
    from ``index.json`` when an up-to-date index lists every file, else ``None``. Sets of up to
    :data:`LISTED_FILES` files are also listed as ``[name, size, sha256 prefix]``, so that a
    mismatch names the files that changed.

    Example::

        files_fingerprint(list_files("data/"))
        # {'count': 7, 'names': '3f2a...', 'sizes': '91c0...', 'checksums': None,
        #  'list': [['part-00000.jsonl', 5120, None], ...]}
    """
    files = list(files)
    root = _common_root(files)
    names = [_relative(f, root) for f in files]
    sizes = [_size(f) for f in files]
    sums, kind = _checksums(files, sizes, root), "index"
    if sums is None:  # no index: a digest of each local file's first and last bytes still tells swaps
        sums, kind = _samples(files, sizes), "sample"
    out: dict[str, Any] = {
        "count": len(files),
        "names": _digest(names),
        "sizes": _digest(sizes),
        "checksums": None if sums is None else _digest(sums),
        "checksum_kind": None if sums is None else kind,
    }
    if len(files) <= LISTED_FILES:
        short = [None] * len(files) if sums is None else [c[:12] for c in sums]
        out["list"] = [[n, s, c] for n, s, c in zip(names, sizes, short, strict=True)]
    return out


def _shown(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _listed_changes(old: list[Any], new: list[Any]) -> list[str]:
    """What changed between two ``[name, size, checksum]`` lists, file by file."""
    before = {str(e[0]): (e[1], e[2]) for e in old}
    after = {str(e[0]): (e[1], e[2]) for e in new}

    def same(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
        return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])

    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    renamed = []
    for name in list(added):
        match = [r for r in removed if same(before[r], after[name])]
        if len(match) == 1:  # one gone file had exactly these facts
            renamed.append(f"{match[0]} -> {name}")
            added.remove(name)
            removed.remove(match[0])
    moved, resized, rewritten = [], [], []
    facts = "size" if all(e[2] is None for e in new) else "size and checksum"
    for name in after:
        if name not in before or same(before[name], after[name]):
            continue
        other = [m for m in before if m != name and same(before[m], after[name])]
        if other:
            m = other[0]
            if m in after and same(before[name], after[m]):
                if name < m:  # a swap: reported once
                    moved.append(f"{name} <-> {m} (each has the other's {facts})")
            else:
                moved.append(f"{name} now has the {facts} {m} had")
        elif before[name][0] != after[name][0]:
            resized.append(f"{name} ({before[name][0]} -> {after[name][0]} bytes)")
        else:
            rewritten.append(name)
    changes = []
    for label, items in (
        ("added", added),
        ("removed", removed),
        ("renamed", renamed),
        ("renamed or swapped", moved),
        ("resized", resized),
        ("content changed (checksum)", rewritten),
    ):
        if items:
            changes.append(f"{label}: {_shown(items)}")
    if not changes and [str(e[0]) for e in old] != [str(e[0]) for e in new]:
        changes.append("the files' order changed")
    return changes


def files_changes(saved: Any, now: dict[str, Any]) -> list[str]:
    """What changed between two :func:`files_fingerprint` results (``[]``: the same files).

    Checksums count only when both sides have them (an index added or removed since is no change).

    Example::

        files_changes(state["files"], files_fingerprint(list_files("data/")))
        # ['renamed or swapped: part-1.jsonl now has what part-2.jsonl had, ...']
    """
    if not isinstance(saved, dict):
        return ["the state has no record of its data files"]
    same = saved.get("names") == now["names"] and saved.get("sizes") == now["sizes"]
    both = (  # checksums of the same kind on both sides (index.json's, or sampled bytes)
        saved.get("checksums") is not None and now["checksums"] is not None
        and saved.get("checksum_kind", "index") == now.get("checksum_kind", "index")
    )
    if same and (not both or saved["checksums"] == now["checksums"]):
        return []
    old, new = saved.get("list"), now.get("list")
    if isinstance(old, list) and isinstance(new, list):
        if not both:  # compare what both sides know
            old, new = [[e[0], e[1], None] for e in old], [[e[0], e[1], None] for e in new]
        changes = _listed_changes(old, new)
        if changes:
            return changes
    changes = []
    if saved.get("count") != now["count"]:
        changes.append(f"{saved.get('count')} files then, {now['count']} now (files added or removed)")
    elif saved.get("names") != now["names"]:
        changes.append("file names or their order changed (renamed, added or removed files)")
    if saved.get("sizes") != now["sizes"] and saved.get("count") == now["count"]:
        changes.append("file sizes changed")
    if both and saved["checksums"] != now["checksums"]:
        changes.append(f"file contents changed ({now['checksum_kind']} checksums)")
    return changes or ["the files differ"]
