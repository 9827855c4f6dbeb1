"""JSON Lines chunks: one JSON object per line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core.errors import DataFormatError
from pyloader_core.formats.base import Format, LineSource, check_names, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.compression import check_line_encoding, iter_block_views, iter_blocks, iter_lines, strip_bom
from pyloader_core.skips import report_bad_record

_orjson: Any
try:  # orjson is much faster and validates UTF-8 itself; json is the reference and the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["FORMAT", "JsonLineDataReader"]

logger = logging.getLogger(__name__)

_JSON_ERRORS: tuple[type[BaseException], ...] = (ValueError,)  # orjson.JSONDecodeError and json's both subclass it

#: A line holding a run of 19+ digits may hold an integer outside orjson's 64-bit range, which orjson
#: would turn into a float: such lines are parsed with json (exact Python ints); a float's long digit
#: run does no harm. Found by mapping digits to "0" and the rest to " " (a few times faster than a regex).
_DIGITS_TO_ZERO = bytes(ord("0") if 0x30 <= c <= 0x39 else ord(" ") for c in range(256))
_LONG_RUN = b"0" * 19
#: A ``\uD800``-``\uDFFF`` escape: maybe a lone surrogate (a pair is one valid character).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_text(record: Any, text: str, path: str, lineno: int) -> None:
    """Refuse a record that holds a lone surrogate, which json lets through and orjson refuses."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise DataFormatError(
            f"invalid JSON text: lone surrogate {bad} in a string (not a Unicode character)", path, lineno
        ) from None


