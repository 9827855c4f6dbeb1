"""CSV chunks: a header row, then one sample per row."""

from __future__ import annotations

import collections
import contextlib
import csv
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats.base import Format, LineSource
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.compression import check_line_encoding, is_compressed, iter_lines, strip_bom
from pyloader_core.storage.paths import is_url
from pyloader_core.skips import report_bad_record

__all__ = ["CsvDataReader", "FORMAT"]

logger = logging.getLogger(__name__)


# -- csv's field size limit -------------------------------------------------------------------
#
# ``csv.field_size_limit`` is one process-wide setting (default 131,072 characters) that refuses
# longer fields as malformed. A valid field can never be longer than the chunk's text, so while a
# chunk is parsed the limit is raised to the chunk's size. Concurrent reads (thread workers) share
# the setting: it is raised to the largest size any of them needs and put back to what it was when
# the last of them is done, so that it never drops below what a running read needs, and never stays
# raised afterwards.

_LIMIT_LOCK = threading.Lock()
_limit_users = 0  # reads in progress
_limit_saved = 0  # the limit before the first of them began


def _set_field_limit(n: int) -> None:
    try:
        csv.field_size_limit(n)
    except OverflowError:  # a C long is 32 bits (Windows)
        csv.field_size_limit(2**31 - 1)


@contextlib.contextmanager
def _field_limit(needed: int) -> Iterator[None]:
    """Keep csv's field size limit at least ``needed`` while the block runs."""
    global _limit_users, _limit_saved
    with _LIMIT_LOCK:
        current = csv.field_size_limit()
        if _limit_users == 0:
            _limit_saved = current
        _limit_users += 1
        if needed > current:
            _set_field_limit(needed)
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _limit_users -= 1
            if _limit_users == 0:
                csv.field_size_limit(_limit_saved)


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's reads: start over with a fresh lock."""
    global _LIMIT_LOCK, _limit_users
    _LIMIT_LOCK = threading.Lock()
    if _limit_users:
        _limit_users = 0
        csv.field_size_limit(_limit_saved)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _chunk_chars(path: str) -> int:
    """An upper bound on the length of any field of ``path``: its size, when that tells it.

    A plain local file's text is at most as many characters as it has bytes. A compressed or remote
    chunk's decoded size is not known before it is read: there the limit is lifted altogether.
    """
    if not is_url(path) and not is_compressed(path):
        try:
            return os.path.getsize(path) + 1
        except OSError:
            pass  # the open that follows reports it
    return sys.maxsize


class _DecodedLines:
    """Feeds ``csv.reader`` decoded physical lines, keeping their numbers, and can replay them.

    A line that cannot be decoded is passed on with replacement characters and remembered in
    :attr:`bad`, so that the row holding it can be reported with its line number while the rest
    of the file is still parsed. The lines of the row being parsed are kept in :attr:`taken`
    (one line for most rows): when the row turns out malformed, :meth:`replay_after_first` hands
    all but its first line to the parser again.
    """

    def __init__(self, lines: Iterable[bytes], encoding: str) -> None:
        self._lines = iter(lines)
        self._encoding = encoding
        self._replay: collections.deque[tuple[int, str]] = collections.deque()
        self._read = 0  # lines read from the file so far
        self.bad: dict[int, str] = {}
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._replay:
            item = self._replay.popleft()
        else:
            line = next(self._lines)
            self._read += 1
            number = self._read
            if number == 1:
                line = strip_bom(line, self._encoding)
            try:
                text = line.decode(self._encoding)
            except UnicodeDecodeError as exc:
                self.bad[number] = str(exc)
                text = line.decode(self._encoding, errors="replace")
            item = (number, text)
        self.taken.append(item)
        return item[1]

    def next_row(self) -> int:
        """Start a new row; returns the number of its first line."""
        self.taken.clear()
        return self._replay[0][0] if self._replay else self._read + 1

    def replay_after_first(self) -> None:
        """Parse the current row's lines again, all but the first (the bad one), as new rows."""
        self._replay.extendleft(reversed(self.taken[1:]))
        self.taken.clear()


