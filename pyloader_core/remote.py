"""Reading chunk files from local paths and ``scheme://`` URLs, with an optional local cache.

A path is a URL when it contains ``://``. URLs are opened through :mod:`fsspec` (``s3://``,
``gs://``, ``memory://``, ``file://``, ...; install ``pyloader[remote]``). ``http(s)://`` URLs go
through fsspec when its HTTP support (``aiohttp``) is installed, and through the standard library
(``urllib``) otherwise, so plain HTTP works with no extra package at all. Local paths never import
fsspec.

**Cache.** :func:`configure_cache` (or the ``PYLOADER_CACHE_DIR`` / ``PYLOADER_CACHE_BYTES``
environment variables, which it sets so that spawned worker processes inherit it) keeps a local
copy of every remote file read, up to a total byte limit. The least recently used copies are
deleted to make room; a file larger than the limit is streamed, never cached. A copy is reused
while the remote file's size (and ETag or modification time, where the file system reports one)
is unchanged. Copies are written to a temporary name and renamed, so concurrent readers never see
a partial file; under concurrency the limit can be overshot briefly by the files being downloaded.

**Checks.** Every remote file read from start to end is checked as it is read, in the same pass:
its length against what the server or file system announced (an HTTP ``Content-Length``, an
fsspec file's size), and, where an ``index.json`` in its directory or a parent lists it, its
length and SHA-256 against that entry (see :mod:`pyloader_core.index`). A body that ends early is an
:class:`IncompleteReadError` naming the URL; bytes that differ from the index are a
:class:`~pyloader_core.index.ChecksumError` naming it. Downloads into the cache are checked the same
way, so a copy that fails never enters the cache. Random-access reads (Parquet footers, ``.npz``
directories through fsspec) are not hashed. ``PYLOADER_VERIFY_CHECKSUMS=0`` turns the index check
off (lengths are always checked).

Example::

    from pyloader_core import remote

    remote.configure_cache("/tmp/pyloader-cache", max_bytes=20 * 2**30)
    with remote.open_binary_any("s3://bucket/data/part-00000.jsonl") as f:
        head = f.read(100)
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import logging
import os
import re
import shutil
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

from pyloader_core.errors import ConfigError, NoFilesError, PyLoaderError
from pyloader_core.files import is_data_file_name
from pyloader_core.sizes import parse_size

__all__ = [
    "CACHE_BYTES_ENV",
    "CACHE_DIR_ENV",
    "DEFAULT_CACHE_BYTES",
    "HTTP_BACKEND_ENV",
    "VERIFY_ENV",
    "IncompleteReadError",
    "cache_settings",
    "cached_path",
    "configure_cache",
    "exists",
    "file_size",
    "is_http",
    "is_url",
    "join",
    "list_http",
    "materialize",
    "open_binary_any",
    "read_bytes",
    "unverified",
    "url_to_fs",
    "write_bytes",
]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "PYLOADER_CACHE_DIR"
CACHE_BYTES_ENV = "PYLOADER_CACHE_BYTES"
#: ``"fsspec"`` or ``"urllib"`` forces the HTTP backend (default: fsspec when aiohttp is importable).
HTTP_BACKEND_ENV = "PYLOADER_HTTP_BACKEND"
#: ``"0"`` turns off checking remote reads against ``index.json`` (lengths are always checked).
VERIFY_ENV = "PYLOADER_VERIFY_CHECKSUMS"
#: The cache's size limit when only its directory is given.
DEFAULT_CACHE_BYTES = 10 << 30

_COPY_CHUNK = 1 << 20
_HTTP_TIMEOUT_S = 60.0


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


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"reading URLs needs fsspec, which could not be imported ({exc}): pip install pyloader[remote]"
        ) from exc
    return fsspec


def _http_via_fsspec() -> bool:
    choice = os.environ.get(HTTP_BACKEND_ENV, "").strip().lower()
    if choice == "urllib":
        return False
    try:
        import aiohttp  # noqa: F401 - fsspec's HTTP file system needs it
        import fsspec  # noqa: F401
    except ImportError:
        if choice == "fsspec":
            raise ImportError("HTTP through fsspec needs fsspec and aiohttp: pip install 'fsspec[http]'") from None
        return False
    return True


def url_to_fs(url: str) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url`` from :func:`fsspec.core.url_to_fs`.

    Raises ``ImportError`` (suggesting ``pip install pyloader[remote]``) without fsspec.

    Example::

        fs, path = url_to_fs("memory://data/a.jsonl")   # (MemoryFileSystem, '/data/a.jsonl')
    """
    fsspec = _fsspec()
    try:
        return fsspec.core.url_to_fs(url)
    except ValueError as exc:  # unknown protocol
        raise ConfigError(f"cannot open {url!r}: {exc}") from None
    except ImportError as exc:  # a known protocol whose implementation is not installed (s3fs, gcsfs)
        raise ImportError(f"cannot open {url!r}: {exc}") from exc


