"""Opening a URL straight from its file system (no cache), checked while it is read.

Example::

    with open_direct("memory://data/part-0.jsonl", seekable=False) as f:
        head = f.read(100)
"""

from __future__ import annotations

from typing import BinaryIO

from pyloader_core.storage.checks import checked
from pyloader_core.storage.fs import url_to_fs
from pyloader_core.storage.paths import is_http

__all__ = ["open_direct", "read_direct"]


def open_direct(path: str, seekable: bool) -> BinaryIO:
    """A URL opened for reading through fsspec, not through the cache.

    Sequential streams are checked while read (see :mod:`pyloader_core.storage.checks`);
    random-access files (``seekable=True``) are not.
    """
    fs, p = url_to_fs(path)
    if seekable:
        return fs.open(p, "rb")  # type: ignore[no-any-return]
    if is_http(path):
        f = fs.open(p, "rb", block_size=0)  # a sequential stream: no Range requests needed
    else:
        f = fs.open(p, "rb")
    return checked(f, path)  # a C BufferedReader also splits lines faster than fsspec's files


def read_direct(path: str) -> bytes:
    """The whole (checked) content of a URL, not through the cache."""
    with open_direct(path, seekable=False) as f:
        return f.read()
