"""Checking remote reads as they happen: the announced length, and the ``index.json`` entry.

Every remote file read from start to end is checked in the same pass: its length against what the
server or file system announced (an HTTP ``Content-Length``, an fsspec file's size), and, where an
``index.json`` in its directory or a parent lists it, its length and SHA-256 against that entry. A
body that ends early is an :class:`IncompleteReadError` naming the URL; bytes that differ from the
index are a :class:`~pyloader_core.errors.ChecksumError` naming it. ``PYLOADER_VERIFY_CHECKSUMS=0``
turns the index check off (lengths are always checked).

The index entry comes from a lookup that :mod:`pyloader_core.index` registers on import
(:func:`set_index_lookup`), so storage never imports the index.

Example::

    with unverified():
        digest = file_sha256("s3://bucket/data/part-0.jsonl")
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from pyloader_core.errors import ChecksumError, PyLoaderError
from pyloader_core.storage.paths import is_data_file_name

__all__ = [
    "COPY_CHUNK",
    "CheckedRaw",
    "IncompleteReadError",
    "VERIFY_ENV",
    "checked",
    "is_unverified",
    "set_index_lookup",
    "sha256_hasher",
    "unverified",
]

logger = logging.getLogger(__name__)

#: ``"0"`` turns off checking remote reads against ``index.json`` (lengths are always checked).
VERIFY_ENV = "PYLOADER_VERIFY_CHECKSUMS"
COPY_CHUNK = 1 << 20

_UNVERIFIED: contextvars.ContextVar[bool] = contextvars.ContextVar("pyloader_unverified", default=False)
_LOOKUP: list[Callable[..., Any]] = []


class IncompleteReadError(PyLoaderError, OSError):
    """A remote file's body ended before (or ran past) the length announced for it.

    ``path`` is the URL. Example::

        try:
            data = read_bytes("http://host/data/part-0.jsonl")
        except IncompleteReadError as exc:
            logger.error("%s", exc)  # "http://...: body truncated: 505 of 1000 bytes (Content-Length)"
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def sha256_hasher() -> Any:
    """A new SHA-256 hash object: the one digest PyLoader records and checks."""
    return hashlib.sha256()


def set_index_lookup(lookup: Callable[..., Any]) -> None:
    """Register ``lookup(url, fresh=False) -> entry | None`` (the index's :func:`listed_entry`)."""
    _LOOKUP[:] = [lookup]


@contextlib.contextmanager
def unverified() -> Iterator[None]:
    """Read remote files without checking them against ``index.json``, and bypassing the cache.

    For code that computes what the index should say (``build_index``, ``verify_checksums``):
    the files may legitimately differ from an old index. Lengths are still checked, and nothing
    read this way enters the cache (so an unchecked copy is never served later).

    Example::

        with unverified():
            digest = file_sha256("s3://bucket/data/part-0.jsonl")
    """
    token = _UNVERIFIED.set(True)
    try:
        yield
    finally:
        _UNVERIFIED.reset(token)


def is_unverified() -> bool:
    """Whether the caller is inside :func:`unverified`."""
    return _UNVERIFIED.get()


def _verifying() -> bool:
    return not _UNVERIFIED.get() and os.environ.get(VERIFY_ENV, "").strip() != "0"


def _listed(url: str, fresh: bool = False) -> Any:
    """The ``index.json`` entry that lists ``url`` (a ChunkEntry), or ``None``; never raises."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not _verifying() or not is_data_file_name(name) or not _LOOKUP:
        return None  # index.json itself (and other metadata) is not checked against an index
    try:
        return _LOOKUP[0](url, fresh=fresh)
    except (OSError, ImportError, ValueError) as exc:  # the index cannot be had: check lengths only
        logger.debug("cannot look up %s in an index.json: %s", url, exc)
        return None


def _announced_size(f: Any) -> tuple[int | None, str]:
    """The length the server or file system announced for the stream ``f``, and where it came from."""
    size = getattr(f, "size", None)  # fsspec's files (HTTPFile: the Content-Length of its HEAD)
    if isinstance(size, int):
        return size, "the announced size"
    # fsspec's HTTPStreamFile has no size; its aiohttp response carries the Content-Length
    length = getattr(getattr(f, "r", None), "content_length", None)
    return (length, "Content-Length") if isinstance(length, int) else (None, "")


def _truncation(exc: BaseException) -> bool:
    """Whether ``exc`` is an HTTP client's "the body was cut short" error."""
    for module, name in (("http.client", "IncompleteRead"), ("aiohttp", "ClientPayloadError")):
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


