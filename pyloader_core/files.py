"""Finding the chunk files a ``data_dir`` names: a directory, a glob, a file, or a list of those."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from pyloader_core.errors import NoFilesError

__all__ = ["RESERVED_NAMES", "is_data_file_name", "list_files"]

#: Names PyLoader's own tools write beside the chunks; never read as data.
RESERVED_NAMES = frozenset({"index.json"})

_GLOB_CHARS = frozenset("*?[")


def is_data_file_name(name: str) -> bool:
    """Hidden (``.x``) and underscore (``_SUCCESS``, ``_index``) names are metadata, not data."""
    return not (name.startswith((".", "_")) or name in RESERVED_NAMES)


def _walk(directory: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_data_file_name(f))
    return found


def _expand(entry: str | os.PathLike[str]) -> list[str]:
    path = os.fspath(entry)
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

    Example::

        list_files("data/")              # every chunk under data/, sorted
        list_files("data/*.jsonl")       # a glob
        list_files(["a.jsonl", "b.jsonl"])
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
