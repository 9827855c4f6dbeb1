"""The format registry: one :class:`Format` per file format, registered by its own module.

A format's module (``pyloader_core/formats/NAME.py``) defines its reader and a ``FORMAT`` record;
:mod:`pyloader_core.formats` finds the modules and registers their records, so adding a format
touches one file.

Example::

    from pyloader_core.formats.base import get_format

    fmt = get_format("JSON")        # the jsonl Format (aliases count)
    fmt.reader(batch_size=32)       # a JsonLineDataReader
    fmt.count("data/part-0.jsonl")  # its sample count
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.reader import DataReader, count_or_read
from pyloader_core.storage.compression import strip_compression_suffix

__all__ = [
    "FORMATS",
    "Format",
    "LineSource",
    "READERS",
    "RecordSource",
    "canonical_name",
    "check_names",
    "check_reader_fits",
    "detect_format",
    "format_of_reader",
    "get_format",
    "register",
    "split_formats",
]

#: ``({key: type name}, {key: value})`` of a file's first record, or ``None`` when it has none.
FirstRecord = tuple[dict[str, str], dict[str, Any]] | None

_BLOCK_RECORDS = 4096
_BLOCK_BYTES = 1 << 20


class RecordSource(Protocol):
    """What ``split`` reads records from: blocks of byte records, or of Arrow record batches."""

    arrow: bool
    header: bytes | None

    def blocks(self, paths: Sequence[str]) -> Iterator[Any]: ...


class LineSource:
    """A :class:`RecordSource` of byte records, framed by :meth:`records` and batched into blocks.

    Example::

        class Lines(LineSource):
            def records(self, path):
                with iter_lines(path) as lines:
                    yield from lines
    """

    arrow = False

    def __init__(self, max_memory: int) -> None:
        self.max_memory = max_memory
        self.header: bytes | None = None

    def records(self, path: str) -> Iterator[bytes]:
        """The records of one input, each ending in a newline."""
        raise NotImplementedError

    def blocks(self, paths: Sequence[str]) -> Iterator[list[bytes]]:
        block: list[bytes] = []
        size = 0
        for path in paths:
            for rec in self.records(path):
                block.append(rec)
                size += len(rec)
                if len(block) >= _BLOCK_RECORDS or size >= _BLOCK_BYTES:
                    yield block
                    block, size = [], 0
            if block:
                yield block
                block, size = [], 0


def _counts_alike(reader: DataReader) -> bool:
    return True


@dataclasses.dataclass(frozen=True, kw_only=True)
class Format:
    """One file format: its names, file name endings, reader, and what the tools need of it.

    Attributes:
        name: the name recorded in ``index.json`` (``"jsonl"``).
        suffixes: file name endings that tell it, before any compression suffix; the first is
            the one ``split`` writes.
        aliases: other names accepted wherever a format name is (``"json"``).
        reader: the built-in reader class.
        first_record: ``inspect``'s view of a file's first record (see :data:`FirstRecord`).
        counts_like: whether a reader instance counts samples the way the index's count was made.
        split_source: ``split``'s record framing: ``max_memory -> RecordSource``; ``None``: not split.
        counter: the sample count of a file with a given reader.

    Example::

        Format(name="tsv", suffixes=(".tsv",), reader=TsvReader, first_record=first_tsv_record)
    """

    name: str
    suffixes: tuple[str, ...]
    reader: type[DataReader]
    first_record: Callable[[str], FirstRecord]
    aliases: tuple[str, ...] = ()
    counts_like: Callable[[DataReader], bool] = _counts_alike
    split_source: Callable[[int], RecordSource] | None = None
    counter: Callable[[DataReader, str], int] = count_or_read

    def count(self, path: str, reader: DataReader | None = None) -> int:
        """``path``'s sample count, by ``reader`` (default: a new reader of this format)."""
        return self.counter(reader if reader is not None else self.reader(), path)


