"""Exception classes raised by PyLoader.

Every error PyLoader raises on its own account derives from :class:`PyLoaderError`, so
``except PyLoaderError`` catches them all. Errors raised by user code (``read_file``,
``batch_encode``, ``collate_batch``) keep their original type; PyLoader only adds a note
(``BaseException.add_note``) naming the file, the record and the worker.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DataFormatError",
    "NoFilesError",
    "PyLoaderError",
    "SampleCountError",
    "WorkerDiedError",
    "WorkerError",
    "WorkerTimeoutError",
]


class PyLoaderError(Exception):
    """Base class of every error PyLoader raises itself."""


class ConfigError(PyLoaderError, ValueError):
    """An option has a bad value; the message names the option, the value and the rule."""


class NoFilesError(PyLoaderError, FileNotFoundError):
    """``data_dir`` matched no data files."""


class DataFormatError(PyLoaderError, ValueError):
    """A chunk file's content is malformed.

    ``path`` is the file and ``record`` the 1-based line/row/record number where known.
    """

    def __init__(self, message: str, path: str | None = None, record: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if record is not None:
                where += f", record {record}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.record = record

    def __reduce__(self):  # across processes: keep the subclass, path, record and notes (``__dict__``)
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[BaseException], args: tuple) -> BaseException:
    """Recreate an error of ``cls`` with ``args`` without calling its ``__init__`` (which formats them)."""
    err = cls.__new__(cls)
    err.args = args
    return err


class ChecksumError(DataFormatError):
    """Chunk files differ from their index entries (size or SHA-256), or have none.

    Example::

        try:
            check_checksums(list_files("data/"))
        except ChecksumError as exc:
            logger.error("%s", exc)  # "2 of 65 chunk file(s) differ from index.json: ..."
    """


class SampleCountError(DataFormatError):
    """``read_file`` or ``batch_encode`` returned lists whose lengths disagree with ``n_sample``."""


class WorkerError(PyLoaderError):
    """A worker failed in a way that cannot be expressed as the user's own exception.

    Raised when a worker's exception could not be sent back (it was not picklable); the
    message carries the original type name, message and traceback text.
    """


class WorkerDiedError(WorkerError):
    """A worker process ended without reporting (killed, crashed); names its exit code."""


class WorkerTimeoutError(WorkerError, TimeoutError):
    """No result arrived for ``timeout`` seconds while a worker held a unit.

    The message names the worker, its pid (process workers), the chunk and the time waited; ``stack``
    is the stuck worker's Python stack when one could be had (``faulthandler``), else ``None``.
    """

    def __init__(self, message: str, stack: str | None = None) -> None:
        super().__init__(message if stack is None else f"{message}\nWorker stack:\n{stack}")
        self.stack = stack

    def __reduce__(self):
        return (_rebuild, (type(self), self.args), self.__dict__)
