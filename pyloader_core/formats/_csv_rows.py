"""The CSV reader's rows: csv's process-wide field size limit held safely, and decoded rows with line numbers.

Not a format module (the registry skips names that start with ``_``): :mod:`.csv` uses it.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import os
import sys
import threading
from collections.abc import Iterable, Iterator

from pyloader_core.storage.compression import is_compressed, strip_bom
from pyloader_core.storage.paths import is_url

__all__ = ["chunk_chars", "csv_rows", "field_limit"]


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
def field_limit(needed: int) -> Iterator[None]:
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


def chunk_chars(path: str) -> int:
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


def csv_rows(lines: Iterable[bytes], encoding: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
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