class CheckedRaw(io.RawIOBase):
    """Passes a remote stream through, counting and hashing the bytes; checks them at the end.

    At the end of the stream the count must equal the announced length (``size``) and, when an
    index entry lists the file, the entry's ``bytes``; its SHA-256 must equal the entry's
    ``sha256``. One pass: nothing is read twice.

    Example::

        stream = io.BufferedReader(CheckedRaw(fh, url, entry))
        data = stream.read()  # raises IncompleteReadError or ChecksumError at the end
    """

    def __init__(self, fh: Any, url: str, entry: Any) -> None:
        super().__init__()
        self._fh = fh
        self._url = url
        self._size, self._source = _announced_size(fh)
        self._entry = entry
        self._sha = sha256_hasher() if entry is not None and entry.sha256 else None
        self._count = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._checked:
            return 0
        with self._translated():
            readinto = getattr(self._fh, "readinto", None)
            if readinto is not None:
                n = readinto(buffer) or 0
            else:
                data = self._fh.read(len(buffer))
                n = len(data)
                buffer[:n] = data
        if n == 0:
            self._check()
            return 0
        self._take(memoryview(buffer)[:n])
        return n

    def readall(self) -> bytes:
        """The rest of the stream in one read (one buffer, as the stream itself would read it)."""
        if self._checked:
            return b""
        with self._translated():
            data = self._fh.read()
        if data:
            self._take(data)
        self._check()
        return bytes(data)

    def _take(self, data: Any) -> None:
        self._count += len(data)
        if self._sha is not None:
            self._sha.update(data)
        if self._size is not None and self._count > self._size:
            raise IncompleteReadError(
                f"{self._url}: body longer than announced: over {self._size} bytes ({self._source})", self._url
            )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """An HTTP body cut short (the client's own error) as an IncompleteReadError naming the URL."""
        try:
            yield
        except Exception as exc:
            if _truncation(exc):
                got = len(getattr(exc, "partial", b"")) + self._count
                of = f" of {self._size} bytes ({self._source})" if self._size is not None else " bytes"
                raise IncompleteReadError(f"{self._url}: body truncated: {got}{of}", self._url) from exc
            raise

    def _check(self) -> None:
        self._checked = True
        if self._size is not None and self._count != self._size:
            raise IncompleteReadError(
                f"{self._url}: body truncated: {self._count} of {self._size} bytes ({self._source})", self._url
            )
        if self._entry is None:
            return
        digest = self._sha.hexdigest() if self._sha is not None else ""
        if self._matches(self._entry, digest):
            return
        # the index may have been rewritten since this process read it: look again before refusing
        entry = _listed(self._url, fresh=True) or self._entry
        if self._matches(entry, digest):
            return
        what = (
            f"{self._count} bytes, index.json lists {entry.bytes}"
            if self._count != entry.bytes
            else "its SHA-256 differs from the one index.json lists"
        )
        raise ChecksumError(
            f"{what}: the file is corrupt, or changed after the index was written "
            "(rebuild it with `pyloader index DIR` if the change is intended)",
            self._url,
        )

    def _matches(self, entry: Any, digest: str) -> bool:
        return bool(self._count == entry.bytes and (not entry.sha256 or digest == entry.sha256))

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def checked(fh: Any, url: str) -> BinaryIO:
    """``fh`` read through a :class:`CheckedRaw`, buffered (C line splitting)."""
    return io.BufferedReader(CheckedRaw(fh, url, _listed(url)), buffer_size=COPY_CHUNK)  # type: ignore[return-value]
