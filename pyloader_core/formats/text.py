"""Plain-text chunks: one sample per line."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats.base import Format, LineSource
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.compression import check_line_encoding, iter_lines, strip_bom
from pyloader_core.skips import report_bad_record

__all__ = ["FORMAT", "TextLineDataReader"]

logger = logging.getLogger(__name__)


class TextLineDataReader(DataReader):
    """Reads text files (optionally ``.gz`` / ``.zst``) into one column, one sample per line.

    The line ending (``\\n`` or ``\\r\\n``) is stripped; nothing else is. A final line without a
    newline is a sample; the empty string after a trailing newline is not. A UTF-8 byte-order mark
    at the start of the file is dropped. With ``skip_blank=True`` empty and whitespace-only lines
    are left out (and not counted). A line that is not valid text in ``encoding`` gives a
    :class:`~pyloader_core.errors.DataFormatError` naming the file and the 1-based line number,
    reported through :func:`~pyloader_core.skips.report_bad_record`.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        key: the name of the column.
        skip_blank: leave out empty and whitespace-only lines.
        encoding: the text encoding of the file (must write ``"\\n"`` as one byte).

    Example::

        reader = TextLineDataReader(batch_size=64, key="sentence", skip_blank=True)
        columns, n = reader.read_file("corpus/part-0000.txt.gz")
        columns["sentence"][0]  # 'The first line'
    """

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        key: str = "text",
        skip_blank: bool = False,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        if not isinstance(key, str):
            raise ConfigError(f"key must be a str, got {key!r}")
        self.key = key
        self.skip_blank = bool(skip_blank)
        self.encoding = check_line_encoding(encoding)

    def _raw_lines(self, lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
        """(lineno, content without line ending) for each kept line."""
        for lineno, line in enumerate(lines, 1):
            if lineno == 1:
                line = strip_bom(line, self.encoding)
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            if self.skip_blank and not line.strip():
                continue
            yield lineno, line

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({key: [line, ...]}, n_sample)``."""
        out: list[str] = []
        encoding = self.encoding
        with iter_lines(path) as lines:
            for lineno, line in self._raw_lines(lines):
                try:
                    out.append(line.decode(encoding))
                except UnicodeDecodeError as exc:
                    report_bad_record(DataFormatError(f"invalid {encoding} text: {exc}", path, lineno), path, lineno)
        logger.debug("read %d lines from %s", len(out), path)
        return {self.key: out}, len(out)

    def count_samples(self, path: str) -> int:
        """The number of lines of ``path`` (non-blank ones with ``skip_blank``), without decoding.

        Undecodable lines are counted too, so under a skip policy this can exceed what
        :meth:`read_file` returns.
        """
        with iter_lines(path) as lines:
            if not self.skip_blank:
                return sum(1 for _ in lines)
            return sum(1 for _ in self._raw_lines(lines))


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    with iter_lines(path) as lines:
        for line in lines:
            text = strip_bom(line).rstrip(b"\r\n").decode("utf-8", "replace")
            return {"text": "str"}, {"text": text}
    return None


class _SplitLines(LineSource):
    """``split``'s framing: every line a record, blank ones included (as the reader counts them)."""

    def records(self, path: str) -> Iterator[bytes]:
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1:
                    line = strip_bom(line)
                yield line if line.endswith(b"\n") else line + b"\n"


FORMAT = Format(
    name="txt",
    suffixes=(".txt", ".text"),
    aliases=("text",),
    reader=TextLineDataReader,
    first_record=_first_record,
    counts_like=lambda reader: not getattr(reader, "skip_blank", False),
    split_source=_SplitLines,
)
