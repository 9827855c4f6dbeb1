"""Record-level error policy shared by the engine and the readers.

A reader that finds a bad record calls :func:`report_bad_record`. Under the default policy
(``on_error="raise"``) that raises the error; under ``on_error="skip"`` the engine has installed a
:class:`SkipLog` for the duration of the ``read_file`` call and the record is counted instead. A
context variable keeps this per thread (and per process), so concurrent workers never mix logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

__all__ = ["SkipLog", "SkippedItem", "report_bad_record", "skip_policy"]


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """One skipped record (``record`` set) or whole file (``record`` is ``None``).

    ``records`` is how many records (samples) were lost with it: 1 for a record, the file's (or its
    planned range's) sample count for a file.
    """

    path: str
    record: int | None
    reason: str
    records: int = 1

    def location(self) -> str:
        return self.path if self.record is None else f"{self.path}:{self.record}"


@dataclasses.dataclass
class SkipLog:
    """The records skipped while one chunk was read."""

    items: list[SkippedItem] = dataclasses.field(default_factory=list)


_ACTIVE: contextvars.ContextVar[SkipLog | None] = contextvars.ContextVar("pyloader_skip_log", default=None)


@contextlib.contextmanager
def skip_policy(log: SkipLog | None) -> Iterator[None]:
    """Install ``log`` as the skip log of this thread (``None``: raise on bad records)."""
    token = _ACTIVE.set(log)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def report_bad_record(error: Exception, path: str, record: int | None) -> None:
    """Raise ``error``, or count it as a skipped record when a skip policy is active.

    Example::

        for lineno, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                report_bad_record(DataFormatError(str(exc), path, lineno), path, lineno)
    """
    log = _ACTIVE.get()
    if log is None:
        raise error
    log.items.append(SkippedItem(path, record, f"{type(error).__name__}: {error}"))
