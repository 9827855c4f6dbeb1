"""Finding the chunk files a ``data_dir`` names: a directory, a glob, a file, a URL, or a list of those.

Local paths need nothing beyond the standard library. ``scheme://`` URLs (``s3://``, ``gs://``,
``memory://``, ``file://``, ``http(s)://``...) are listed through :mod:`fsspec`, imported only when
a URL is given (see :mod:`pyloader_core.remote`).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable

from pyloader_core.errors import NoFilesError

__all__ = ["INDEX_NAME", "RESERVED_NAMES", "is_data_file_name", "list_files"]

logger = logging.getLogger(__name__)

#: The index file PyLoader's tools write beside the chunks (see :mod:`pyloader_core.index`).
INDEX_NAME = "index.json"

#: Names PyLoader's own tools write beside the chunks; never read as data.
RESERVED_NAMES = frozenset({INDEX_NAME})

_GLOB_CHARS = frozenset("*?[")


def is_data_file_name(name: str) -> bool:
    """Hidden (``.x``) and underscore (``_SUCCESS``, ``_index``) names are metadata, not data.

    Example::

        is_data_file_name("part-00000.jsonl")  # True
        is_data_file_name("index.json")        # False
    """
    return not (name.startswith((".", "_")) or name in RESERVED_NAMES)


def _walk(directory: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_data_file_name(f))
    return found


def _is_data_path(rel: str) -> bool:
    """A path relative to a listed root is data when no component is hidden/``_`` and the name isn't reserved."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return False
    return all(not p.startswith((".", "_")) for p in parts[:-1]) and is_data_file_name(parts[-1])


def _expand_url(url: str) -> list[str]:
    from pyloader_core import remote

    if remote.is_http(url):
        return remote.list_http(url)
    fs, path = remote.url_to_fs(url)
    if fs.isdir(path):
        root = path.rstrip("/")
        found = []
        for f in sorted(fs.find(path)):
            if _is_data_path(f.removeprefix(root)):
                found.append(fs.unstrip_protocol(f))
        return found
    if fs.isfile(path):
        return [url]
    if _GLOB_CHARS & set(path):
        out = []
        for m in sorted(fs.glob(path)):
            if _is_data_path(m.rsplit("/", 1)[-1]) and fs.isfile(m):
                out.append(fs.unstrip_protocol(m))
        return out
    raise NoFilesError(f"data path {url!r} does not exist")


def _expand(entry: str | os.PathLike[str]) -> list[str]:
    path = os.fspath(entry)
    if "://" in path:
        return _expand_url(path)
    if os.path.isdir(path):
        return _walk(path)
    if os.path.isfile(path):
        return [path]
    if _GLOB_CHARS & set(path):
        matches = sorted(glob.glob(path, recursive=True))
        return [m for m in matches if os.path.isfile(m) and is_data_file_name(os.path.basename(m))]
    raise NoFilesError(f"data path {path!r} does not exist")


def list_files(data_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The data files ``data_dir`` names, in a stable order.

    A directory is walked recursively (sorted; hidden and ``_``-prefixed entries and ``index.json``
    skipped); a glob is expanded (sorted, ``**`` allowed); a list keeps its order, each entry
    expanded the same way. Raises :class:`NoFilesError` when nothing is found.

    ``scheme://`` URLs are listed through fsspec the same way (directories walked, globs expanded,
    metadata skipped) and come back as full URLs. An ``http(s)://`` URL is one file, unless it
    ends with ``/``: then the links of the server's directory page are listed (one level).

    Example::

        list_files("data/")              # every chunk under data/, sorted
        list_files("data/*.jsonl")       # a glob
        list_files(["a.jsonl", "b.jsonl"])
        list_files("s3://bucket/dataset/")
    """
    if isinstance(data_dir, (str, os.PathLike)):
        entries: list[str | os.PathLike[str]] = [data_dir]
    else:
        entries = list(data_dir)
    files: list[str] = []
    for entry in entries:
        files.extend(_expand(entry))
    if not files:
        raise NoFilesError(f"no data files found in {data_dir!r} (hidden, '_'-prefixed and index files are skipped)")
    return files