# -- plain HTTP through the standard library ----------------------------------------------------


def _http_request(url: str, method: str = "GET") -> Any:
    import urllib.error  # imported here: urllib.request pulls in ssl, which local-only jobs never need
    import urllib.request

    req = urllib.request.Request(url, method=method, headers={"User-Agent": "pyloader"})
    try:
        return urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise FileNotFoundError(f"{url}: not found (HTTP 404)") from None
        raise OSError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from None


def _http_head(url: str) -> dict[str, str]:
    with _http_request(url, "HEAD") as resp:
        return {k.lower(): v for k, v in resp.headers.items()}


class _LinkParser:
    """``href`` targets of a server's HTML directory page."""

    _HREF = re.compile(rb"""href\s*=\s*["']([^"'#?]+)["']""", re.IGNORECASE)

    @classmethod
    def links(cls, html: bytes) -> list[str]:
        return [m.decode("utf-8", "replace") for m in cls._HREF.findall(html)]


def list_http(url: str) -> list[str]:
    """The files an ``http(s)://`` URL names: itself, or (ending in ``/``) its directory page's links.

    A directory page is listed one level deep; sub-directories, hidden and ``_`` names, query
    links and ``index.json`` are left out. Raises :class:`NoFilesError` when the URL is not found.

    Example::

        list_http("http://127.0.0.1:8000/data/")  # ['http://127.0.0.1:8000/data/part-00000.jsonl', ...]
    """
    if not url.endswith("/"):
        if not exists(url):
            raise NoFilesError(f"data path {url!r} does not exist")
        return [url]
    try:
        if _http_via_fsspec():
            fs, _ = url_to_fs(url)
            links = list(fs.ls(url, detail=False))
        else:
            with _http_request(url) as resp:
                links = [urllib.parse.urljoin(url, h) for h in _LinkParser.links(resp.read())]
    except FileNotFoundError:
        raise NoFilesError(f"data path {url!r} does not exist") from None
    prefix = url
    out = set()
    for link in links:
        if not link.startswith(prefix) or link.endswith("/"):
            continue
        name = urllib.parse.unquote(link[len(prefix) :])
        if name and "/" not in name and is_data_file_name(name):
            out.add(link)
    return sorted(out)


# -- checking what is read ---------------------------------------------------------------------

_UNVERIFIED: contextvars.ContextVar[bool] = contextvars.ContextVar("pyloader_unverified", default=False)


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


def _verifying() -> bool:
    return not _UNVERIFIED.get() and os.environ.get(VERIFY_ENV, "").strip() != "0"


