"""Every file's sample count, by one path: ``index.json``, then the reader's ``count_samples``, then reading.

The plan needs counts to split files between ranks and workers and to cut global batches; the engine
asks one file at a time (:meth:`SampleCounts.of_file`, only what comes cheaply), a plan across ranks
asks for all (:meth:`SampleCounts.all`). Both are cached for the loader's life, so only the first
epoch pays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyloader_core.errors import ConfigError
from pyloader_core.index import lookup_counts
from pyloader_core.reader import DataReader, count_or_read

__all__ = ["SampleCounts"]


class SampleCounts:
    """The sample counts of ``files`` as ``reader`` reads them, found once.

    Example::

        counts = SampleCounts(loader.files, reader)
        counts.of_file(0, loader.files[0])     # 1000, or None when only a full read could tell
        counts.all()                           # [1000, 998, ...] (reads files that cannot be counted)
    """

    def __init__(self, files: Sequence[str], reader: DataReader) -> None:
        self.files = files
        self.reader = reader
        self._all: list[int] | None = None
        self._index_tried = False
        self._by_file: dict[int, int] = {}

    def _from_index(self) -> list[int] | None:
        if self._all is None and not self._index_tried:
            self._index_tried = True
            indexed = lookup_counts(self.files, self.reader)  # index.json beside the chunks: no counting pass
            if indexed is not None:
                self._all = list(indexed)
        return self._all

    def of_file(self, index: int, path: str) -> int | None:
        """File ``index``'s count if it comes cheaply (the index, an earlier count, or ``count_samples``
        when the reader :attr:`~DataReader.counts_cheaply`); ``None`` when unknown or counting failed
        (the worker's read then reports the real problem)."""
        known = self._from_index()
        if known is not None:
            return known[index]
        if index not in self._by_file:
            n: int | None = None
            if getattr(self.reader, "counts_cheaply", True):
                try:
                    got = self.reader.count_samples(path)
                    n = None if got is None else int(got)
                except Exception:  # noqa: BLE001 - the worker's read names the error with context
                    n = None
            if n is None:
                return None  # not cached: the file may be readable later
            self._by_file[index] = n
        return self._by_file[index]

    def all(self, *, read_if_unknown: bool = True) -> list[int] | None:
        """Every file's count; files the reader cannot count are read in full when ``read_if_unknown``,
        otherwise the answer is ``None``."""
        known = self._from_index()
        if known is not None:
            return known
        counts: list[int] = []
        for i, path in enumerate(self.files):
            if i in self._by_file:
                counts.append(self._by_file[i])
                continue
            got = self.reader.count_samples(path)
            if got is None:
                if not read_if_unknown:
                    return None
                got = count_or_read(self.reader, path)  # count_samples cannot tell: read the file
            counts.append(int(got))
        self._all = counts
        return counts

    def set(self, counts: Iterable[int]) -> None:
        """Give every file's count (in ``files`` order), e.g. counted once by a parent process."""
        values = [int(c) for c in counts]
        if len(values) != len(self.files) or any(c < 0 for c in values):
            raise ConfigError(f"set_sample_counts needs {len(self.files)} counts >= 0, got {len(values)}")
        self._all = values
