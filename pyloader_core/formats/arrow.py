"""Arrow IPC chunks, the file form (``ARROW1`` magic; Feather v2) and the stream form (needs ``pyarrow``).

Hugging Face ``datasets``' ``save_to_disk`` writes ``data-00000-of-00001.arrow`` files in the
*stream* form; ``pyarrow.ipc.new_file`` / Feather v2 write the *file* form. The form is told by the
file's first bytes, not its name. Local files are memory-mapped; URLs are read through
:mod:`pyloader_core.storage` (random access for the file form); a compressed file (``.arrow.gz``)
is decompressed into memory first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core.formats._pyarrow import data_errors_named, import_pyarrow, is_primitive, selected_columns
from pyloader_core.formats.base import Format, check_names, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.access import open_binary_any
from pyloader_core.storage.compression import _compressed_data_errors_named, is_compressed, open_binary
from pyloader_core.storage.paths import is_url

__all__ = ["ArrowDataReader", "FORMAT", "open_arrow"]

logger = logging.getLogger(__name__)

_FILE_MAGIC = b"ARROW1"

def _pyarrow() -> Any:
    return import_pyarrow("ArrowDataReader", "ipc")[0]


class _Opened:
    """An open Arrow IPC file: ``reader`` (a file or stream reader), ``is_file`` and the sources to close."""

    def __init__(self, reader: Any, is_file: bool, closers: list[Any]) -> None:
        self.reader = reader
        self.is_file = is_file
        self._closers = closers

    @property
    def schema(self) -> Any:
        return self.reader.schema

    def batches(self) -> Iterator[Any]:
        if self.is_file:
            for i in range(self.reader.num_record_batches):
                yield self.reader.get_batch(i)
        else:
            yield from self.reader

    def close(self) -> None:
        for c in reversed(self._closers):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing after use
                pass

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_arrow(path: str) -> _Opened:
    """Open an Arrow IPC file of either form; close it (or use it as a context manager) after use.

    Raises :class:`DataFormatError` naming ``path`` when it is neither form.

    Example::

        with open_arrow("ds/data-00000-of-00001.arrow") as arrow:
            arrow.schema, sum(b.num_rows for b in arrow.batches())
    """
    pa = _pyarrow()
    closers: list[Any] = []
    with data_errors_named(pa, path, "not a valid Arrow IPC file (file or stream form)"):
        try:
            if is_compressed(path):
                with open_binary(path) as f, _compressed_data_errors_named(path):
                    source: Any = pa.BufferReader(f.read())
            elif is_url(path):
                source = open_binary_any(path, seekable=True)
            else:
                source = pa.memory_map(str(path), "r")
            closers.append(source)
            head = source.read(6)
            source.seek(0)
            if head == _FILE_MAGIC:
                reader, is_file = pa.ipc.open_file(source), True
            else:
                reader, is_file = pa.ipc.open_stream(source), False
            return _Opened(reader, is_file, closers)
        except Exception:
            for c in closers:
                c.close()
            raise


class ArrowDataReader(DataReader):
    """Reads Arrow IPC files (``.arrow``; file or stream form, as ``datasets.save_to_disk`` writes) into columns.

    Columns come back as the Parquet reader returns them: integer, float and boolean columns as
    numpy arrays (an integer or boolean column holding a null as a list with ``None``; float nulls
    as ``NaN``), every other type as a Python list. A file that is neither IPC form gives a
    :class:`~pyloader_core.errors.DataFormatError` naming the file; so does a requested column
    that the file lacks. ``pyarrow`` is imported only when a file is read.

    A ``save_to_disk`` directory also holds ``dataset_info.json`` and ``state.json``: point the
    loader at ``DIR/*.arrow``.

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        columns: the column names to read, in this order; ``None`` reads every column.

    Example::

        reader = ArrowDataReader(batch_size=64, columns=["text", "label"])
        columns, n = reader.read_file("hf_ds/train/data-00000-of-00001.arrow")
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
        pa = _pyarrow()
        with open_arrow(path) as arrow, data_errors_named(pa, path, "corrupt Arrow IPC data"):
            return self._read(pa, arrow, path)

    def _read(self, pa: Any, arrow: _Opened, path: str) -> tuple[Columns, int]:
        schema = arrow.schema
        names = selected_columns(schema.names, self.columns, path)
        table = pa.Table.from_batches(list(arrow.batches()), schema=schema).select(names)
        out: dict[str, Any] = {}
        for name in names:
            column = table.column(name)
            if is_primitive(pa, column.type) and not (column.null_count and not pa.types.is_floating(column.type)):
                out[name] = np.array(column.to_numpy(), copy=True)  # own the memory: the map is closed after
            else:
                out[name] = column.to_pylist()
        n = table.num_rows
        logger.debug("read %d rows from %s", n, path)
        return out, n

    def count_samples(self, path: str) -> int:
        """The row count from the record batches' headers.

        Local files are memory-mapped, so the batches are located and their lengths read without
        copying column data (the file form through its footer; the stream form message by message).
        """
        with open_arrow(path) as arrow:
            return int(sum(batch.num_rows for batch in arrow.batches()))


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    with open_arrow(path) as arrow:
        types = {field.name: str(field.type) for field in arrow.schema}
        values: dict[str, Any] = {}
        for batch in arrow.batches():
            if batch.num_rows:
                values = batch.slice(0, 1).to_pylist()[0]
                break
    return types, values


FORMAT = Format(
    name="arrow",
    suffixes=(".arrow", ".arrows", ".ipc", ".feather"),
    aliases=("ipc", "feather"),
    reader=ArrowDataReader,
    first_record=_first_record,
)
