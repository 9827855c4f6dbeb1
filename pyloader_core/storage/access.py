"""Byte I/O on local paths and ``scheme://`` URLs (through fsspec, and the local cache for reads).

A path is a URL when it contains ``://``; local paths never import fsspec.

Example::

    with open_binary_any("memory://data/part-00000.jsonl") as f:
        first = f.readline()
    write_bytes("data/index.json", b"{}")  # atomic: a temporary file, then a rename
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from typing import BinaryIO

from pyloader_core.storage.cache import cached_path
from pyloader_core.storage.checks import COPY_CHUNK, sha256_hasher, unverified
from pyloader_core.storage.direct import open_direct, read_direct
from pyloader_core.storage.fs import info, url_to_fs
from pyloader_core.storage.paths import is_http, is_url

__all__ = ["exists", "file_sha256", "file_size", "materialize", "open_binary_any", "read_bytes", "write_bytes"]

logger = logging.getLogger(__name__)


def exists(path: str) -> bool:
    """Whether ``path`` (local or URL) exists.

    Example::

        exists("memory://data/a.jsonl")
    """
    if not is_url(path):
        return os.path.exists(path)
    fs, p = url_to_fs(path)
    return bool(fs.exists(p))


def file_size(path: str) -> int:
    """The size of ``path`` in bytes (a local file or a URL).

    Raises ``OSError`` when it cannot be told (missing file, server without ``Content-Length``).

    Example::

        file_size("data/part-00000.jsonl")
        file_size("memory://data/part-00000.jsonl")
    """
    if not is_url(path):
        return os.path.getsize(path)
    size, _ = info(path)
    if size is None:
        raise OSError(f"{path}: the server does not report the file's size")
    return size


def open_binary_any(path: str, *, seekable: bool = False, use_cache: bool = True) -> BinaryIO:
    """Open a local file or a URL for reading bytes (no decompression).

    Remote files come from the local cache when one is configured (downloaded there on first use).
    ``seekable=True`` asks for random access (Parquet footers, zip directories).
    ``use_cache=False`` bypasses the cache (small metadata files such as ``index.json``).

    Example::

        with open_binary_any("memory://data/part-00000.jsonl") as f:
            first = f.readline()
    """
    if not is_url(path):
        return open(path, "rb")
    local = cached_path(path) if use_cache else None
    if local is not None:
        try:
            return open(local, "rb")
        except FileNotFoundError:  # evicted by another process in between: read it directly
            logger.debug("cached copy of %s vanished; reading it directly", path)
    return open_direct(path, seekable)


def read_bytes(path: str, *, use_cache: bool = True) -> bytes:
    """The whole content of a local file or URL (``use_cache=False``: never from or into the cache).

    Example::

        data = read_bytes("memory://data/index.json", use_cache=False)
    """
    with open_binary_any(path, use_cache=use_cache) as f:
        return f.read()


def materialize(path: str) -> str | io.BytesIO:
    """Something ``numpy``/``zipfile`` can read with random access: a local path, or bytes in memory.

    Local paths are returned as they are; a URL gives its cached copy's path when a cache is
    configured, and its whole content in a :class:`io.BytesIO` otherwise.

    Example::

        src = materialize("memory://data/part-00000.npy")
        np.load(src)
    """
    if not is_url(path):
        return os.fspath(path)
    local = cached_path(path)
    if local is not None and os.path.exists(local):
        return local
    return io.BytesIO(read_direct(path))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to a local path (atomically: temporary file + rename) or a URL.

    Example::

        write_bytes("memory://data/index.json", b"{}")
    """
    if not is_url(path):
        directory = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    if is_http(path):
        raise OSError(f"{path}: cannot write over HTTP")
    fs, p = url_to_fs(path)
    fs.pipe_file(p, data)


def file_sha256(path: str) -> str:
    """The SHA-256 of ``path``'s bytes as stored (compressed files are not decompressed), streamed.

    The one SHA-256 helper: the index, its verification and ``split`` use it.

    Example::

        file_sha256("data/part-00000.jsonl.gz")  # '3a7bd3e2...'
    """
    h = sha256_hasher()
    with unverified(), open_binary_any(path) as f:  # the digest is what is checked
        while block := f.read(COPY_CHUNK):
            h.update(block)
    return str(h.hexdigest())
