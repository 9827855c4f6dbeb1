"""fsspec, imported on first use: the one way PyLoader reaches ``scheme://`` URLs (HTTP included).

**Storage options** (fsspec's name for a file system's keyword arguments: credentials, an
endpoint...) are registered for the buckets (hosts) they apply to, by :func:`use_storage_options`
(which ``DataLoader(..., storage_options=...)`` calls through :func:`~.listing.list_files` for its
``data_dir``). Every :func:`url_to_fs` in a registered bucket then passes them on, so every
fsspec call (listing, sizes, reads, the cache, ``index.json``) gets them without being told, in any
thread. The registrations of this process travel to spawned worker processes with their payload
(:func:`storage_snapshot` / :func:`install_storage_snapshot`); forked ones inherit them.

A ``storage_options`` dict is either flat (``{"key": ..., "secret": ..., "client_kwargs":
{"endpoint_url": ...}}``: for whatever protocol the URLs have) or per protocol (``{"s3": {...},
"https": {...}}``: every key a protocol fsspec knows, every value a dict or ``None``).

Example::

    fs, path = url_to_fs("memory://data/a.jsonl")   # (MemoryFileSystem, '/data/a.jsonl')
    use_storage_options(["s3://bucket/data/"], {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}})
    fs, path = url_to_fs("s3://bucket/data/part-0.jsonl")  # an S3FileSystem with that endpoint
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pyloader_core.errors import ConfigError

__all__ = [
    "PROCESS_LOCAL_PROTOCOLS",
    "info",
    "install_storage_snapshot",
    "storage_options_for",
    "storage_snapshot",
    "url_to_fs",
    "use_storage_options",
]

logger = logging.getLogger(__name__)

#: File systems whose files live in one process's memory: another process never sees them.
PROCESS_LOCAL_PROTOCOLS = frozenset({"memory"})

# (canonical protocol, path without leading/trailing "/") -> the options registered for that prefix
_registered: dict[tuple[str, str], dict[str, Any]] = {}
_lock = threading.Lock()

_TAG_KEYS = ("ETag", "etag", "mtime", "LastModified", "last_modified", "updated", "created")


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"reading URLs needs fsspec, which could not be imported ({exc}): pip install 'pyloader-chunks[remote]'"
        ) from exc
    return fsspec


def _split(url: str) -> tuple[str, str]:
    """``(protocol, rest)`` of ``url`` (its last link, for a chained ``a::b://`` URL)."""
    last = url.rsplit("::", 1)[-1]
    protocol, sep, rest = last.partition("://")
    return (protocol, rest) if sep else ("file", last)


@functools.lru_cache(maxsize=64)
def _aliases(protocol: str) -> tuple[str, ...]:
    """Every name of the file system that serves ``protocol`` (``s3``, ``s3a``), its canonical one first."""
    try:
        names = _fsspec().get_filesystem_class(protocol).protocol
    except Exception:  # noqa: BLE001 - unknown or not installed: url_to_fs reports that
        return (protocol,)
    names = (names,) if isinstance(names, str) else tuple(names)
    return names if protocol in names else (protocol, *names)


def _known_protocols() -> set[str]:
    from fsspec.registry import known_implementations, registry

    return set(known_implementations) | set(registry)


def _per_protocol(options: Mapping[str, Any]) -> bool:
    """Whether ``options`` is ``{protocol: options, ...}`` rather than one file system's options."""
    if not options or not all(v is None or isinstance(v, Mapping) for v in options.values()):
        return False
    try:
        known = _known_protocols()
    except ImportError:
        return False
    return all(k in known for k in options)


def _select(options: Mapping[str, Any] | None, protocol: str) -> dict[str, Any]:
    """The keyword arguments ``options`` gives the file system of ``protocol``."""
    if not options:
        return {}
    if _per_protocol(options):
        for name in _aliases(protocol):
            if options.get(name) is not None:
                return copy.deepcopy(dict(options[name]))
        return {}
    return copy.deepcopy(dict(options))


def _key(url: str) -> tuple[str, str]:
    """The registry key of a URL: its protocol and first path component (an S3 bucket, an HTTP host).

    Options cover the whole bucket (or host), not just the directory named: the ``index.json`` of a
    dataset may sit in a parent directory of ``data_dir``, and is read with the same options.
    """
    protocol, rest = _split(url)
    return _aliases(protocol)[0], rest.strip("/").split("/", 1)[0]


def use_storage_options(prefixes: Iterable[str], options: Mapping[str, Any] | None) -> None:
    """Give every later fsspec call for a URL in the bucket (or host) of one of ``prefixes`` these ``options``.

    Only ``scheme://`` entries of ``prefixes`` count (local paths never go through fsspec). ``None``
    or ``{}`` removes the registrations. A bucket registered again with other options takes the
    new ones (a warning says so): the latest loader over a bucket decides how it is reached.

    Example::

        use_storage_options(["s3://bucket/data/"], {"key": "...", "secret": "..."})
    """
    with _lock:
        for prefix in prefixes:
            if "://" not in prefix:
                continue
            key = _key(prefix)
            if not options:
                _registered.pop(key, None)
                continue
            new = copy.deepcopy(dict(options))
            old = _registered.get(key)
            if old is not None and old != new:
                logger.warning("storage_options for %s replaced by those of a newer loader", prefix)
            _registered[key] = new


def storage_options_for(url: str) -> dict[str, Any]:
    """The keyword arguments fsspec gets for ``url``: those registered for its bucket (or host)."""
    if not _registered:
        return {}
    protocol = _split(url)[0]
    with _lock:
        options = _registered.get(_key(url))
    return _select(options, protocol)


def storage_snapshot() -> dict[tuple[str, str], dict[str, Any]]:
    """This process's registrations, for a worker process (see :func:`install_storage_snapshot`)."""
    with _lock:
        return copy.deepcopy(_registered)


def install_storage_snapshot(snapshot: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    """Add the registrations of :func:`storage_snapshot` (taken in another process) to this one's."""
    with _lock:
        _registered.update(copy.deepcopy(dict(snapshot)))


def url_to_fs(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url`` from :func:`fsspec.core.url_to_fs`.

    ``storage_options`` (flat or per protocol, see the module) become the file system's keyword
    arguments; ``None``: those registered for ``url``'s prefix by :func:`use_storage_options`.

    Raises ``ImportError`` (suggesting ``pip install 'pyloader-chunks[remote]'``) without fsspec, or for
    ``http(s)://`` without aiohttp (fsspec's HTTP file system needs it).

    Example::

        fs, path = url_to_fs("memory://data/a.jsonl")   # (MemoryFileSystem, '/data/a.jsonl')
    """
    fsspec = _fsspec()
    if storage_options is None:
        kwargs = storage_options_for(url)
    elif "::" in url and _per_protocol(storage_options):
        kwargs = copy.deepcopy(dict(storage_options))  # fsspec's own form for chained URLs
    else:
        kwargs = _select(storage_options, _split(url)[0])
    try:
        return fsspec.core.url_to_fs(url, **kwargs)  # type: ignore[no-any-return]
    except ValueError as exc:  # unknown protocol
        raise ConfigError(f"cannot open {url!r}: {exc}") from None
    except ImportError as exc:  # a known protocol whose implementation is not installed (s3fs, aiohttp)
        raise ImportError(f"cannot open {url!r}: {exc} (pip install 'pyloader-chunks[remote]')") from exc
    except TypeError as exc:  # an option the file system does not take
        if not kwargs:
            raise
        raise ConfigError(
            f"cannot open {url!r} with storage_options {sorted(kwargs)}: {exc}"
        ) from None


def info(url: str) -> tuple[int | None, str]:
    """``(size, version_tag)`` of a URL; the tag changes when the remote file does (where known).

    Example::

        size, tag = info("memory://data/a.jsonl")
    """
    fs, p = url_to_fs(url)
    details = fs.info(p)
    tag = ""
    for key in _TAG_KEYS:
        if details.get(key) is not None:
            tag = str(details[key])
            break
    size = details.get("size")
    return (int(size) if size is not None else None), tag
