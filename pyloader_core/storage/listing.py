"""Finding the chunk files a ``data_dir`` names: a directory, a glob, a file, a URL, or a list of those.

Local paths need nothing beyond the standard library. ``scheme://`` URLs (``s3://``, ``gs://``,
``memory://``, ``file://``, ``http(s)://``...) are listed through :mod:`fsspec`, imported only when
a URL is given; an ``http(s)://`` directory (ending in ``/``) is listed by fsspec's HTTP file
system from the links of the server's page.

Example::

    list_files("data/")              # every chunk under data/, sorted
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import stat
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from pyloader_core.errors import ConfigError, NoFilesError
from pyloader_core.storage.access import exists
from pyloader_core.storage.fs import PROCESS_LOCAL_PROTOCOLS, url_to_fs, use_storage_options
from pyloader_core.storage.paths import GLOB_CHARS, is_data_file_name, is_data_path, is_http

__all__ = ["check_process_readable", "list_files"]

logger = logging.getLogger(__name__)

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


class _Seen:
    """The regular files listed so far, by ``(st_dev, st_ino)``: each one is listed once.

    :meth:`add` stats a path (following symlinks) and says whether to list it: not when it is not a
    regular file (a FIFO, socket or device: opening one can block forever; a warning names it),
    nor when the same file was listed already under another name (a symlink, a hard link, a
    directory reached twice), nor when it lies inside a symlink loop. :meth:`report` logs one
    warning for the names left out as duplicates.
    """

    def __init__(self) -> None:
        self.files: dict[tuple[int, int], str] = {}
        self.special: set[tuple[int, int]] = set()
        self.dupes: list[tuple[str, str]] = []
        self.loops = 0

    def add(self, path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.loops += 1
                return False
            return True  # a dangling link, a vanished or unreadable file: the read names the problem
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode):
            if not stat.S_ISDIR(st.st_mode) and key not in self.special:
                self.special.add(key)
                logger.warning("skipping %s: it is %s, not a regular file (never opened)", path, _kind(st.st_mode))
            return False
        first = self.files.setdefault(key, path)
        if first != path:
            logger.debug("skipping %s: the same file as %s", path, first)
            self.dupes.append((path, first))
            return False
        return True

    def report(self, where: str) -> None:
        if self.dupes:
            path, first = self.dupes[0]
            logger.warning(
                "%s: left out %d name(s) of files listed already (symlinks, hard links or a symlink loop), "
                "e.g. %s (the same file as %s)",
                where,
                len(self.dupes),
                path,
                first,
            )
        if self.loops:
            logger.warning("%s: left out %d path(s) inside a symlink loop", where, self.loops)


def _walk(directory: str, seen: _Seen) -> list[str]:
    """The data files under ``directory``, following symlinks but never into a directory twice."""
    found: list[str] = []
    visited: dict[tuple[int, int], str] = {}
    try:
        st = os.stat(directory)
        visited[(st.st_dev, st.st_ino)] = directory
    except OSError:
        pass
    for root, dirs, files in os.walk(directory, followlinks=True):
        keep = []
        for d in sorted(dirs):
            if d.startswith((".", "_")):
                continue
            sub = os.path.join(root, d)
            try:
                st = os.stat(sub)
            except OSError:
                continue  # os.walk could not enter it either
            first = visited.setdefault((st.st_dev, st.st_ino), sub)
            if first != sub:
                logger.warning("not descending into %s: it is %s again (a symlink loop or alias)", sub, first)
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            path = os.path.join(root, f)
            if is_data_file_name(f) and seen.add(path):
                found.append(path)
    seen.report(directory)
    return found


def _list_http(url: str) -> list[str]:
    """An ``http(s)://`` URL: itself, or (ending in ``/``) the files its directory page links to, one level."""
    if not url.endswith("/"):
        if not exists(url):
            raise NoFilesError(f"data path {url!r} does not exist")
        return [url]
    fs, _ = url_to_fs(url)
    try:
        links = list(fs.ls(url, detail=False))
    except FileNotFoundError:
        raise NoFilesError(f"data path {url!r} does not exist") from None
    out = set()
    for link in links:
        if not link.startswith(url) or link.endswith("/"):
            continue
        name = urllib.parse.unquote(link[len(url) :])
        if name and "/" not in name and is_data_file_name(name):
            out.add(link)
    return sorted(out)


