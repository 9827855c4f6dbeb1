"""CSV chunks: a header row, then one sample per row."""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.reader import Columns, DataReader
from pyloader_core.readers._open import check_line_encoding, iter_lines
from pyloader_core.skips import report_bad_record

__all__ = ["CsvDataReader"]

logger = logging.getLogger(__name__)


class _DecodedLines:
    """Feeds ``csv.reader`` decoded physical lines, keeping the line number and bad lines.

    A line that cannot be decoded is passed on with replacement characters and remembered in
    :attr:`bad`, so that the row holding it can be reported with its line number while the rest
    of the file is still parsed.
    """

    def __init__(self, lines: Iterable[bytes], encoding: str) -> None:
        self._lines = iter(lines)
        self._encoding = encoding
        self._bom = codecs.BOM_UTF8 if encoding == "utf-8" else None
        self.lineno = 0
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.lineno += 1
        if self.lineno == 1 and self._bom is not None and line.startswith(self._bom):
            line = line[len(self._bom) :]
        try:
            return line.decode(self._encoding)
        except UnicodeDecodeError as exc:
            self.bad[self.lineno] = str(exc)
            return line.decode(self._encoding, errors="replace")


def _rows(lines: Iterable[bytes], encoding: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """``(first_line, fields, error)`` for each non-blank row; ``fields`` is None when it failed."""
    src = _DecodedLines(lines, encoding)
    reader = csv.reader(src, delimiter=delimiter, strict=True)
    while True:
        start = src.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"malformed CSV: {exc}"
            continue
        end = src.lineno
        bad = [n for n in range(start, end + 1) if n in src.bad]
        if bad:
            yield start, None, f"invalid {encoding} text on line {bad[0]}: {src.bad[bad[0]]}"
            continue
        if not row:  # blank line
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
        with iter_lines(path) as lines:
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

        Parsed with :mod:`csv`, so newlines inside quoted fields are counted right; rows that
        :meth:`read_file` would reject are counted too.
        """
        with iter_lines(path) as lines:
            rows = sum(1 for _ in _rows(lines, self.encoding, self.delimiter))
        return max(rows - 1, 0)