def _rows(lines: Iterable[bytes], encoding: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """``(first_line, fields, error)`` for each non-blank row; ``fields`` is None when it failed.

    The first row is the header. A row that is not well-formed CSV (malformed quoting: a stray
    quote that runs on into a later quoted field or to the end of the file), or that spans several
    lines and has another field count than the header (a stray quote that found a partner), costs
    only its first line: parsing starts again at its second line, so every line the bad row
    swallowed is parsed, and delivered or reported, as a row of its own. Each line thus ends up in
    exactly one yielded row, and :meth:`CsvDataReader.count_samples` counts the same rows that
    :meth:`CsvDataReader.read_file` delivers or reports.
    """
    src = _DecodedLines(lines, encoding)
    reader = csv.reader(src, delimiter=delimiter, strict=True)
    width: int | None = None
    while True:
        start = src.next_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            src.replay_after_first()
            yield start, None, f"malformed CSV: {exc}"
            continue
        if not row:  # blank line
            continue
        taken = src.taken
        if width is None:
            width = len(row)
        elif len(taken) > 1 and len(row) != width:
            end = taken[-1][0]
            src.replay_after_first()
            message = f"row spans lines {start}-{end} and has {len(row)} fields, the header has {width}"
            yield start, None, message + " (an unbalanced quote?)"
            continue
        bad = [n for n, _ in taken if n in src.bad]
        if bad:
            yield start, None, f"invalid {encoding} text on line {bad[0]}: {src.bad[bad[0]]}"
            continue
        yield start, row, None


class CsvDataReader(DataReader):
    """Reads CSV files (optionally ``.gz`` / ``.zst``) into columns named by the header row.

    Values are strings unless ``converters`` maps a column to a callable (``int``, ``float``, any
    ``str -> value`` function). Quoted fields may hold the delimiter and newlines. Blank lines are
    ignored (the header is the first non-blank row); an empty file gives ``({}, 0)`` and a
    header-only file empty columns for the header's names. A row with the wrong number of fields,
    a field that cannot be converted, malformed quoting or undecodable text gives a
    :class:`~pyloader_core.errors.DataFormatError` naming the file and the row's first line number
    (1-based), reported through :func:`~pyloader_core.skips.report_bad_record`.

    A malformed row costs only its first line: a stray quote does not swallow the rows after it.
    When a row is not well-formed CSV, or spans several lines with the wrong field count, its first
    line is reported and parsing starts again at its second line, so under ``on_error="skip"``
    every data row :meth:`count_samples` counts is either delivered or reported as skipped.
    Fields may be as long as the chunk (csv's own 131,072-character limit is raised while a chunk
    is parsed, and put back afterwards).

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        delimiter: the one-character field separator.
        converters: ``{column: callable}`` applied to that column's string values.
        encoding: the text encoding of the file (must write ``"\\n"`` as one byte).

    Example::

        reader = CsvDataReader(batch_size=32, converters={"label": int})
        columns, n = reader.read_file("data/part-0000.csv")
        columns["label"][:3]  # [0, 1, 1]
    """

    counts_cheaply = False  # counting is a parse (quoted fields may hold newlines): see DataReader

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        delimiter: str = ",",
        converters: Mapping[str, Callable[[str], Any]] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
            raise ConfigError(f"delimiter must be one character other than a quote or newline, got {delimiter!r}")
        converters = dict(converters or {})
        for name, fn in converters.items():
            if not isinstance(name, str) or not callable(fn):
                raise ConfigError(f"converters must map column names to callables, got {name!r}: {fn!r}")
        self.delimiter = delimiter
        self.converters: dict[str, Callable[[str], Any]] = converters
        self.encoding = check_line_encoding(encoding)

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({column: list_of_values}, n_sample)``."""
        header: list[str] | None = None
        columns: list[list[Any]] = []
        convs: list[tuple[int, Callable[[str], Any]]] = []
        n = 0
        with _field_limit(_chunk_chars(path)), iter_lines(path) as lines:
            for lineno, row, error in _rows(lines, self.encoding, self.delimiter):
                if header is None:
                    if row is None:  # a broken header row leaves nothing to go on
                        raise DataFormatError(f"bad header row: {error}", path, lineno)
                    header = self._check_header(row, path)
                    columns = [[] for _ in header]
                    convs = [(header.index(name), fn) for name, fn in self.converters.items()]
                    continue
                try:
                    if row is None:
                        raise DataFormatError(error or "malformed row", path, lineno)
                    if len(row) != len(header):
                        raise DataFormatError(f"row has {len(row)} fields, the header has {len(header)}", path, lineno)
                    values: list[Any] = row
                    for i, fn in convs:
                        try:
                            values[i] = fn(row[i])
                        except Exception as exc:  # noqa: BLE001 - any converter failure is bad data
                            raise DataFormatError(
                                f"column {header[i]!r}: cannot convert {row[i]!r} with "
                                f"{getattr(fn, '__name__', fn)!r}: {type(exc).__name__}: {exc}",
                                path,
                                lineno,
                            ) from None
                except DataFormatError as exc:
                    report_bad_record(exc, path, lineno)
                    continue
                for col, value in zip(columns, values, strict=True):
                    col.append(value)
                n += 1
        if header is None:
            return {}, 0
        logger.debug("read %d rows from %s", n, path)
        return dict(zip(header, columns, strict=True)), n

    def _check_header(self, header: list[str], path: str) -> list[str]:
        seen = set(header)
        if len(seen) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise DataFormatError(f"header repeats column name(s) {dupes}", path, None)
        missing = sorted(set(self.converters) - seen)
        if missing:
            raise DataFormatError(f"converters name column(s) {missing} not in the header {header}", path, None)
        return header

    def count_samples(self, path: str) -> int:
        """The number of non-blank data rows of ``path`` (the header is not counted).

        Parsed with :mod:`csv` as :meth:`read_file` parses it, so newlines inside quoted fields are
        counted right; rows that :meth:`read_file` would reject are counted too (a malformed row as
        one, and each line after its first as the rows they are parsed as).
        """
        with _field_limit(_chunk_chars(path)), iter_lines(path) as lines:
            rows = sum(1 for _ in _rows(lines, self.encoding, self.delimiter))
        return max(rows - 1, 0)


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    import io

    from pyloader_core.storage.compression import open_binary

    with open_binary(path) as raw:
        rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))
        header = next((r for r in rows if r), None)
        first = next((r for r in rows if r), None)
    if header is None:
        return None
    return {h: "str" for h in header}, dict(zip(header, first or [], strict=False))


class _SplitRows(LineSource):
    """``split``'s framing: rows found by quote parity (a row ends at a newline outside quotes).

    The header row goes to :attr:`header` (written atop every chunk); every input must have the same.
    """

    _header_from = ""

    def records(self, path: str) -> Iterator[bytes]:
        parts: list[bytes] = []
        quotes = 0
        header_seen = False
        start = 0
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1:
                    line = strip_bom(line)
                if not parts:
                    start = lineno
                    if line.isspace():
                        continue  # a blank line between rows
                parts.append(line)
                quotes += line.count(b'"')
                if quotes % 2:
                    continue  # inside a quoted field: the row goes on
                row = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, quotes = [], 0
                if not row.endswith(b"\n"):
                    row += b"\n"
                if not header_seen:
                    header_seen = True
                    self._check_header(row, path)
                    continue
                yield row
        if parts:
            raise DataFormatError("unterminated quoted field at the end of the file", path, start)

    def _check_header(self, row: bytes, path: str) -> None:
        if self.header is None:
            self.header, self._header_from = row, path
        elif row.rstrip(b"\r\n") != self.header.rstrip(b"\r\n"):
            raise DataFormatError(
                f"CSV header {row.rstrip().decode('utf-8', 'replace')!r} differs from "
                f"{self.header.rstrip().decode('utf-8', 'replace')!r} of {self._header_from}",
                path,
                1,
            )


FORMAT = Format(
    name="csv",
    suffixes=(".csv",),
    reader=CsvDataReader,
    first_record=_first_record,
    counts_like=lambda reader: getattr(reader, "delimiter", ",") == ",",
    split_source=_SplitRows,
)
