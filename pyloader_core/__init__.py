"""PyLoader core: bounded-memory asynchronous loading of chunked datasets, framework-agnostic.

Example::

    from pyloader_core import DataLoader, JsonLineDataReader, NumpyDataCollator, TextDataset

    loader = DataLoader(JsonLineDataReader(batch_size=32), TextDataset(max_seq_len=64), NumpyDataCollator(),
                        "data/", num_epoch=2, shuffle=True, num_workers=2)
    for batch in loader:
        ...
"""

from pyloader_core.collator import DataCollator, NumpyDataCollator
from pyloader_core.dataset import Dataset, TextDataset
from pyloader_core.errors import (
    ConfigError,
    DataFormatError,
    NoFilesError,
    PyLoaderError,
    SampleCountError,
    WorkerDiedError,
    WorkerError,
    WorkerTimeoutError,
)
from pyloader_core.storage.listing import list_files
from pyloader_core.runtime.loader import DataLoader, LoaderIterator
from pyloader_core.options import LoaderOptions
from pyloader_core.runtime.plan import EpochPlan, Shard, WorkUnit, plan_epoch
from pyloader_core.reader import DataReader
from pyloader_core.formats import (
    ArrowDataReader,
    CsvDataReader,
    JsonLineDataReader,
    NumpyDataReader,
    ParquetDataReader,
    TextLineDataReader,
    TFRecordDataReader,
    WebDatasetReader,
    get_reader,
)
from pyloader_core.skips import report_bad_record

__all__ = [
    "ArrowDataReader",
    "ConfigError",
    "CsvDataReader",
    "DataCollator",
    "DataFormatError",
    "DataLoader",
    "DataReader",
    "Dataset",
    "EpochPlan",
    "JsonLineDataReader",
    "LoaderIterator",
    "LoaderOptions",
    "NoFilesError",
    "NumpyDataCollator",
    "NumpyDataReader",
    "ParquetDataReader",
    "PyLoaderError",
    "SampleCountError",
    "Shard",
    "TFRecordDataReader",
    "TextDataset",
    "TextLineDataReader",
    "WebDatasetReader",
    "WorkUnit",
    "WorkerDiedError",
    "WorkerError",
    "WorkerTimeoutError",
    "get_reader",
    "list_files",
    "plan_epoch",
    "report_bad_record",
]

from pyloader_core.version import __version__  # noqa: E402  (one place, importable without a cycle)