def _listed(url: str, fresh: bool = False) -> Any:
    """The ``index.json`` entry that lists ``url`` (a ChunkEntry), or ``None``; never raises."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not _verifying() or not is_data_file_name(name):
        return None  # index.json itself (and other metadata) is not checked against an index
    from pyloader_core import index

    try:
        return index.listed_entry(url, fresh=fresh)
    except (OSError, ImportError, ValueError) as exc:  # the index cannot be had: check lengths only
        logger.debug("cannot look up %s in an index.json: %s", url, exc)
        return None


def _announced_size(f: Any) -> tuple[int | None, str]:
    """The length the server or file system announced for the stream ``f``, and where it came from."""
    headers = getattr(f, "headers", None)  # urllib's HTTPResponse: the body is not decoded
    if headers is not None and hasattr(headers, "get"):
        value = headers.get("Content-Length")
        if value and value.strip().isdigit():
            return int(value), "Content-Length"
        return None, ""
    size = getattr(f, "size", None)  # fsspec's buffered files
    return (size, "the file system's size") if isinstance(size, int) else (None, "")


class _CheckedRaw(io.RawIOBase):
    """Passes a remote stream through, counting and hashing the bytes; checks them at the end.

    At the end of the stream the count must equal the announced length (``size``) and, when an
    index entry lists the file, the entry's ``bytes``; its SHA-256 must equal the entry's
    ``sha256``. One pass: nothing is read twice.
    """

    def __init__(self, fh: Any, url: str, entry: Any) -> None:
        super().__init__()
        self._fh = fh
        self._url = url
        self._size, self._source = _announced_size(fh)
        self._entry = entry
        self._sha = hashlib.sha256() if entry is not None and entry.sha256 else None
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
        """A chunked HTTP body cut short (http.client's own error) as an IncompleteReadError naming the URL."""
        try:
            yield
        except Exception as exc:
            client = sys.modules.get("http.client")
            if client is not None and isinstance(exc, client.IncompleteRead):
                got = len(exc.partial) + self._count
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
        from pyloader_core.index import ChecksumError

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
        return self._count == entry.bytes and (not entry.sha256 or digest == entry.sha256)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def _checked(fh: Any, url: str) -> BinaryIO:
    """``fh`` read through a :class:`_CheckedRaw`, buffered (C line splitting)."""
    return io.BufferedReader(_CheckedRaw(fh, url, _listed(url)), buffer_size=_COPY_CHUNK)  # type: ignore[return-value]


# -- the public I/O functions -------------------------------------------------------------------


def exists(path: str) -> bool:
    """Whether ``path`` (local or URL) exists.

    Example::

        exists("memory://data/a.jsonl")
    """
    if not is_url(path):
        return os.path.exists(path)
    if is_http(path) and not _http_via_fsspec():
        try:
            _http_head(path)
        except FileNotFoundError:
            return False
        return True
    fs, p = url_to_fs(path)
    return bool(fs.exists(p))


def _info(path: str) -> tuple[int | None, str]:
    """``(size, version_tag)`` of a URL; the tag changes when the remote file does (where known)."""
    if is_http(path) and not _http_via_fsspec():
        headers = _http_head(path)
        size = headers.get("content-length")
        return (int(size) if size and size.isdigit() else None), headers.get("etag") or headers.get("last-modified", "")
    fs, p = url_to_fs(path)
    info = fs.info(p)
    tag = ""
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            tag = str(info[key])
            break
    size = info.get("size")
    return (int(size) if size is not None else None), tag


def file_size(path: str) -> int:
    """The size of ``path`` in bytes (a local file or a URL).

    Raises ``OSError`` when it cannot be told (missing file, server without ``Content-Length``).

    Example::

        file_size("data/part-00000.jsonl")
        file_size("memory://data/part-00000.jsonl")
    """
    if not is_url(path):
        return os.path.getsize(path)
    size, _ = _info(path)
    if size is None:
        raise OSError(f"{path}: the server does not report the file's size")
    return size


def _open_direct(path: str, seekable: bool) -> BinaryIO:
    """A URL opened for reading, not through the cache.

    Sequential streams (and the whole-body read behind a seekable urllib HTTP file) are checked
    while read (see the module docstring); fsspec's random-access files are not.
    """
    if is_http(path) and not _http_via_fsspec():
        resp = _http_request(path)
        stream = _checked(resp, path)
        if not seekable:
            return stream
        with stream:
            return io.BytesIO(stream.read())
    fs, p = url_to_fs(path)
    if seekable:
        return fs.open(p, "rb")  # type: ignore[no-any-return]
    if is_http(path):
        f = fs.open(p, "rb", block_size=0)  # a sequential stream: no Range requests needed
    else:
        f = fs.open(p, "rb")
    return _checked(f, path)  # a C BufferedReader also splits lines faster than fsspec's files


def open_binary_any(path: str, *, seekable: bool = False, use_cache: bool = True) -> BinaryIO:
    """Open a local file or a URL for reading bytes (no decompression).

    Remote files come from the local cache when one is configured (downloaded there on first use).
    ``seekable=True`` asks for random access (Parquet footers, zip directories): an uncached
    ``http(s)://`` file is then read into memory unless fsspec's HTTP support is installed.
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
    return _open_direct(path, seekable)


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
    return io.BytesIO(_read_direct(path))


def _read_direct(path: str) -> bytes:
    with _open_direct(path, seekable=False) as f:
        return f.read()


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


def join(root: str, name: str) -> str:
    """``root`` and a ``/``-separated relative ``name`` joined (URL or local path).

    Example::

        join("s3://b/data", "sub/part-0.jsonl")  # 's3://b/data/sub/part-0.jsonl'
    """
    if is_url(root):
        return root.rstrip("/") + "/" + name
    return os.path.join(root, *name.split("/"))


# -- the cache ---------------------------------------------------------------------------------


def configure_cache(directory: str | os.PathLike[str] | None, max_bytes: int | str | None = None) -> None:
    """Keep local copies of remote files in ``directory``, at most ``max_bytes`` in all (LRU).

    ``None`` turns caching off. The setting is stored in the ``PYLOADER_CACHE_DIR`` and
    ``PYLOADER_CACHE_BYTES`` environment variables so that worker processes started afterwards
    use it too. ``max_bytes`` may be a size string (``"20GB"``); default :data:`DEFAULT_CACHE_BYTES`.

    Example::

        configure_cache("/scratch/pyloader-cache", "50GB")
        configure_cache(None)  # off
    """
    if directory is None:
        os.environ.pop(CACHE_DIR_ENV, None)
        os.environ.pop(CACHE_BYTES_ENV, None)
        return
    limit = DEFAULT_CACHE_BYTES if max_bytes is None else parse_size(max_bytes)
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    os.environ[CACHE_DIR_ENV] = directory
    os.environ[CACHE_BYTES_ENV] = str(limit)


def cache_settings() -> tuple[str, int] | None:
    """``(directory, max_bytes)`` of the configured cache, or ``None`` when caching is off.

    Example::

        cache_settings()  # ('/scratch/pyloader-cache', 53687091200)
    """
    directory = os.environ.get(CACHE_DIR_ENV)
    if not directory:
        return None
    raw = os.environ.get(CACHE_BYTES_ENV)
    try:
        limit = parse_size(raw) if raw else DEFAULT_CACHE_BYTES
    except ConfigError as exc:
        raise ConfigError(f"{CACHE_BYTES_ENV}: {exc}") from None
    return directory, limit


def _cache_name(url: str, size: int | None, tag: str) -> str:
    digest = hashlib.sha256(f"{url}\0{size}\0{tag}".encode()).hexdigest()[:32]
    base = url.rstrip("/").rsplit("/", 1)[-1]
    suffix = "".join(re.findall(r"\.[A-Za-z0-9]{1,8}", base)[-2:])  # keep ".jsonl.gz"
    return digest + suffix


def _cache_entries(directory: str) -> list[tuple[float, int, str]]:
    out = []
    with os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, entry.path))
    return out


def _evict(directory: str, limit: int, incoming: int) -> None:
    entries = sorted(_cache_entries(directory))
    total = sum(size for _, size, _ in entries)
    for _, size, path in entries:
        if total + incoming <= limit:
            break
        try:
            os.unlink(path)
            logger.debug("cache: evicted %s (%d bytes)", path, size)
        except FileNotFoundError:
            pass
        total -= size


def cached_path(url: str) -> str | None:
    """The local path of ``url``'s cached copy, downloading it on a miss.

    ``None`` when caching is off, ``url`` is local, the file is larger than the cache's limit
    (then it is streamed, never cached), or inside :func:`unverified`. The download is checked
    (length, and ``index.json``'s entry where one lists the file) before it enters the cache.

    Example::

        configure_cache("/tmp/cache", "1GB")
        cached_path("memory://data/part-00000.jsonl")  # '/tmp/cache/3f2a...jsonl'
    """
    settings = cache_settings()
    if settings is None or not is_url(url) or _UNVERIFIED.get():
        return None
    directory, limit = settings
    size, tag = _info(url)
    if size is not None and size > limit:
        logger.debug("cache: %s (%d bytes) exceeds the cache limit %d; streaming it", url, size, limit)
        return None
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, _cache_name(url, size, tag))
    try:
        os.utime(target)  # a hit: mark it recently used
        logger.debug("cache: hit %s", url)
        return target
    except FileNotFoundError:
        pass
    _evict(directory, limit, size or 0)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        with _open_direct(url, seekable=False) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
        got = os.path.getsize(tmp)
        if size is not None and got != size:
            raise IncompleteReadError(f"{url}: download truncated ({got} of {size} bytes)", url)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logger.debug("cache: stored %s (%d bytes) as %s", url, got, target)
    if size is None:  # the limit could only be checked after the download
        _evict(directory, limit, 0)
    return target