#: Formats by name, in registration order.
FORMATS: dict[str, Format] = {}
#: Reader classes by name; every alias is a key of its own. Names are lower case.
READERS: dict[str, type[DataReader]] = {}
_BY_NAME: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add ``fmt`` to the registry (its name and aliases become reader names too); returns it."""
    FORMATS[fmt.name] = fmt
    for key in (fmt.name, *fmt.aliases):
        _BY_NAME[key.lower()] = fmt
        READERS[key.lower()] = fmt.reader
    return fmt


def get_format(name: str) -> Format:
    """The format a name or alias (case-insensitive) names.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    fmt = _BY_NAME.get(str(name).strip().lower())
    if fmt is None:
        raise ConfigError(f"unknown format {name!r}; valid names: {', '.join(sorted(_BY_NAME))}")
    return fmt


def check_names(names: Sequence[str] | None, option: str) -> list[str] | None:
    """A reader's list of field/column names as a list, or a :class:`ConfigError` naming ``option``.

    Example::

        check_names(("text", "label"), "fields")  # ['text', 'label']
        check_names("text", "fields")             # ConfigError: a str is not a sequence of names
    """
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{option} must be a sequence of str, got {names!r}")
    names = list(names)
    if len(set(names)) != len(names):
        raise ConfigError(f"{option} must not repeat a name, got {names!r}")
    return names


def canonical_name(name: str) -> str:
    """The registered name for a format name or alias (``"text"`` -> ``"txt"``); unknown names unchanged.

    ``index.json`` files written under an alias (older ones say ``"text"``) load with the name.

    Example::

        canonical_name("JSON")  # 'jsonl'
        canonical_name("xml")   # 'xml'
    """
    fmt = _BY_NAME.get(str(name).strip().lower())
    return fmt.name if fmt is not None else name


def detect_format(path: str) -> str | None:
    """The format name that ``path``'s name tells, or ``None``; compression suffixes are looked through.

    Example::

        detect_format("data/part-00000.csv.zst")  # 'csv'
        detect_format("notes.md")                  # None
    """
    name = strip_compression_suffix(str(path).rstrip("/").rsplit("/", 1)[-1])
    for fmt in FORMATS.values():
        if name.endswith(fmt.suffixes):
            return fmt.name
    return None


def format_of_reader(reader: DataReader) -> str:
    """The format name recorded for chunks counted by ``reader``: a built-in's format, else its class name.

    Example::

        format_of_reader(JsonLineDataReader())  # 'jsonl'
    """
    for fmt in FORMATS.values():
        if type(reader) is fmt.reader:
            return fmt.name
    return type(reader).__name__


def check_reader_fits(reader: DataReader, path: str) -> None:
    """Refuse a file whose name says another registered format than the built-in ``reader`` reads.

    Called by each built-in reader's ``read_file`` before it reads, so that a reader that does not
    fit the files (the CSV reader on ``.jsonl.gz`` files) fails on the first chunk instead of
    yielding garbage keys. Compression suffixes are looked through; a file whose suffix no format
    claims is not judged, and neither is a reader of a class that is no registered format's reader
    nor a subclass of one.

    Raises:
        DataFormatError: naming the file, the reader's format and the format its suffix says.

    Example::

        check_reader_fits(CsvDataReader(), "data/a.jsonl.gz")
        # DataFormatError: data/a.jsonl.gz: a.jsonl.gz looks like jsonl, but this is the csv
        # reader (CsvDataReader); use JsonLineDataReader / reader='jsonl'
    """
    said = detect_format(path)
    if said is None:
        return
    mine = None
    for fmt in FORMATS.values():
        if isinstance(reader, fmt.reader) and (mine is None or issubclass(fmt.reader, mine.reader)):
            mine = fmt  # the most derived registered reader class the reader is an instance of
    if mine is None or mine.name == said:
        return
    other = FORMATS[said]
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    raise DataFormatError(
        f"{name} looks like {said}, but this is the {mine.name} reader ({type(reader).__name__}); "
        f"use {other.reader.__name__} / reader={said!r}",
        path,
    )


def split_formats() -> list[str]:
    """The names of the formats ``split`` reads and writes."""
    return [f.name for f in FORMATS.values() if f.split_source is not None]
