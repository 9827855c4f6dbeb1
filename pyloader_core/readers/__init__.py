"""Built-in :class:`~pyloader_core.reader.DataReader` implementations and a name registry.

Example::

    from pyloader_core.readers import get_reader

    reader = get_reader("jsonl", batch_size=32, fields=["text", "label"])
    columns, n = reader.read_file("data/part-0000.jsonl")
"""

from __future__ import annotations

from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.reader import DataReader
from pyloader_core.readers.csv import CsvDataReader
from pyloader_core.readers.jsonl import JsonLineDataReader
from pyloader_core.readers.numpy import NumpyDataReader
from pyloader_core.readers.parquet import ParquetDataReader
from pyloader_core.readers.text import TextLineDataReader

__all__ = [  # isort-style order (ruff RUF022): constants, classes, functions
    "READERS",
    "CsvDataReader",
    "JsonLineDataReader",
    "NumpyDataReader",
    "ParquetDataReader",
    "TextLineDataReader",
    "get_reader",
]

#: Reader classes by name; every alias is a key of its own. Names are lower case.
READERS: dict[str, type[DataReader]] = {
    "csv": CsvDataReader,
    "json": JsonLineDataReader,
    "jsonl": JsonLineDataReader,
    "jsonlines": JsonLineDataReader,
    "npy": NumpyDataReader,
    "npz": NumpyDataReader,
    "numpy": NumpyDataReader,
    "parquet": ParquetDataReader,
    "text": TextLineDataReader,
    "txt": TextLineDataReader,
}


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
