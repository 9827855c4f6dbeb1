"""The abstract :class:`DataReader`: how one chunk file becomes a dict of columns."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

from pyloader_core.errors import SampleCountError
from pyloader_core.options import check_int

__all__ = ["Columns", "DataReader", "check_columns", "count_or_read"]

logger = logging.getLogger(__name__)

#: A chunk's samples as columns: each key maps to a list (or numpy array) of ``n`` values.
Columns = dict[str, Sequence[Any]]


class DataReader(abc.ABC):
    """Reads one chunk file into columns. Subclass it and implement :meth:`read_file`.

    Args:
        batch_size: samples per batch yielded by the loader.
        shuffle: also shuffle the samples within each chunk (the loader's own ``shuffle``
            turns this on too). The loader's ``random_seed`` drives every shuffle, so results
            are reproducible whatever the number of workers.
        random_seed: kept for compatibility with the original API; the loader's seed wins.

    Example::

        class MyReader(DataReader):
            def read_file(self, path):
                with open(path) as f:
                    lines = f.read().splitlines()
                return {"text": lines}, len(lines)

        reader = MyReader(batch_size=32)
    """

    def __init__(self, batch_size: int = 16, shuffle: bool = False, random_seed: int = 42) -> None:
        check_int("batch_size", batch_size, 1, "a positive int")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.random_seed = random_seed

    @abc.abstractmethod
    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read the chunk at ``path``.

        Returns:
            ``(columns, n_sample)``: a dict of equally long lists (or arrays), and their length.
        """

    #: ``count_samples`` costs little next to ``read_file`` (a newline scan, file metadata). The loader
    #: then counts each file just before its chunk is submitted, so that batches can span chunks;
    #: readers whose count is a parse (CSV) say ``False`` and count only where counts are required.
    counts_cheaply: bool = True

    def prepare(self, files: Sequence[str]) -> None:
        """Called in the training process before a pass starts its workers (default: nothing).

        What a reader decides here travels to every worker (thread workers share the reader; forked
        ones inherit it; spawned ones get it pickled), so every worker reads alike: the CSV reader
        fixes its column types from the first file here.
        """

    def count_samples(self, path: str) -> int | None:
        """The number of samples in ``path`` without decoding it, or ``None`` if unknown.

        Used for ``len(loader)``, for exact sharding across ranks, and (see :attr:`counts_cheaply`)
        for batches that span chunks; override it when counting is cheaper than reading (line
        counts, file metadata).
        """
        return None


def check_columns(columns: Any, n_sample: Any, path: str, stage: str) -> int:
    """Validate ``(columns, n_sample)`` from ``stage`` and return ``n_sample``.

    Raises :class:`SampleCountError` naming the file and the key when they disagree.
    """
    if not isinstance(columns, dict):
        raise SampleCountError(f"{stage} must return a dict of lists, got {type(columns).__name__}", path)
    if isinstance(n_sample, bool) or not isinstance(n_sample, int) or n_sample < 0:
        try:
            n_sample = int(n_sample)  # numpy integers
        except (TypeError, ValueError):
            raise SampleCountError(f"{stage} returned n_sample={n_sample!r}, expected an int >= 0", path) from None
    for key, values in columns.items():
        try:
            length = len(values)
        except TypeError:
            raise SampleCountError(
                f"{stage} returned key {key!r} of type {type(values).__name__}, which has no length", path
            ) from None
        if length != n_sample:
            raise SampleCountError(f"{stage} returned key {key!r} with {length} values but n_sample={n_sample}", path)
    return n_sample


def count_or_read(reader: DataReader, path: str) -> int:
    """The one count-or-read path: ``reader.count_samples(path)``, else the length of a full read.

    Example::

        count_or_read(JsonLineDataReader(), "data/part-0.jsonl")  # 100
    """
    n = reader.count_samples(path)
    if n is None:
        logger.info("counting samples of %s by reading it (the reader has no count_samples)", path)
        columns, n = reader.read_file(path)
        n = check_columns(columns, n, path, "read_file")
    return int(n)