class JsonLineDataReader(DataReader):
    """Reads JSON Lines files (``.jsonl``, optionally ``.jsonl.gz`` / ``.jsonl.zst``) into columns.

    Each non-blank line must hold one JSON object; its keys become the columns. Blank (empty or
    whitespace-only) lines are ignored and are not counted as samples. Without ``fields``, every
    record must have exactly the key set of the file's first valid record (columns keep that
    record's key order); with ``fields``, only those keys are returned, in that order, other keys are
    ignored and a record missing one of them is bad.

    A bad line (invalid JSON, invalid text encoding, not an object, or a different key set) gives a
    :class:`~pyloader_core.errors.DataFormatError` naming the file and the 1-based line number,
    reported through :func:`~pyloader_core.skips.report_bad_record`: raised by default, skipped
    and counted under ``on_error="skip"``.

    Values are what :func:`json.loads` makes of the line, whether or not ``orjson`` (the ``fast``
    extra) is installed: integers of any size are exact ``int``; ``NaN``, ``Infinity`` and
    ``-Infinity`` (and out-of-range numbers such as ``1e400``) are accepted as the floats json makes
    of them. A string holding a lone surrogate (``"\\ud800"`` without its pair: not a Unicode
    character, and it would fail later when encoded) makes the line bad, with and without orjson.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        fields: the keys to return (in this order); ``None`` returns every key.
        encoding: the text encoding of the file (must write ``"\\n"`` as one byte).

    Example::

        reader = JsonLineDataReader(batch_size=32, fields=["text", "label"])
        columns, n = reader.read_file("data/part-0000.jsonl.gz")
        columns["label"][:3]  # [0, 1, 1]
    """

    def __init__(
        self,
        batch_size: int = 4,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        fields: Sequence[str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        self.fields: list[str] | None = check_names(fields, "fields")
        self.encoding = check_line_encoding(encoding)
        # orjson only reads UTF-8: other encodings (and lines orjson leaves to json) decode to str first
        self._bytes_direct = _orjson is not None and self.encoding == "utf-8"

    def _decode(self, line: bytes, path: str, lineno: int) -> Any:
        """Parse one raw line as :func:`json.loads` would; raises DataFormatError.

        orjson parses a line only where its result is known to equal json's: a line it refuses
        (``NaN``, ``Infinity``, ``1e400``, lone surrogates, bad JSON) or one that may hold an
        integer beyond 64 bits goes to json, which decides.
        """
        if self._bytes_direct and _LONG_RUN not in line.translate(_DIGITS_TO_ZERO):
            try:
                return _orjson.loads(line)
            except _JSON_ERRORS:
                pass
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"invalid {self.encoding} text: {exc}", path, lineno) from None
        try:
            record = json.loads(text)
        except _JSON_ERRORS as exc:
            raise DataFormatError(f"invalid JSON: {exc}", path, lineno) from None
        except RecursionError:
            raise DataFormatError("invalid JSON: nested too deeply", path, lineno) from None
        _check_text(record, text, path, lineno)
        return record

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({key: list_of_values}, n_sample)``."""
        check_reader_fits(self, path)
        fields = self.fields
        columns: dict[str, Any] | None = {f: [] for f in fields} if fields is not None else None
        keyset: frozenset[str] | None = frozenset(fields) if fields is not None else None
        n = 0
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1:
                    line = strip_bom(line, self.encoding)
                if not line.strip():
                    continue
                try:
                    record = self._decode(line, path, lineno)
                    if not isinstance(record, dict):
                        raise DataFormatError(f"expected a JSON object, got {type(record).__name__}", path, lineno)
                    if columns is None:  # first valid record fixes the schema
                        columns = {k: [] for k in record}
                        keyset = frozenset(record)
                    elif fields is None:
                        if record.keys() != keyset:
                            raise DataFormatError(_drift_message(keyset, record), path, lineno)
                    elif not keyset.issubset(record.keys()):  # type: ignore[union-attr]
                        missing = sorted(f for f in fields if f not in record)
                        raise DataFormatError(f"record lacks field(s) {missing}", path, lineno)
                except DataFormatError as exc:
                    report_bad_record(exc, path, lineno)
                    continue
                for key, values in columns.items():
                    values.append(record[key])
                n += 1
        logger.debug("read %d samples from %s", n, path)
        return (columns if columns is not None else {}), n

    def count_samples(self, path: str) -> int:
        """The number of non-blank lines of ``path`` (no JSON decoding).

        Bad lines are counted too, so under a skip policy this can exceed what
        :meth:`read_file` returns.
        """
        # The loader asks for counts in the training process, one file before its chunk is read, so
        # this is on the consumer's clock: numpy finds the newlines of each block in place. Only a
        # file with a line that starts with whitespace (rare: JSON lines start with "{") needs the
        # exact pass that tells blank lines from indented records.
        newlines, line_open, first = 0, False, True
        with iter_block_views(path) as blocks:
            for block in blocks:
                if first:
                    head = bytes(block[:4])
                    block = block[len(head) - len(strip_bom(head, self.encoding)) :]
                first = False
                if not len(block):
                    continue
                codes = np.frombuffer(block, dtype=np.uint8)
                ends = np.flatnonzero(codes == 0x0A)
                starts = ends[ends + 1 < len(codes)] + 1
                if _WHITESPACE[codes[starts]].any() or (not line_open and _WHITESPACE[codes[0]]):
                    return self._count_exactly(path)
                newlines += len(ends)
                line_open = codes[-1] != 0x0A
        return newlines + (1 if line_open else 0)

    def _count_exactly(self, path: str) -> int:
        """:meth:`count_samples` for files with lines that start with whitespace (a regex pass per block)."""
        n, carry, first = 0, b"", True
        with iter_blocks(path) as blocks:
            for block in blocks:
                if first:
                    block = strip_bom(block, self.encoding)
                first = False
                data = carry + block
                end = data.rfind(b"\n") + 1  # whole lines only; the rest waits for the next block
                data, carry = data[:end], data[end:]
                n += data.count(b"\n") - _blank_lines(data)
        return n + (1 if carry.strip() else 0)


# A newline followed by a blank line, and a blank first line: found by searching for the newline in C.
_BLANK_LINE_AFTER = re.compile(rb"\n(?=[ \t\r\f\v]*\n)")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r\f\v]*\n")


_WHITESPACE = np.zeros(256, dtype=bool)  # bytes.strip()'s whitespace, by byte value
_WHITESPACE[list(b" \t\n\r\f\v")] = True


def _blank_lines(data: bytes) -> int:
    """Blank (empty or whitespace-only) lines among the whole lines of ``data`` (one regex pass in C)."""
    return len(_BLANK_LINE_AFTER.findall(data)) + (1 if _BLANK_FIRST_LINE.match(data) else 0)


def _drift_message(keyset: frozenset[str] | None, record: dict[str, Any]) -> str:
    expected = keyset or frozenset()
    missing = sorted(expected - record.keys())
    unexpected = sorted(record.keys() - expected)
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    return "keys differ from the file's first record (schema drift): " + ", ".join(parts)


def _first_object(line: bytes, path: str, lineno: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise DataFormatError(f"invalid JSON: {exc}", path, lineno) from None
    if not isinstance(record, dict):
        raise DataFormatError(f"expected a JSON object, got {type(record).__name__}", path, lineno)
    return record


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    with iter_lines(path) as lines:
        for lineno, line in enumerate(lines, 1):
            if line.strip():
                rec = _first_object(strip_bom(line), path, lineno)
                return {k: type(v).__name__ for k, v in rec.items()}, rec
    return None


def _check_json_object(line: bytes, path: str, lineno: int) -> None:
    """``split``'s check of a jsonl input's first record: a JSON object, or a :class:`DataFormatError`."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise DataFormatError(f"not JSON lines (the first record is not valid JSON: {exc})", path, lineno) from None
    if not isinstance(record, dict):
        raise DataFormatError(
            f"not JSON lines (the first record is a {type(record).__name__}, not an object)", path, lineno
        )


class _SplitLines(LineSource):
    """``split``'s framing: one non-blank line a record (the first must be a JSON object)."""

    def records(self, path: str) -> Iterator[bytes]:
        checked = False
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1:
                    line = strip_bom(line)
                if not line.endswith(b"\n"):
                    line += b"\n"
                if line.isspace():
                    continue
                if not checked:
                    _check_json_object(line, path, lineno)
                    checked = True
                yield line


FORMAT = Format(
    name="jsonl",
    suffixes=(".jsonl", ".json", ".ndjson", ".jsonlines"),
    aliases=("json", "jsonlines"),
    reader=JsonLineDataReader,
    first_record=_first_record,
    split_source=_SplitLines,
)
