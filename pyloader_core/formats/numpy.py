"""NumPy chunks: ``.npy`` (one array, read into memory or memory-mapped) and ``.npz`` (one column per array).

Pickled content is never loaded: every read uses ``allow_pickle=False`` and object-dtype arrays
are refused before any data is read.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import zipfile
from typing import IO, Any

import numpy as np

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats.base import Format, check_reader_fits
from pyloader_core.reader import Columns, DataReader
from pyloader_core.storage.access import materialize, open_binary_any
from pyloader_core.storage.paths import is_url

__all__ = ["FORMAT", "NumpyDataReader"]

logger = logging.getLogger(__name__)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"

# numpy parses a .npy header with ast.literal_eval, and CPython < 3.12 parses ASTs unsafely across
# threads ("SystemError: AST constructor recursion depth mismatch", gh-106905): thread workers that
# read headers at once take turns. A header is a few hundred bytes: the lock costs nothing.
_HEADER_LOCK = threading.Lock()


def _read_header(f: IO[bytes], path: str, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``f``'s position."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        with _HEADER_LOCK:
            if version == (1, 0):
                return fmt.read_array_header_1_0(f)
            if version == (2, 0):
                return fmt.read_array_header_2_0(f)
            if version == (3, 0) and hasattr(fmt, "_read_array_header"):  # utf-8 field names; no public reader
                return fmt._read_array_header(f, version)
        raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise DataFormatError(f"{what}: not a valid .npy array: {exc}", path) from exc


def _check_header(shape: tuple[int, ...], dtype: np.dtype, path: str, what: str) -> int:
    """Refuse pickled and 0-d arrays; return the sample count (first dimension)."""
    if dtype.hasobject:
        raise DataFormatError(
            f"{what} has object dtype {dtype}, i.e. pickled content, which is refused "
            "(PyLoader never unpickles data files)",
            path,
        )
    if len(shape) == 0:
        raise DataFormatError(f"{what} is a 0-d array (a scalar): it has no samples to index", path)
    return int(shape[0])


def _sniff(src: str | IO[bytes], path: str) -> str:
    if isinstance(src, str):
        with open(src, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    else:
        src.seek(0)
        head = src.read(len(_NPY_MAGIC))
        src.seek(0)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    raise DataFormatError("not a .npy or .npz file (no NumPy or zip magic bytes)", path)


def _npz_members(zf: zipfile.ZipFile, path: str) -> list[tuple[str, str]]:
    """``(key, member_name)`` for each array of the archive, in archive order."""
    out = []
    for member in zf.namelist():
        if not member.endswith(".npy"):
            raise DataFormatError(f"archive member {member!r} is not a .npy array", path)
        out.append((member[: -len(".npy")], member))
    return out


_READ_BLOCK = 64 << 20


def _read_array(
    f: Any, offset: int, shape: tuple[int, ...], fortran: bool, dtype: np.dtype, nbytes: int, path: str
) -> np.ndarray:
    """Read the array data at ``offset`` of ``f`` (a binary file with ``readinto``) into memory.

    A file that ends early is a DataFormatError.

    Plain reads (no memory map), so a file truncated while it is read gives a short read, not the
    SIGBUS a memory map gives when the pages behind it disappear.
    """
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    buf = np.empty(nbytes, dtype=np.uint8)
    view = buf.data
    f.seek(offset)
    done = 0
    while done < nbytes:
        got = f.readinto(view[done : done + _READ_BLOCK])
        if not got:
            raise DataFormatError(
                f"the file ended after {done} of the {nbytes} bytes of array data its header promises "
                "(truncated while it was read?)",
                path,
            )
        done += got
    return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


class NumpyDataReader(DataReader):
    """Reads ``.npy`` and ``.npz`` files into numpy columns.

    * ``.npy``: one column, ``{key: array}``, read into memory with plain reads (default), or
      memory-mapped read-only when ``mmap`` is true (paged in only as batches touch it).
    * ``.npz``: one column per array of the archive, named as in the archive; every array must
      have the same first dimension (the sample axis). Arrays in a zip cannot be memory-mapped and
      are loaded.

    The format is told by the file's magic bytes, not its name. Object-dtype (pickled) arrays, 0-d
    arrays, mismatched first dimensions and files that are not NumPy data give a
    :class:`~pyloader_core.errors.DataFormatError` naming the file.

    A ``.npy`` file shorter than its header promises is a ``DataFormatError`` before any data is
    read or mapped. Read into memory, a file truncated *while* it is read is one too (a short read).
    A memory map cannot be made safe that way: if the file is truncated while its array is mapped,
    touching the lost pages kills the process with SIGBUS. That is why ``mmap`` is off by default;
    turn it on only for chunks nothing rewrites in place (the read costs one copy: about 4.8 GB/s
    against 25 GB/s mapped on a warm page cache, and the chunk's size in memory).

    Args:
        batch_size, shuffle, random_seed: see :class:`~pyloader_core.reader.DataReader`.
        key: the column name of a ``.npy`` file's array.
        mmap: memory-map ``.npy`` files instead of reading them (see above: SIGBUS if one is
            truncated while mapped).

    Example::

        reader = NumpyDataReader(batch_size=128, key="features")
        columns, n = reader.read_file("data/part-0000.npy")
        columns["features"].shape  # (n, 768)
    """

    def __init__(
        self,
        batch_size: int = 16,
        shuffle: bool = False,
        random_seed: int = 42,
        *,
        key: str = "data",
        mmap: bool = False,
    ) -> None:
        super().__init__(batch_size, shuffle, random_seed)
        if not isinstance(key, str):
            raise ConfigError(f"key must be a str, got {key!r}")
        self.key = key
        self.mmap = bool(mmap)

    def read_file(self, path: str) -> tuple[Columns, int]:
        """Read ``path``; returns ``({name: array}, n_sample)``.

        A URL is read from its cached local copy (memory-mapped with ``mmap``) when a cache is
        configured (:func:`pyloader_core.storage.configure_cache`), and from its bytes in memory
        otherwise.
        """
        check_reader_fits(self, path)
        src = materialize(path)
        if _sniff(src, path) == "npy":
            columns, n = self._read_npy(src, path)
        else:
            columns, n = self._read_npz(src, path)
        logger.debug("read %d samples (%d arrays) from %s", n, len(columns), path)
        return columns, n

    def _read_npy(self, src: str | IO[bytes], path: str) -> tuple[Columns, int]:
        if isinstance(src, str):
            with open(src, "rb") as f:
                return self._npy_from(f, src, path)
        src.seek(0)
        return self._npy_from(src, None, path)

    def _npy_from(self, f: IO[bytes], local: str | None, path: str) -> tuple[Columns, int]:
        """The array of the ``.npy`` file ``f`` (``local``: its path, when it can be mapped)."""
        shape, fortran, dtype = _read_header(f, path, "the file")
        n = _check_header(shape, dtype, path, "the array")
        offset = f.tell()
        nbytes = dtype.itemsize * math.prod(shape)
        size = os.fstat(f.fileno()).st_size if local is not None else f.seek(0, os.SEEK_END)
        if size - offset < nbytes:
            raise DataFormatError(
                f"truncated: the header promises {nbytes} bytes of array data {shape} {dtype}, "
                f"the file holds {max(size - offset, 0)}",
                path,
            )
        if self.mmap and local is not None:
            try:
                with _HEADER_LOCK:  # np.load parses the header too (see _HEADER_LOCK); mapping reads no data
                    array = np.load(local, mmap_mode="r", allow_pickle=False)
            except (ValueError, EOFError, OSError) as exc:  # changed since the check above
                if isinstance(exc, (FileNotFoundError, PermissionError)):
                    raise
                raise DataFormatError(f"cannot map the array: {exc}", path) from exc
        else:
            array = _read_array(f, offset, shape, fortran, dtype, nbytes, path)
        return {self.key: array}, n

    def _read_npz(self, src: str | IO[bytes], path: str) -> tuple[Columns, int]:
        columns: dict[str, Any] = {}
        try:
            with zipfile.ZipFile(src) as zf:
                members = _npz_members(zf, path)
                lengths = self._npz_lengths(zf, members, path)
                for key, member in members:
                    with zf.open(member) as f:
                        columns[key] = np.lib.format.read_array(f, allow_pickle=False)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            if isinstance(exc, (DataFormatError, FileNotFoundError, PermissionError)):
                raise
            raise DataFormatError(f"not a valid .npz archive: {type(exc).__name__}: {exc}", path) from exc
        return columns, (next(iter(lengths.values())) if lengths else 0)

    @staticmethod
    def _npz_lengths(zf: zipfile.ZipFile, members: list[tuple[str, str]], path: str) -> dict[str, int]:
        """Check every array's header; return ``{key: first_dim}``, all equal."""
        lengths: dict[str, int] = {}
        for key, member in members:
            with zf.open(member) as f:
                shape, _, dtype = _read_header(f, path, f"array {key!r}")
            lengths[key] = _check_header(shape, dtype, path, f"array {key!r}")
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k!r}: {v}" for k, v in lengths.items())
            raise DataFormatError(f"the arrays' first dimensions differ ({detail})", path)
        return lengths

    def count_samples(self, path: str) -> int:
        """The first dimension, from the ``.npy`` header or the ``.npz`` members' headers only."""
        if is_url(path):
            with open_binary_any(path, seekable=True) as f:
                return self._count(f, path)
        with open(path, "rb") as f:
            return self._count(f, path)

    def _count(self, f: IO[bytes], path: str) -> int:
        if _sniff(f, path) == "npy":
            shape, _, dtype = _read_header(f, path, "the file")
            return _check_header(shape, dtype, path, "the array")
        try:
            with zipfile.ZipFile(f) as zf:
                lengths = self._npz_lengths(zf, _npz_members(zf, path), path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise DataFormatError(f"not a valid .npz archive: {type(exc).__name__}: {exc}", path) from exc
        return next(iter(lengths.values())) if lengths else 0


def _first_record(path: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    columns, n = NumpyDataReader(mmap=True).read_file(path)
    types = {k: f"{v.dtype}{list(v.shape[1:]) if v.ndim > 1 else ''}" for k, v in columns.items()}
    return types, {k: (v[0].tolist() if n else None) for k, v in columns.items()}


FORMAT = Format(
    name="numpy",
    suffixes=(".npy", ".npz"),
    aliases=("npy", "npz"),
    reader=NumpyDataReader,
    first_record=_first_record,
)
