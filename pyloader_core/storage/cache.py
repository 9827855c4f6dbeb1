"""The local cache of remote files: least recently used copies go first, writes are atomic.

:func:`configure_cache` (or the ``PYLOADER_CACHE_DIR`` / ``PYLOADER_CACHE_BYTES`` environment
variables, which it sets so that spawned worker processes inherit it) keeps a local copy of every
remote file read, up to a total byte limit. A file larger than the limit is streamed, never
cached. A copy is reused while the remote file's size (and ETag or modification time, where the
file system reports one) is unchanged. Copies are written to a temporary name and renamed, so
concurrent readers never see a partial file. Downloads are checked (length, index entry) before
they enter the cache.

Example::

    configure_cache("/tmp/pyloader-cache", max_bytes="20GB")
    cached_path("memory://data/part-00000.jsonl")  # '/tmp/pyloader-cache/3f2a...jsonl'
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid

from pyloader_core.errors import ConfigError
from pyloader_core.sizes import parse_size
from pyloader_core.storage.checks import COPY_CHUNK, IncompleteReadError, is_unverified, sha256_hasher
from pyloader_core.storage.direct import open_direct
from pyloader_core.storage.fs import info
from pyloader_core.storage.paths import is_url

__all__ = ["CACHE_BYTES_ENV", "CACHE_DIR_ENV", "DEFAULT_CACHE_BYTES", "cache_settings", "cached_path", "configure_cache"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "PYLOADER_CACHE_DIR"
CACHE_BYTES_ENV = "PYLOADER_CACHE_BYTES"
#: The cache's size limit when only its directory is given.
DEFAULT_CACHE_BYTES = 10 << 30


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
    h = sha256_hasher()
    h.update(f"{url}\0{size}\0{tag}".encode())
    base = url.rstrip("/").rsplit("/", 1)[-1]
    suffix = "".join(re.findall(r"\.[A-Za-z0-9]{1,8}", base)[-2:])  # keep ".jsonl.gz"
    return str(h.hexdigest()[:32]) + suffix


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


def _download(url: str, directory: str, target: str, size: int | None) -> int:
    """Copy ``url`` into ``target`` through a temporary name; returns the bytes written."""
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        with open_direct(url, seekable=False) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
        got = os.path.getsize(tmp)
        if size is not None and got != size:
            raise IncompleteReadError(f"{url}: download truncated ({got} of {size} bytes)", url)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return got


def cached_path(url: str) -> str | None:
    """The local path of ``url``'s cached copy, downloading it on a miss.

    ``None`` when caching is off, ``url`` is local, the file is larger than the cache's limit
    (then it is streamed, never cached), or inside :func:`~pyloader_core.storage.checks.unverified`.

    Example::

        configure_cache("/tmp/cache", "1GB")
        cached_path("memory://data/part-00000.jsonl")  # '/tmp/cache/3f2a...jsonl'
    """
    settings = cache_settings()
    if settings is None or not is_url(url) or is_unverified():
        return None
    directory, limit = settings
    size, tag = info(url)
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
    got = _download(url, directory, target, size)
    logger.debug("cache: stored %s (%d bytes) as %s", url, got, target)
    if size is None:  # the limit could only be checked after the download
        _evict(directory, limit, 0)
    return target
