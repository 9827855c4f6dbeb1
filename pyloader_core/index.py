"""``index.json``: each chunk's name, sample count, size, checksum and format, kept beside the chunks.

``pyloader split`` writes it and ``pyloader index DIR`` builds it for existing chunks (both in
:mod:`pyloader_core.tools`); this module is the read side: the model, loading, lookup, verification. The loader
uses it, when present and up to date, for exact sample counts without a counting pass
(:func:`lookup_counts`), and for checksum verification on demand (:func:`verify_checksums`).
Remote chunks are also checked against their entry while they are read (:func:`listed_entry`,
registered with :mod:`pyloader_core.storage.checks`).
Listing never returns it as data (see :data:`pyloader_core.storage.paths.RESERVED_NAMES`). Local paths and
``scheme://`` URLs both work.

The file::

    {
      "pyloader_index": 1,
      "created_by": "pyloader 0.1.0",
      "total_samples": 250, "total_bytes": 10240,
      "chunks": [
        {"name": "part-00000.jsonl.gz", "samples": 125, "bytes": 5120,
         "sha256": "9f86d0...", "format": "jsonl"},
        ...
      ]
    }

``name`` is the chunk's path relative to the index's directory, ``/``-separated; ``bytes`` its size
on disk (compressed, if it is); ``samples`` what the built-in reader of ``format`` counts (JSON
lines: non-blank lines; CSV: rows after the header; text: lines; Parquet: rows; NumPy: first
dimension).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from pyloader_core import storage
from pyloader_core.errors import ChecksumError, ConfigError, DataFormatError
from pyloader_core.formats import FORMATS, READERS
from pyloader_core.formats.base import canonical_name
from pyloader_core.reader import DataReader
from pyloader_core.storage.checks import set_index_lookup, unverified
from pyloader_core.storage.paths import INDEX_NAME, candidate_roots, common_dir, dirname, norm_url, relative_name
from pyloader_core.version import __version__

__all__ = [
    "ChecksumError",
    "ChunkEntry",
    "INDEX_NAME",
    "INDEX_VERSION",
    "Index",
    "check_checksums",
    "listed_entry",
    "load_index",
    "lookup_counts",
    "relative_name",
    "verify_checksums",
]

logger = logging.getLogger(__name__)

INDEX_VERSION = 1

@dataclasses.dataclass(frozen=True)
class ChunkEntry:
    """One chunk of an index.

    Example::

        ChunkEntry("part-00000.jsonl", samples=100, bytes=4096, sha256="...", format="jsonl")
    """

    name: str
    samples: int
    bytes: int
    sha256: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Index:
    """A loaded ``index.json``: its directory (``root``) and its chunks by name.

    Example::

        index = load_index("data/")
        index.total_samples, len(index.chunks)
        index.entry_for("data/part-00003.jsonl").samples
    """

    root: str
    chunks: dict[str, ChunkEntry]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def total_samples(self) -> int:
        return sum(c.samples for c in self.chunks.values())

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.chunks.values())

    def path_of(self, name: str) -> str:
        """The full path (or URL) of chunk ``name``."""
        return storage.join(self.root, name)

    def entry_for(self, path: str) -> ChunkEntry | None:
        """The entry of ``path`` (a full path or URL), or ``None`` when the index does not list it."""
        name = relative_name(path, self.root)
        return None if name is None else self.chunks.get(name)

    def to_dict(self) -> dict[str, Any]:
        meta = {k: v for k, v in self.meta.items() if k not in {"pyloader_index", "created_by"}}
        return {
            "pyloader_index": INDEX_VERSION,
            "created_by": self.meta.get("created_by") or _created_by(),
            **meta,
            "total_samples": self.total_samples,
            "total_bytes": self.total_bytes,
            "chunks": [c.to_dict() for c in self.chunks.values()],
        }

    @classmethod
    def from_dict(cls, root: str, data: Any, where: str = INDEX_NAME) -> Index:
        """Validate ``data`` (parsed JSON); raises :class:`DataFormatError` naming ``where``."""
        if not isinstance(data, dict) or not isinstance(data.get("chunks"), list):
            raise DataFormatError("not a PyLoader index (no 'chunks' list)", where)
        version = data.get("pyloader_index")
        if version != INDEX_VERSION:
            raise DataFormatError(f"unsupported index version {version!r} (this PyLoader reads {INDEX_VERSION})", where)
        chunks: dict[str, ChunkEntry] = {}
        for i, raw in enumerate(data["chunks"], 1):
            try:
                entry = ChunkEntry(
                    name=str(raw["name"]),
                    samples=int(raw["samples"]),
                    bytes=int(raw["bytes"]),
                    sha256=str(raw.get("sha256") or ""),
                    format=canonical_name(str(raw.get("format") or "")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DataFormatError(f"chunk entry {i} is malformed: {exc!r}", where) from None
            if entry.samples < 0 or entry.bytes < 0:
                raise DataFormatError(f"chunk entry {i} has a negative count", where)
            chunks[entry.name] = entry
        meta = {k: v for k, v in data.items() if k not in {"chunks", "total_samples", "total_bytes"}}
        return cls(root, chunks, meta)


def _created_by() -> str:
    return f"pyloader {__version__}"


# -- reading and using -------------------------------------------------------------------------


def load_index(root_or_files: str | os.PathLike[str] | Sequence[str], *, strict: bool = False) -> Index | None:
    """The index of a directory (or of the common directory of a list of files), or ``None``.

    A missing index gives ``None``; an unreadable or malformed one logs a warning and gives
    ``None``, or raises :class:`DataFormatError` when ``strict``.

    Example::

        index = load_index("data/")
        total = index.total_samples if index is not None else None
    """
    if isinstance(root_or_files, (str, os.PathLike)):
        root = os.fspath(root_or_files)
    else:
        files = list(root_or_files)
        if not files:
            return None
        root = common_dir(files)
    return _load(root, strict=strict)


def _load(root: str, *, strict: bool = False) -> Index | None:
    path = storage.join(root, INDEX_NAME)
    try:
        raw = storage.read_bytes(path, use_cache=False)
    except FileNotFoundError:
        return None
    except (OSError, NotADirectoryError) as exc:
        if strict:
            raise
        logger.warning("cannot read %s: %s; ignoring it", path, exc)
        return None
    try:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise DataFormatError(f"not valid JSON: {exc}", path) from None
        return Index.from_dict(root, data, path)
    except DataFormatError as exc:
        if strict:
            raise
        logger.warning("ignoring %s", exc)
        return None


def _compatible(reader: DataReader | None, fmt: str) -> bool:
    """Whether ``reader`` counts samples the way the index's ``fmt`` entry was counted."""
    if reader is None or type(reader) not in set(READERS.values()):
        return True  # a user's reader: the index's count is the format's documented count
    known = FORMATS.get(fmt)
    return known is not None and type(reader) is known.reader and known.counts_like(reader)


