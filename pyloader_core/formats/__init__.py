"""The formats PyLoader reads: ONE registry of :class:`~pyloader_core.formats.base.Format` records.

Each module here (``jsonl``, ``csv``, ``text``, ``parquet``, ``numpy``, ``arrow``, ``tfrecord``,
``webdataset``) defines a reader and a
``FORMAT`` record; this package finds the modules and registers them, so adding a format touches
one file. The index, ``split``, ``inspect`` and the command line's ``--format`` choices all derive
from the registry.

Example::

    from pyloader_core.formats import get_reader

    reader = get_reader("jsonl", batch_size=32, fields=["text", "label"])
    columns, n = reader.read_file("data/part-0000.jsonl")
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.formats.base import (
    FORMATS,
    READERS,
    Format,
    detect_format,
    format_of_reader,
    get_format,
    register,
    split_formats,
)
from pyloader_core.formats.arrow import ArrowDataReader
from pyloader_core.formats.csv import CsvDataReader
from pyloader_core.formats.jsonl import JsonLineDataReader
from pyloader_core.formats.numpy import NumpyDataReader
from pyloader_core.formats.parquet import ParquetDataReader
from pyloader_core.formats.text import TextLineDataReader
from pyloader_core.formats.tfrecord import TFRecordDataReader
from pyloader_core.formats.webdataset import WebDatasetReader
from pyloader_core.reader import DataReader

__all__ = [
    "ArrowDataReader",
    "CsvDataReader",
    "FORMATS",
    "Format",
    "JsonLineDataReader",
    "NumpyDataReader",
    "ParquetDataReader",
    "READERS",
    "TFRecordDataReader",
    "TextLineDataReader",
    "WebDatasetReader",
    "detect_format",
    "format_of_reader",
    "get_format",
    "get_reader",
    "register",
    "split_formats",
]

_NOT_FORMATS = frozenset({"base"})

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_FORMATS and not _module.name.startswith("_"):
        _format = getattr(importlib.import_module(f"{__name__}.{_module.name}"), "FORMAT", None)
        if isinstance(_format, Format):
            register(_format)


def get_reader(name_or_class: str | type[DataReader] | DataReader, **kwargs: Any) -> DataReader:
    """Return a reader from a registered name (case-insensitive), a subclass, or an instance.

    ``kwargs`` go to the class's constructor; an instance is returned as is (and takes none).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), an instance with
            ``kwargs``, or anything that is not a name, a ``DataReader`` subclass or instance.

    Example::

        get_reader("CSV", converters={"label": int})
        get_reader(NumpyDataReader, key="x")
        get_reader(my_reader)  # my_reader itself
    """
    if isinstance(name_or_class, DataReader):
        if kwargs:
            raise ConfigError(
                f"get_reader got a {type(name_or_class).__name__} instance and keyword arguments "
                f"{sorted(kwargs)}; pass the class or a name to have them applied"
            )
        return name_or_class
    if isinstance(name_or_class, type) and issubclass(name_or_class, DataReader):
        return name_or_class(**kwargs)
    if isinstance(name_or_class, str):
        cls = READERS.get(name_or_class.strip().lower())
        if cls is None:
            raise ConfigError(f"unknown reader {name_or_class!r}; valid names: {', '.join(sorted(READERS))}")
        return cls(**kwargs)
    raise ConfigError(
        f"reader must be a name ({', '.join(sorted(READERS))}), a DataReader subclass or a DataReader "
        f"instance, got {name_or_class!r}"
    )
