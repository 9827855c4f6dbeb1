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

Example::

    from pyloader_core import remote

    remote.configure_cache("/tmp/pyloader-cache", max_bytes=20 * 2**30)
    with remote.open_binary_any("s3://bucket/data/part-00000.jsonl") as f:
        head = f.read(100)
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import urllib.parse
import uuid
from typing import Any, BinaryIO

from pyloader_core.errors import ConfigError, NoFilesError
from pyloader_core.files import is_data_file_name
from pyloader_core.sizes import parse_size

__all__ = [
    "CACHE_BYTES_ENV",
    "CACHE_DIR_ENV",
    "DEFAULT_CACHE_BYTES",
    "HTTP_BACKEND_ENV",
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
    "url_to_fs",
    "write_bytes",
]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "PYLOADER_CACHE_DIR"
CACHE_BYTES_ENV = "PYLOADER_CACHE_BYTES"
#: ``"fsspec"`` or ``"urllib"`` forces the HTTP backend (default: fsspec when aiohttp is importable).
HTTP_BACKEND_ENV = "PYLOADER_HTTP_BACKEND"
#: The cache's size limit when only its directory is given.
DEFAULT_CACHE_BYTES = 10 << 30

_COPY_CHUNK = 1 << 20
_HTTP_TIMEOUT_S = 60.0


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
    if is_http(path) and not _http_via_fsspec():
        resp = _http_request(path)
        if not seekable:
            return resp  # type: ignore[no-any-return]
        with resp:
            return io.BytesIO(resp.read())
    fs, p = url_to_fs(path)
    if is_http(path) and not seekable:
        f = fs.open(p, "rb", block_size=0)  # a sequential stream: no Range requests needed
    else:
        f = fs.open(p, "rb")
    if not isinstance(f, (io.BufferedIOBase, io.RawIOBase)) and not seekable:
        # fsspec's own buffered files split lines in Python; a C BufferedReader is much faster
        return io.BufferedReader(f, buffer_size=_COPY_CHUNK)  # type: ignore[arg-type]
    return f  # type: ignore[no-any-return]


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

    ``None`` when caching is off, ``url`` is local, or the file is larger than the cache's limit
    (then it is streamed, never cached).

    Example::

        configure_cache("/tmp/cache", "1GB")
        cached_path("memory://data/part-00000.jsonl")  # '/tmp/cache/3f2a...jsonl'
    """
    settings = cache_settings()
    if settings is None or not is_url(url):
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
            raise OSError(f"{url}: download truncated ({got} of {size} bytes)")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    logger.debug("cache: stored %s (%d bytes) as %s", url, got, target)
    if size is None:  # the limit could only be checked after the download
        _evict(directory, limit, 0)
    return target
