"""Path and URL helpers: what is a URL, what is data, joining and relating paths (no I/O but fsspec's path rules).

Example::

    from pyloader_core.storage.paths import is_data_file_name, join, relative_name

    join("s3://b/data", "sub/part-0.jsonl")           # 's3://b/data/sub/part-0.jsonl'
    relative_name("data/sub/a.jsonl", "data")          # 'sub/a.jsonl'
    is_data_file_name("index.json")                    # False
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pyloader_core.storage.fs import url_to_fs

__all__ = [
    "GLOB_CHARS",
    "INDEX_NAME",
    "RESERVED_NAMES",
    "candidate_roots",
    "common_dir",
    "dirname",
    "is_data_file_name",
    "is_data_path",
    "is_http",
    "is_url",
    "join",
    "norm_url",
    "relative_name",
]

#: The index file PyLoader's tools write beside the chunks (see :mod:`pyloader_core.index`).
INDEX_NAME = "index.json"

#: Names PyLoader's own tools write beside the chunks; never read as data.
RESERVED_NAMES = frozenset({INDEX_NAME})

#: Characters that make a path a glob pattern.
GLOB_CHARS = frozenset("*?[")


def is_url(path: Any) -> bool:
    """``True`` for ``scheme://...`` strings (``s3://b/k``, ``memory://x``, ``file:///tmp/x``).

    Example::

        is_url("s3://bucket/a.jsonl")  # True
        is_url("data/a.jsonl")         # False
    """
    return isinstance(path, str) and "://" in path


def is_http(path: Any) -> bool:
    """``True`` for ``http://`` and ``https://`` URLs.

    Example::

        is_http("https://example.org/a.jsonl")  # True
    """
    return isinstance(path, str) and path[:8].lower().startswith(("http://", "https://"))


def is_data_file_name(name: str) -> bool:
    """Hidden (``.x``) and underscore (``_SUCCESS``, ``_index``) names are metadata, not data.

    Example::

        is_data_file_name("part-00000.jsonl")  # True
        is_data_file_name("index.json")        # False
    """
    return not (name.startswith((".", "_")) or name in RESERVED_NAMES)


def is_data_path(rel: str) -> bool:
    """A path relative to a listed root is data when no component is hidden/``_`` and the name isn't reserved."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return False
    return all(not p.startswith((".", "_")) for p in parts[:-1]) and is_data_file_name(parts[-1])


def join(root: str, name: str) -> str:
    """``root`` and a ``/``-separated relative ``name`` joined (URL or local path).

    Example::

        join("s3://b/data", "sub/part-0.jsonl")  # 's3://b/data/sub/part-0.jsonl'
    """
    if is_url(root):
        return root.rstrip("/") + "/" + name
    return os.path.join(root, *name.split("/"))


def norm_url(url: str) -> str:
    """A URL with its file-system path normalised (``memory://a`` and ``memory:///a`` agree)."""
    if is_http(url):
        return url.rstrip("/")
    fs, path = url_to_fs(url)
    return str(fs.unstrip_protocol(path.rstrip("/")))


def relative_name(path: str, root: str) -> str | None:
    """``path`` relative to ``root``, ``/``-separated; ``None`` when it is not under ``root``.

    Example::

        relative_name("data/sub/a.jsonl", "data")  # 'sub/a.jsonl'
    """
    if is_url(path) != is_url(root):
        return None
    if is_url(path):
        p, r = norm_url(path), norm_url(root)
        return p[len(r) + 1 :] if p.startswith(r + "/") else None
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")


def dirname(path: str) -> str:
    """The directory of a path (absolute) or of a URL."""
    if is_url(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def candidate_roots(path: str, top: str) -> list[str]:
    """``path``'s directory and its parents, up to and including ``top``."""
    out = []
    d = dirname(path)
    for _ in range(64):  # directory depth; a guard against odd URLs
        out.append(d)
        if is_url(d):
            rest = d.split("://", 1)[1].strip("/")
            if norm_url(d) == norm_url(top) or "/" not in rest:
                break
        elif os.path.abspath(d) == os.path.abspath(top) or os.path.dirname(d) == d:
            break
        d = dirname(d)
    return out


def common_dir(files: Sequence[str]) -> str:
    """The deepest directory that holds every one of ``files`` (URLs or local paths)."""
    if all(is_url(f) for f in files):
        dirs = [dirname(f) for f in files]
        common = dirs[0]
        for d in dirs[1:]:
            while not (d == common or d.startswith(common.rstrip("/") + "/")):
                if "/" not in common.split("://", 1)[1]:
                    break
                common = common.rsplit("/", 1)[0]
        return common
    return os.path.commonpath([dirname(f) for f in files if not is_url(f)] or [os.getcwd()])
