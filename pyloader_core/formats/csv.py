"""CSV chunks: a header row, then one sample per row."""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats._csv_rows import chunk_chars, csv_rows, field_limit
from pyloader_core.formats._csv_types import (
    UseStdlib,
    arrow_convert,
    arrow_infer,
    arrow_modules,
    drift_message,
    infer_kind,
    is_kind,
    to_kind,
)
from pyloader_core.formats.base import Format, LineSource, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.compression import (
    check_line_encoding,
    iter_lines,
    open_binary,
    strip_bom,
)
from pyloader_core.skips import report_bad_record

__all__ = ["CsvDataReader", "FORMAT"]

logger = logging.getLogger(__name__)


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


class CsvDataReader(DataReader):
    """Reads CSV files (optionally ``.gz`` / ``.zst``) into columns named by the header row.

    Column types are inferred (``infer_types=True``, the default): a column whose cells are all
    integers (``[+-]digits``, within int64) comes back as an int64 numpy array, all numbers (also
    ``1.5e3``, ``inf``, ``nan``) as float64, all ``true``/``false`` (``True``, ``TRUE``, ...) as
    bool; any other column is a list of str. Empty cells are missing values: an int column with an
    empty cell (or a value beyond int64) is float64 with ``NaN`` there, a float column has ``NaN``
    there, a bool column with an empty cell and an all-empty column stay str. Cells are not
    stripped (``" 1"`` is a string). The types are fixed by the first chunk with rows that this
    reader instance reads (each process worker's copy by its own first chunk); every later chunk is
    held to them: a cell that is not of its column's type (``"abc"``, or ``"1.5"`` or an empty cell
    in an int64 column: there is no widening) is a bad row, a :class:`DataFormatError` naming the
    file, line and column (skipped under ``on_error="skip"``). ``converters`` maps a column to a
    callable (``int``, ``float``, any ``str -> value`` function) that replaces inference for it;
    ``infer_types=False`` gives every other column as strings. With ``pyarrow`` installed, files
    without quote characters are parsed by ``pyarrow.csv``; the result is the same as the
    standard-library path's, which reads the others and reports bad rows. Quoted fields may hold the delimiter and newlines. Blank lines are
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
        infer_types: infer int64 / float64 / bool columns (see above); ``False``: strings.

    Example::

        reader = CsvDataReader(batch_size=32, converters={"name": str.strip})
        columns, n = reader.read_file("data/part-0000.csv")
        columns["label"][:3]  # array([0, 1, 1])
        reader.column_types     # {'pixel0': 'int64', ..., 'label': 'int64'} (converted ones absent)
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
        infer_types: bool = True,
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
        self.infer_types = bool(infer_types)
        #: ``{column: kind}`` fixed by the first chunk with rows (see :data:`KINDS`); each entry is
        #: set once (``dict.setdefault``, atomic, so thread workers agree) and travels with the reader.
        self.column_types: dict[str, str] = {}
        self._types_from: dict[str, str] = {}

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({column: list_or_array}, n_sample)``."""
        check_reader_fits(self, path)
        if self.infer_types:
            arrow = arrow_modules()
            if arrow is not None and _is_utf8(self.encoding) and ord(self.delimiter) < 128:
                try:
                    return self._read_arrow(arrow, path)
                except UseStdlib:
                    pass
        return self._read_stdlib(path)

    def prepare(self, files: Sequence[str]) -> None:
        """Fix the column types from the first of ``files`` with rows (in file order), before any worker starts.

        So every worker, rank and process holds every chunk to the same types, whichever chunk it
        happens to read first; a no-op once the types are fixed or with ``infer_types=False``.
        """
        if not self.infer_types or self.column_types or getattr(self, "_prepared", False):
            return
        self._prepared = True  # once, even when converters leave no column to type
        for path in files:
            if self.read_file(path)[1]:
                logger.debug("CSV column types fixed from %s: %s", path, self.column_types)
                return

    def _kind(self, name: str, infer: Callable[[], str], path: str) -> str:
        """The type fixed for column ``name``; the first chunk to ask fixes it (``infer()``)."""
        kind = self.column_types.get(name)
        if kind is None:
            kind = self.column_types.setdefault(name, infer())
            self._types_from.setdefault(name, path)
        return kind

    def _read_arrow(self, arrow: tuple[Any, Any, Any], path: str) -> tuple[Columns, int]:
        """The pyarrow path, for files it parses exactly as :meth:`_read_stdlib` does; else :class:`UseStdlib`.

        Quote characters and bare carriage returns are left to the standard library (its strict
        quoting rules, and its line numbers for bad rows), and so is every file pyarrow refuses, a
        header-only file, a converter failure and a cell not of its column's fixed type.
        """
        pa, pacsv, pc = arrow
        try:
            with open_binary(path) as f:
                data = f.read()
        except Exception:  # noqa: BLE001 - the standard-library path names the error
            raise UseStdlib from None
        if b'"' in data or data.count(b"\r") != data.count(b"\r\n"):
            raise UseStdlib
        body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        first = next((line for line in body.split(b"\n") if line not in (b"", b"\r")), None)
        if first is None:
            raise UseStdlib
        try:
            header = first.rstrip(b"\r").decode("utf-8").split(self.delimiter)
        except UnicodeDecodeError:
            raise UseStdlib from None
        header = self._check_header(header, path)
        try:
            table = pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(use_threads=False, encoding="utf8"),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter, quote_char=False, escape_char=False, ignore_empty_lines=True
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={h: pa.string() for h in header},
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=True,
                ),
            )
        except Exception:  # noqa: BLE001 - malformed rows, bad UTF-8: reported by the standard library
            raise UseStdlib from None
        n = table.num_rows
        if n == 0 or table.column_names != header:
            raise UseStdlib
        out: dict[str, Any] = {}
        for name in header:
            col = table.column(name)
            fn = self.converters.get(name)
            if fn is not None:
                try:
                    out[name] = [fn(v) for v in col.to_pylist()]
                except Exception:  # noqa: BLE001 - reported with its line by the standard library
                    raise UseStdlib from None
                continue
            kind = self._kind(name, lambda col=col: arrow_infer(pa, pc, col), path)
            out[name] = arrow_convert(pa, pc, col, kind)
        logger.debug("read %d rows from %s (pyarrow)", n, path)
        return out, n

    def _read_stdlib(self, path: str) -> tuple[Columns, int]:
        header: list[str] | None = None
        columns: list[list[Any]] = []
        convs: list[tuple[int, Callable[[str], Any]]] = []
        starts: list[int] = []  # the line each delivered row starts on
        n = 0
        with field_limit(chunk_chars(path)), iter_lines(path) as lines:
            for lineno, row, error in csv_rows(lines, self.encoding, self.delimiter):
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
                starts.append(lineno)
                n += 1
        if header is None:
            return {}, 0
        out: dict[str, Any] = dict(zip(header, columns, strict=True))
        if self.infer_types and n:
            out, n = self._typed(out, header, starts, path)
        logger.debug("read %d rows from %s", n, path)
        return out, n

    def _typed(self, out: dict[str, Any], header: list[str], lines: list[int], path: str) -> tuple[Columns, int]:
        """The columns without converters as their types; rows with a cell not of its type are bad rows."""
        kinds = {
            name: self._kind(name, lambda values=out[name]: infer_kind(values), path)
            for name in header
            if name not in self.converters
        }
        bad: dict[int, DataFormatError] = {}
        for name, kind in kinds.items():
            if kind == "string":
                continue
            for i, v in enumerate(out[name]):
                if i not in bad and not is_kind(v, kind):
                    message = drift_message(name, v, kind, self._types_from.get(name, "an earlier chunk"))
                    bad[i] = DataFormatError(message, path, lines[i])
        n = len(lines)
        if bad:
            for i in sorted(bad):
                report_bad_record(bad[i], path, lines[i])
            keep = [i for i in range(n) if i not in bad]
            out = {name: [values[i] for i in keep] for name, values in out.items()}
            n = len(keep)
        for name, kind in kinds.items():
            out[name] = to_kind(out[name], kind)
        return out, n

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
        with field_limit(chunk_chars(path)), iter_lines(path) as lines:
            rows = sum(1 for _ in csv_rows(lines, self.encoding, self.delimiter))
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
