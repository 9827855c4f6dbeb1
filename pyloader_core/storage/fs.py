"""fsspec, imported on first use: the one way PyLoader reaches ``scheme://`` URLs (HTTP included).

Example::

    fs, path = url_to_fs("memory://data/a.jsonl")   # (MemoryFileSystem, '/data/a.jsonl')
"""

from __future__ import annotations

from typing import Any

from pyloader_core.errors import ConfigError

__all__ = ["info", "url_to_fs"]

_TAG_KEYS = ("ETag", "etag", "mtime", "LastModified", "last_modified", "updated", "created")


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"reading URLs needs fsspec, which could not be imported ({exc}): pip install pyloader[remote]"
        ) from exc
    return fsspec


def url_to_fs(url: str) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url`` from :func:`fsspec.core.url_to_fs`.

    Raises ``ImportError`` (suggesting ``pip install pyloader[remote]``) without fsspec, or for
    ``http(s)://`` without aiohttp (fsspec's HTTP file system needs it).

    Example::

        fs, path = url_to_fs("memory://data/a.jsonl")   # (MemoryFileSystem, '/data/a.jsonl')
    """
    fsspec = _fsspec()
    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except ValueError as exc:  # unknown protocol
        raise ConfigError(f"cannot open {url!r}: {exc}") from None
    except ImportError as exc:  # a known protocol whose implementation is not installed (s3fs, aiohttp)
        raise ImportError(f"cannot open {url!r}: {exc} (pip install pyloader[remote])") from exc


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
