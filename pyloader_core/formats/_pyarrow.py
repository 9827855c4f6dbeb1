"""What the two pyarrow readers (``parquet``, ``arrow``) share: the import, column choice, types, errors.

Not a format module (the registry skips names that start with ``_``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

from pyloader_core.errors import DataFormatError
from pyloader_core.version import install_hint

__all__ = ["data_errors_named", "import_pyarrow", "is_data_error", "is_primitive", "selected_columns"]

#: OSError subclasses that are about the file system, not the file's content: let them through.
_FS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def import_pyarrow(reader: str, submodule: str) -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.<submodule>``, imported on first use; a clear error naming the extra."""
    try:
        import pyarrow as pa

        return pa, importlib.import_module(f"pyarrow.{submodule}")
    except ImportError as exc:
        raise ImportError(f"{reader} needs pyarrow, which failed to import ({exc}): {install_hint('parquet')}") from exc


def is_primitive(pa: Any, dtype: Any) -> bool:
    """Types that become numpy arrays: integers, floats, booleans."""
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype))


def is_data_error(pa: Any, exc: BaseException) -> bool:
    """pyarrow reports corrupt content as ArrowException or as a plain OSError."""
    if isinstance(exc, pa.ArrowException):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, _FS_ERRORS)


@contextlib.contextmanager
def data_errors_named(pa: Any, path: str, what: str) -> Iterator[None]:
    """pyarrow's errors about the content become a :class:`DataFormatError` naming ``path`` ("``what``: error").

    A :class:`DataFormatError` and errors of the file system or the code pass through unchanged.
    """
    try:
        yield
    except DataFormatError:
        raise
    except Exception as exc:
        if is_data_error(pa, exc):
            raise DataFormatError(f"{what}: {exc}", path) from exc
        raise


def selected_columns(names: Sequence[str], wanted: Sequence[str] | None, path: str) -> list[str]:
    """The columns to read: ``wanted`` (each must be in the file), else all; repeated names are an error."""
    names = list(names)
    if len(set(names)) != len(names):
        raise DataFormatError(f"the file repeats column names: {names}", path)
    if wanted is None:
        return names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataFormatError(f"column(s) {missing} not in the file (it has {names})", path)
    return list(wanted)