def _listed_sizes(files: Sequence[str]) -> dict[str, int]:
    """Sizes of fsspec (non-HTTP) URLs from one listing per directory instead of one call per file."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        if storage.is_url(f) and not storage.is_http(f):
            by_dir.setdefault(dirname(f), []).append(f)
    out: dict[str, int] = {}
    for directory, members in by_dir.items():
        if len(members) < 2:
            continue
        try:
            fs, path = storage.url_to_fs(directory)
            listing = {
                fs.unstrip_protocol(e["name"]): e.get("size")
                for e in fs.ls(path, detail=True)
                if e.get("type") == "file"
            }
        except (OSError, ValueError):
            continue
        for f in members:
            size = listing.get(norm_url(f))
            if size is not None:
                out[f] = int(size)
    return out


def _sizes(files: Sequence[str]) -> list[int | None]:
    listed = _listed_sizes(files)
    out: list[int | None] = []
    for f in files:
        if f in listed:
            out.append(listed[f])
            continue
        try:
            out.append(storage.file_size(f))
        except OSError:
            out.append(None)
    return out


def _find_entries(files: Sequence[str]) -> list[tuple[Index, ChunkEntry] | None]:
    top = common_dir(files)
    cache: dict[str, Index | None] = {}
    found: list[tuple[Index, ChunkEntry] | None] = []
    for path in files:
        hit = None
        for root in candidate_roots(path, top):
            if root not in cache:
                cache[root] = _load(root)
            index = cache[root]
            if index is not None:
                entry = index.entry_for(path)
                if entry is not None:
                    hit = (index, entry)
                    break
        found.append(hit)
    return found


def lookup_counts(files: Sequence[str], reader: DataReader | None = None) -> list[int] | None:
    """Every file's sample count from the ``index.json`` files that list them, or ``None``.

    Each file's entry is looked for in ``index.json`` of its directory, then of each parent
    directory up to the files' common directory. ``None`` (and the loader counts as before) when
    any file is not listed, when ``reader`` would count differently from the index (another
    format, ``skip_blank`` text, a non-comma CSV), or when an entry is stale: its ``bytes``
    differ from the file's size (logged as a warning).

    Example::

        counts = lookup_counts(list_files("data/"), JsonLineDataReader())
        total = sum(counts) if counts is not None else None
    """
    files = list(files)
    if not files:
        return None
    try:
        entries = _find_entries(files)
    except (OSError, ImportError, ConfigError) as exc:
        logger.warning("cannot look up chunk counts in index.json: %s", exc)
        return None
    if any(e is None for e in entries):
        missing = sum(e is None for e in entries)
        if missing < len(files):
            logger.info("index.json lists %d of %d files; counting samples instead", len(files) - missing, len(files))
        return None
    for index_entry in entries:
        assert index_entry is not None
        if not _compatible(reader, index_entry[1].format):
            logger.info(
                "index.json counts were made for format %r, which %s counts differently; counting instead",
                index_entry[1].format,
                type(reader).__name__,
            )
            return None
    sizes = _sizes(files)
    for path, size, index_entry in zip(files, sizes, entries, strict=True):
        assert index_entry is not None
        index, entry = index_entry
        if size != entry.bytes:
            logger.warning(
                "%s is stale for %s (%d bytes listed, %s now): counting samples instead; "
                "rebuild it with `pyloader index %s`",
                storage.join(index.root, INDEX_NAME),
                path,
                entry.bytes,
                "missing" if size is None else size,
                index.root,
            )
            return None
    return [e[1].samples for e in entries if e is not None]


def verify_checksums(files: Sequence[str]) -> list[str]:
    """The files whose size or SHA-256 differ from their index entry, or that no index lists.

    Reads every file in full (streamed, bounded memory); returns ``[]`` when all match. Each
    problem is also logged (INFO). Use :func:`check_checksums` to raise instead.

    Example::

        bad = verify_checksums(list_files("data/"))  # [] when every chunk matches
    """
    files = list(files)
    if not files:
        return []
    with unverified():
        return _verify(files)


def _verify(files: list[str]) -> list[str]:
    entries = _find_entries(files)
    bad: list[str] = []
    for path, index_entry in zip(files, entries, strict=True):
        if index_entry is None:
            logger.info("%s: not listed in any index.json", path)
            bad.append(path)
            continue
        entry = index_entry[1]
        try:
            size = storage.file_size(path)
        except OSError as exc:
            logger.info("%s: %s", path, exc)
            bad.append(path)
            continue
        if size != entry.bytes:
            logger.info("%s: %d bytes, index.json lists %d", path, size, entry.bytes)
            bad.append(path)
        elif entry.sha256 and storage.file_sha256(path) != entry.sha256:
            logger.info("%s: SHA-256 differs from index.json", path)
            bad.append(path)
    return bad


_LISTED: dict[str, Index | None] = {}  # index.json by directory, for listed_entry (per process)
_LISTED_LOCK = threading.Lock()
_LISTED_MAX = 1024


def _fresh_lock_in_child() -> None:
    global _LISTED_LOCK
    _LISTED_LOCK = threading.Lock()  # a fork while another thread held it must not deadlock the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


def listed_entry(url: str, *, fresh: bool = False) -> ChunkEntry | None:
    """The entry of ``url`` in the ``index.json`` of its directory or of a parent, or ``None``.

    Used to check remote reads as they happen (:mod:`pyloader_core.storage.checks`). Each directory's
    index is loaded once per process (a missing or malformed one counts as none); ``fresh=True``
    loads them again (before a mismatch is reported, in case the index was rewritten).

    Example::

        entry = listed_entry("s3://bucket/data/part-00003.jsonl")
        entry.sha256 if entry is not None else None
    """
    for root in candidate_roots(url, url):
        with _LISTED_LOCK:
            known = root in _LISTED and not fresh
            index = _LISTED.get(root)
        if not known:
            index = _load(root)
            with _LISTED_LOCK:
                if len(_LISTED) >= _LISTED_MAX:
                    _LISTED.clear()
                _LISTED[root] = index
        if index is not None:
            entry = index.entry_for(url)
            if entry is not None:
                return entry
    return None


def check_checksums(files: Sequence[str]) -> None:
    """Raise :class:`ChecksumError` naming the files :func:`verify_checksums` finds bad.

    Example::

        check_checksums(loader.files)  # before a long training run
    """
    bad = verify_checksums(files)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ChecksumError(f"{len(bad)} of {len(files)} chunk file(s) differ from index.json: {shown}")


set_index_lookup(listed_entry)  # storage checks remote reads against the index through it