def _expand_url(url: str) -> list[str]:
    if is_http(url):
        return _list_http(url)
    fs, path = url_to_fs(url)
    if fs.isdir(path):
        root = path.rstrip("/")
        return [fs.unstrip_protocol(f) for f in sorted(fs.find(path)) if is_data_path(f.removeprefix(root))]
    if fs.isfile(path):
        return [url]
    if GLOB_CHARS & set(path):
        out = []
        for m in sorted(fs.glob(path)):
            if is_data_path(m.rsplit("/", 1)[-1]) and fs.isfile(m):
                out.append(fs.unstrip_protocol(m))
        return out
    raise NoFilesError(f"data path {url!r} does not exist")


def _expand(entry: str | os.PathLike[str]) -> list[str]:
    path = os.fspath(entry)
    if "://" in path:
        return _expand_url(path)
    seen = _Seen()
    if os.path.isdir(path):
        return _walk(path, seen)
    if os.path.isfile(path):
        return [path]
    if os.path.exists(path):
        raise NoFilesError(
            f"data path {path!r} is {_kind(os.stat(path).st_mode)}: PyLoader reads regular files only "
            "(it never opens FIFOs, sockets or devices)"
        )
    if GLOB_CHARS & set(path):
        matches = sorted(glob.glob(path, recursive=True))
        found = [m for m in matches if is_data_file_name(os.path.basename(m)) and seen.add(m)]
        seen.report(path)
        return found
    raise NoFilesError(f"data path {path!r} does not exist")


def list_files(
    data_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """The data files ``data_dir`` names, in a stable order.

    A directory is walked recursively (sorted; hidden and ``_``-prefixed entries and ``index.json``
    skipped); a glob is expanded (sorted, ``**`` allowed); a list keeps its order, each entry
    expanded the same way. Raises :class:`NoFilesError` when nothing is found.

    Symlinks are followed, but a directory or glob lists each regular file once: a directory
    reached again (a symlink loop, an alias) is not walked again, and a file seen already under
    another name (by ``st_dev``/``st_ino``) is left out, with a warning. FIFOs, sockets and devices
    are never opened: named by a walk or glob they are left out with a warning naming them; named
    directly they are a :class:`NoFilesError`. (Entries of a list are expanded independently: a
    file named by two entries is listed twice.)

    ``scheme://`` URLs are listed through fsspec the same way (directories walked, globs expanded,
    metadata skipped) and come back as full URLs. An ``http(s)://`` URL is one file, unless it
    ends with ``/``: then the links of the server's directory page are listed (one level).

    ``storage_options`` (fsspec's keyword arguments: credentials, ``client_kwargs``...; flat or per
    protocol) are registered for the URL entries of ``data_dir`` first (see
    :func:`~.fs.use_storage_options`): the listing and every later access under them use them.

    Example::

        list_files("data/")              # every chunk under data/, sorted
        list_files("data/*.jsonl")       # a glob
        list_files(["a.jsonl", "b.jsonl"])
        list_files("s3://bucket/dataset/", {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}})
    """
    if isinstance(data_dir, (str, os.PathLike)):
        entries: list[str | os.PathLike[str]] = [data_dir]
    else:
        entries = list(data_dir)
    if storage_options is not None:
        use_storage_options([os.fspath(e) for e in entries], storage_options)
    files: list[str] = []
    for entry in entries:
        files.extend(_expand(entry))
    if not files:
        raise NoFilesError(f"no data files found in {data_dir!r} (hidden, '_'-prefixed and index files are skipped)")
    return files


def check_process_readable(files: Iterable[str]) -> None:
    """Raise :class:`ConfigError` when a file lives in one process's memory (``memory://``).

    Worker processes cannot read it: a spawned worker's in-memory file system is empty, a forked
    one's is a copy taken when it started (stale from then on), so the error says to use thread
    workers or a file system every process can reach.

    Example::

        check_process_readable(["memory://data/a.jsonl"])  # ConfigError
    """
    for path in files:
        head, sep, _ = path.rsplit("::", 1)[-1].partition("://")
        if sep and head in PROCESS_LOCAL_PROTOCOLS:
            raise ConfigError(
                f"{path!r} is on fsspec's {head}:// file system, which lives in this process's memory: worker "
                "processes cannot read it (a spawned one sees an empty file system, a forked one a copy taken "
                "when it started). Use worker_type='thread' (or num_workers=0), or put the data on a file "
                "system every process reaches (local disk, file://, s3://...)"
            )
