"""``index.json``: each chunk's name, sample count, size, checksum and format, kept beside the chunks.

``pyloader split`` writes it and ``pyloader index DIR`` builds it for existing chunks. The loader
uses it, when present and up to date, for exact sample counts without a counting pass
(:func:`lookup_counts`), and for checksum verification on demand (:func:`verify_checksums`).
Remote chunks are also checked against their entry while they are read (:func:`listed_entry`,
used by :mod:`pyloader_core.remote`).
Listing never returns it as data (see :data:`pyloader_core.files.RESERVED_NAMES`). Local paths and
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
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from pyloader_core import remote
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.files import INDEX_NAME
from pyloader_core.reader import DataReader, check_columns

__all__ = [
    "FORMATS",
    "INDEX_NAME",
    "INDEX_VERSION",
    "ChecksumError",
    "ChunkEntry",
    "Index",
    "build_index",
    "check_checksums",
    "detect_format",
    "file_sha256",
    "format_of_reader",
    "listed_entry",
    "load_index",
    "lookup_counts",
    "reader_for_format",
    "verify_checksums",
    "write_index",
]

logger = logging.getLogger(__name__)

INDEX_VERSION = 1

#: Format names and the file name endings (before any ``.gz``/``.zst``) that tell them.
FORMATS: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".json", ".ndjson", ".jsonlines"),
    "csv": (".csv",),
    "parquet": (".parquet", ".pq"),
    "txt": (".txt", ".text"),
    "numpy": (".npy", ".npz"),
}
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
_HASH_CHUNK = 1 << 20


class ChecksumError(DataFormatError):
    """Chunk files differ from their index entries (size or SHA-256), or have none.

    Example::

        try:
            check_checksums(list_files("data/"))
        except ChecksumError as exc:
            logger.error("%s", exc)  # "2 of 65 chunk file(s) differ from index.json: ..."
    """


def detect_format(path: str) -> str | None:
    """The format name (a key of :data:`FORMATS`) that ``path``'s name tells, or ``None``.

    Compression suffixes are looked through: ``part-0.jsonl.gz`` is ``"jsonl"``.

    Example::

        detect_format("data/part-00000.csv.zst")  # 'csv'
        detect_format("notes.md")                  # None
    """
    name = str(path).rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for fmt, endings in FORMATS.items():
        if name.endswith(endings):
            return fmt
    return None


def reader_for_format(fmt: str) -> DataReader:
    """A built-in reader for a format name of :data:`FORMATS` (or any reader registry name).

    Example::

        reader_for_format("txt").count_samples("corpus/part-0.txt")
    """
    from pyloader_core.readers import get_reader

    return get_reader(fmt)


def format_of_reader(reader: DataReader) -> str:
    """The format name recorded for chunks counted by ``reader``.

    Built-in readers give their format (``"jsonl"``...); any other reader its class name.

    Example::

        format_of_reader(JsonLineDataReader())  # 'jsonl'
    """
    from pyloader_core.readers import READERS

    for fmt in FORMATS:
        if type(reader) is READERS[fmt]:
            return fmt
    return type(reader).__name__


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
        return remote.join(self.root, name)

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
                    format=str(raw.get("format") or ""),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DataFormatError(f"chunk entry {i} is malformed: {exc!r}", where) from None
            if entry.samples < 0 or entry.bytes < 0:
                raise DataFormatError(f"chunk entry {i} has a negative count", where)
            chunks[entry.name] = entry
        meta = {k: v for k, v in data.items() if k not in {"chunks", "total_samples", "total_bytes"}}
        return cls(root, chunks, meta)


def _created_by() -> str:
    from pyloader_core import __version__

    return f"pyloader {__version__}"


# -- paths -------------------------------------------------------------------------------------


def _norm_url(url: str) -> str:
    """A URL with its file-system path normalised (``memory://a`` and ``memory:///a`` agree)."""
    if remote.is_http(url):
        return url.rstrip("/")
    fs, path = remote.url_to_fs(url)
    return fs.unstrip_protocol(path.rstrip("/"))


def relative_name(path: str, root: str) -> str | None:
    """``path`` relative to ``root``, ``/``-separated; ``None`` when it is not under ``root``.

    Example::

        relative_name("data/sub/a.jsonl", "data")  # 'sub/a.jsonl'
    """
    if remote.is_url(path) != remote.is_url(root):
        return None
    if remote.is_url(path):
        p, r = _norm_url(path), _norm_url(root)
        return p[len(r) + 1 :] if p.startswith(r + "/") else None
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")


def _dirname(path: str) -> str:
    if remote.is_url(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def _candidate_roots(path: str, top: str) -> list[str]:
    """``path``'s directory and its parents, up to and including ``top``."""
    out = []
    d = _dirname(path)
    for _ in range(64):  # directory depth; a guard against odd URLs
        out.append(d)
        if remote.is_url(d):
            rest = d.split("://", 1)[1].strip("/")
            if _norm_url(d) == _norm_url(top) or "/" not in rest:
                break
        elif os.path.abspath(d) == os.path.abspath(top) or os.path.dirname(d) == d:
            break
        d = _dirname(d)
    return out


def _common_dir(files: Sequence[str]) -> str:
    if all(remote.is_url(f) for f in files):
        dirs = [_dirname(f) for f in files]
        common = dirs[0]
        for d in dirs[1:]:
            while not (d == common or d.startswith(common.rstrip("/") + "/")):
                if "/" not in common.split("://", 1)[1]:
                    break
                common = common.rsplit("/", 1)[0]
        return common
    return os.path.commonpath([_dirname(f) for f in files if not remote.is_url(f)] or [os.getcwd()])


# -- building and writing ----------------------------------------------------------------------


def file_sha256(path: str) -> str:
    """The SHA-256 of ``path``'s bytes as stored (compressed files are not decompressed), streamed.

    Example::

        file_sha256("data/part-00000.jsonl.gz")  # '3a7bd3e2...'
    """
    h = hashlib.sha256()
    with remote.unverified(), remote.open_binary_any(path) as f:  # the digest is what is checked
        while True:
            block = f.read(_HASH_CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _count(reader: DataReader, path: str) -> int:
    n = reader.count_samples(path)
    if n is None:
        logger.info("counting samples of %s by reading it (the reader has no count_samples)", path)
        columns, n = reader.read_file(path)
        n = check_columns(columns, n, path, "read_file")
    return int(n)


def build_index(
    files: Iterable[str],
    reader_or_format: DataReader | str | None = None,
    root: str | None = None,
) -> dict[str, Any]:
    """The index (a JSON-ready dict) of ``files``: each one's samples, bytes, SHA-256 and format.

    Args:
        files: the chunk files (local paths or URLs), all under ``root``.
        reader_or_format: the reader that counts samples, or a format name; ``None`` tells each
            file's format from its name (:func:`detect_format`).
        root: the directory the index will live in (default: the files' common directory).

    Raises:
        ConfigError: a file is not under ``root``, or its format cannot be told from its name.

    Example::

        files = list_files("data/")
        write_index("data/", build_index(files, "jsonl", "data/"))
    """
    files = list(files)
    if root is None:
        root = _common_dir(files) if files else os.getcwd()
    with remote.unverified():  # the files may differ from an older index: that is why it is rebuilt
        return _build(files, reader_or_format, root)


def _build(files: list[str], reader_or_format: DataReader | str | None, root: str) -> dict[str, Any]:
    readers: dict[str, DataReader] = {}
    chunks: dict[str, ChunkEntry] = {}
    for path in files:
        name = relative_name(path, root)
        if name is None:
            raise ConfigError(f"{path} is not under the index's directory {root}")
        if isinstance(reader_or_format, DataReader):
            reader, fmt = reader_or_format, format_of_reader(reader_or_format)
        else:
            fmt = reader_or_format.lower() if isinstance(reader_or_format, str) else detect_format(path)
            if fmt is None:
                raise ConfigError(f"cannot tell the format of {path} from its name; give one of {', '.join(FORMATS)}")
            if fmt not in readers:
                readers[fmt] = reader_for_format(fmt)
            reader = readers[fmt]
        samples = _count(reader, path)
        size = remote.file_size(path)
        digest = file_sha256(path)
        chunks[name] = ChunkEntry(name, samples, size, digest, fmt)
        logger.debug("indexed %s: %d samples, %d bytes", name, samples, size)
    return Index(str(root), chunks).to_dict()


def write_index(root: str | os.PathLike[str], index: dict[str, Any] | Index) -> str:
    """Write ``index`` as ``root/index.json`` (atomically for local directories); returns its path.

    Example::

        write_index("data/", build_index(list_files("data/"), None, "data/"))
    """
    root = os.fspath(root)
    data = index.to_dict() if isinstance(index, Index) else index
    Index.from_dict(root, data)  # refuse to write what could not be read back
    text = _dumps(data)
    path = remote.join(root, INDEX_NAME)
    remote.write_bytes(path, text.encode("utf-8"))
    logger.info("wrote %s (%d chunks)", path, len(data["chunks"]))
    return path


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one chunk per line: readable, and diffs stay small."""
    head = {k: v for k, v in data.items() if k != "chunks"}
    lines = [json.dumps(c, separators=(", ", ": ")) for c in data["chunks"]]
    body = ",\n  ".join(lines)
    head_text = json.dumps(head, indent=1)[:-2]  # without the closing "\n}"
    return head_text + ',\n "chunks": [\n  ' + body + "\n ]\n}\n" if lines else head_text + ',\n "chunks": []\n}\n'


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
        root = _common_dir(files)
    return _load(root, strict=strict)


def _load(root: str, *, strict: bool = False) -> Index | None:
    path = remote.join(root, INDEX_NAME)
    try:
        raw = remote.read_bytes(path, use_cache=False)
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
    if reader is None:
        return True
    from pyloader_core.readers import READERS, CsvDataReader, TextLineDataReader

    if type(reader) not in set(READERS.values()):
        return True  # a user's reader: the index's count is the format's documented count
    if fmt not in FORMATS or type(reader) is not READERS[fmt]:
        return False
    if isinstance(reader, TextLineDataReader) and reader.skip_blank:
        return False
    return not (isinstance(reader, CsvDataReader) and reader.delimiter != ",")


def _listed_sizes(files: Sequence[str]) -> dict[str, int]:
    """Sizes of fsspec (non-HTTP) URLs from one listing per directory instead of one call per file."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        if remote.is_url(f) and not remote.is_http(f):
            by_dir.setdefault(_dirname(f), []).append(f)
    out: dict[str, int] = {}
    for directory, members in by_dir.items():
        if len(members) < 2:
            continue
        try:
            fs, path = remote.url_to_fs(directory)
            listing = {
                fs.unstrip_protocol(e["name"]): e.get("size")
                for e in fs.ls(path, detail=True)
                if e.get("type") == "file"
            }
        except (OSError, ValueError):
            continue
        for f in members:
            size = listing.get(_norm_url(f))
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
            out.append(remote.file_size(f))
        except OSError:
            out.append(None)
    return out


def _find_entries(files: Sequence[str]) -> list[tuple[Index, ChunkEntry] | None]:
    top = _common_dir(files)
    cache: dict[str, Index | None] = {}
    found: list[tuple[Index, ChunkEntry] | None] = []
    for path in files:
        hit = None
        for root in _candidate_roots(path, top):
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
                remote.join(index.root, INDEX_NAME),
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
    entries = _find_entries(files)
    bad: list[str] = []
    for path, index_entry in zip(files, entries, strict=True):
        if index_entry is None:
            logger.info("%s: not listed in any index.json", path)
            bad.append(path)
            continue
        entry = index_entry[1]
        try:
            size = remote.file_size(path)
        except OSError as exc:
            logger.info("%s: %s", path, exc)
            bad.append(path)
            continue
        if size != entry.bytes:
            logger.info("%s: %d bytes, index.json lists %d", path, size, entry.bytes)
            bad.append(path)
        elif entry.sha256 and file_sha256(path) != entry.sha256:
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

    Used to check remote reads as they happen (:mod:`pyloader_core.remote`). Each directory's
    index is loaded once per process (a missing or malformed one counts as none); ``fresh=True``
    loads them again (before a mismatch is reported, in case the index was rewritten).

    Example::

        entry = listed_entry("s3://bucket/data/part-00003.jsonl")
        entry.sha256 if entry is not None else None
    """
    for root in _candidate_roots(url, url):
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
