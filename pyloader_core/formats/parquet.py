"""Apache Parquet chunks, read row group by row group (needs ``pyarrow``).

URLs are read through :mod:`pyloader_core.storage` (an fsspec file with random access, or the
cached local copy).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core.errors import DataFormatError
from pyloader_core.formats._pyarrow import data_errors_named, import_pyarrow, is_primitive, selected_columns
from pyloader_core.formats.base import Format, check_names, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.access import open_binary_any
from pyloader_core.storage.paths import is_url

__all__ = ["FORMAT", "ParquetDataReader", "close_parquet", "open_parquet"]

logger = logging.getLogger(__name__)


def _pyarrow() -> tuple[Any, Any]:
    return import_pyarrow("ParquetDataReader", "parquet")


def _close(pf: Any) -> None:
    close = getattr(pf, "close", None)  # ParquetFile.close: pyarrow >= 8
    try:
        if close is not None:
            close()
    finally:
        source = getattr(pf, "_pyloader_source", None)
        if source is not None:
            source.close()


def open_parquet(path: str) -> Any:
    """The one Parquet opener: a ``pyarrow.parquet.ParquetFile`` for a local path or a URL.

    A URL is read through an fsspec file with random access (or the cached local copy). Close it
    with :func:`close_parquet`. Raises :class:`DataFormatError` naming ``path`` when it is not Parquet.

    Example::

        pf = open_parquet("data/part-0.parquet")
        try:
            pf.metadata.num_rows
        finally:
            close_parquet(pf)
    """
    pa, pq = _pyarrow()
    source: Any = None
    if is_url(path):  # fsspec file (random access), or the cached local copy
        source = open_binary_any(path, seekable=True)
    with data_errors_named(pa, path, "not a valid Parquet file"):
        try:
            pf = pq.ParquetFile(path if source is None else source)
        except Exception:
            if source is not None:
                source.close()
            raise
    if source is not None:
        pf._pyloader_source = source  # closed by close_parquet
    return pf


def close_parquet(pf: Any) -> None:
    """Close a file from :func:`open_parquet` (and the stream under it)."""
    _close(pf)


class ParquetDataReader(DataReader):
    """Reads Parquet files into columns, one row group at a time.

    Integer, float and boolean columns come back as numpy arrays, preallocated from the row count
    in the file's metadata and filled group by group, so the chunk is never held twice in memory.
    Float nulls become ``NaN``; an integer or boolean column that holds a null becomes a Python list
    with ``None`` for the nulls. Every other column (strings, binary, dates, decimals, lists,
    structs) comes back as a Python list, extended per row group.

    A file that is not valid Parquet gives a :class:`~pyloader_core.errors.DataFormatError` naming
    the file; so does a requested column that the file lacks. ``pyarrow`` is imported only when a
    file is read.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        columns: the column names to read, in this order; ``None`` reads every column.

    Example::

        reader = ParquetDataReader(batch_size=256, columns=["text", "label"])
        columns, n = reader.read_file("data/part-0000.parquet")
        columns["label"].dtype  # dtype('int64')
    """

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        self.columns: list[str] | None = check_names(columns, "columns")

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({column: array_or_list}, n_sample)``."""
        check_reader_fits(self, path)
        pa, _ = _pyarrow()
        pf = open_parquet(path)
        try:
            with data_errors_named(pa, path, "corrupt Parquet data"):
                return self._read(pa, pf, path)
        finally:
            _close(pf)

    def _read(self, pa: Any, pf: Any, path: str) -> tuple[Columns, int]:
        schema = pf.schema_arrow
        names = selected_columns(schema.names, self.columns, path)
        meta = pf.metadata
        total = int(meta.num_rows)
        out: dict[str, Any] = {}
        for name in names:
            dtype = schema.field(name).type
            if is_primitive(pa, dtype):
                out[name] = np.empty(total, dtype=dtype.to_pandas_dtype())
            else:
                out[name] = []
        pos = 0
        for group in range(meta.num_row_groups):
            table = pf.read_row_group(group, columns=names)
            rows = table.num_rows
            if pos + rows > total:
                raise DataFormatError(f"row groups hold more rows than the metadata's {total}", path)
            for name in names:
                column = table.column(name)
                values = out[name]
                if isinstance(values, np.ndarray):
                    if column.null_count and not pa.types.is_floating(column.type):
                        # nulls do not fit an int/bool array: fall back to a list with None
                        values = out[name] = values[:pos].tolist()
                    else:
                        start = pos
                        for chunk in column.chunks:
                            stop = start + len(chunk)
                            values[start:stop] = chunk.to_numpy(zero_copy_only=False)
                            start = stop
                        continue
                values.extend(column.to_pylist())
            pos += rows
            del table  # free the group before reading the next
        if pos != total:
            raise DataFormatError(f"row groups hold {pos} rows, the metadata says {total}", path)
        logger.debug("read %d rows (%d row groups) from %s", total, meta.num_row_groups, path)
        return out, total

    def count_samples(self, path: str) -> int:
        """The row count from the file's metadata (nothing is decoded)."""
        pf = open_parquet(path)
        try:
            return int(pf.metadata.num_rows)
        finally:
            _close(pf)


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    pf = open_parquet(path)
    try:
        types = {field.name: str(field.type) for field in pf.schema_arrow}
        values: dict[str, Any] = {}
        for batch in pf.iter_batches(batch_size=1):
            if batch.num_rows:
                values = batch.slice(0, 1).to_pylist()[0]
                break
    finally:
        close_parquet(pf)
    return types, values


class _SplitBatches:
    """``split``'s framing: Arrow record batches; every input must have the first one's schema."""

    arrow = True
    header: bytes | None = None

    def __init__(self, max_memory: int) -> None:
        self.max_memory = max_memory
        self.schema: Any = None
        self._schema_from = ""

    def blocks(self, paths: Sequence[str]) -> Iterator[Any]:
        for path in paths:
            pf = open_parquet(path)
            try:
                schema = pf.schema_arrow
                if self.schema is None:
                    self.schema, self._schema_from = schema, path
                elif not schema.equals(self.schema):
                    raise DataFormatError(f"schema differs from that of {self._schema_from}: {schema}", path)
                meta = pf.metadata
                rows = max(1, meta.num_rows)
                raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
                per_row = max(1, raw // rows)
                batch_rows = int(min(65536, max(64, self.max_memory // 16 // per_row)))
                for batch in pf.iter_batches(batch_size=batch_rows):
                    if batch.num_rows:
                        yield batch
            finally:
                close_parquet(pf)


FORMAT = Format(
    name="parquet",
    suffixes=(".parquet", ".pq"),
    reader=ParquetDataReader,
    first_record=_first_record,
    split_source=_SplitBatches,
)
