"""Compression (plain, gzip ``.gz``, zstandard ``.zst``/``.zstd``) and the one UTF-8 BOM strip.

Paths may be local or ``scheme://`` URLs (read through
:func:`pyloader_core.storage.access.open_binary_any`, so through fsspec and the optional local
cache). The compression is chosen from the file name's suffix (case-insensitive); anything else is
opened as a plain file.

Example::

    with iter_lines("part-0001.jsonl.gz") as lines:
        first = strip_bom(next(lines))
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import threading
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.storage.access import open_binary_any
from pyloader_core.storage.paths import is_url

__all__ = [
    "COMPRESSION_SUFFIXES",
    "DECOMPRESSION_ERRORS",
    "GZIP_SUFFIXES",
    "ZSTD_SUFFIXES",
    "check_line_encoding",
    "is_compressed",
    "iter_block_views",
    "iter_blocks",
    "iter_lines",
    "open_binary",
    "strip_bom",
    "strip_compression_suffix",
]

GZIP_SUFFIXES = (".gz", ".gzip")
ZSTD_SUFFIXES = (".zst", ".zstd")
#: Every suffix that names a compression, looked through to tell a file's format.
COMPRESSION_SUFFIXES = GZIP_SUFFIXES + ZSTD_SUFFIXES


def strip_bom(data: bytes, encoding: str = "utf-8") -> bytes:
    """``data`` without a leading UTF-8 byte-order mark (only when ``encoding`` is UTF-8).

    The one BOM strip: readers, ``split`` and ``inspect`` call it on a file's first line or block.

    Example::

        strip_bom(b"\xef\xbb\xbf{}")  # b'{}'
    """
    if encoding in ("utf-8", "utf_8", "utf-8-sig") and data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    return data


def strip_compression_suffix(name: str) -> str:
    """``name`` (lower case) without a compression suffix: ``part-0.jsonl.gz`` -> ``part-0.jsonl``.

    Example::

        strip_compression_suffix("a.CSV.zst")  # 'a.csv'
    """
    name = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_compressed(path: str) -> bool:
    """Whether ``path``'s name ends in a compression suffix."""
    return str(path).lower().endswith(COMPRESSION_SUFFIXES)

#: Exceptions raised when compressed data turns out to be corrupt or truncated mid-stream.
DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (gzip.BadGzipFile, EOFError, zlib.error)


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard
    except ImportError:
        return ()
    return (zstandard.ZstdError,)


def open_binary(path: str) -> BinaryIO:
    """Open ``path`` (local or URL) for reading bytes, decompressing ``.gz`` and ``.zst`` files transparently.

    Raises:
        ImportError: ``path`` ends in ``.zst`` and the ``zstandard`` module is not installed.

    Example::

        with open_binary("part-0001.jsonl.gz") as f:
            for line in f:
                ...
    """
    lower = str(path).lower()
    url = is_url(path)
    if lower.endswith(GZIP_SUFFIXES):
        if url:
            return _OwningGzipFile(open_binary_any(path))  # type: ignore[return-value]
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if lower.endswith(ZSTD_SUFFIXES):
        try:
            import zstandard
        except ImportError:
            raise ImportError(
                f"{path}: reading zstandard-compressed (.zst) files needs the 'zstandard' module: pip install zstandard"
            ) from None
        return io.BufferedReader(_ZstdRawReader(open_binary_any(path), zstandard), buffer_size=_CHUNK)
    return open_binary_any(path)


class _OwningGzipFile(gzip.GzipFile):
    """A :class:`gzip.GzipFile` over an already open stream (a URL) that closes the stream too."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        super().__init__(fileobj=raw, mode="rb")

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


_CHUNK = 1 << 17


class _ZstdRawReader(io.RawIOBase):
    """Decompresses every zstd frame of a file, and notices a file cut inside a frame.

    ``zstandard``'s own ``stream_reader`` stops after the first frame by default and treats a
    truncated frame as a normal end of file; both would lose samples silently.
    """

    def __init__(self, fh: BinaryIO, zstandard: Any) -> None:
        super().__init__()
        self._fh = fh
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._dobj = self._new()
        self._in_frame = False
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _feed(self, data: bytes) -> bytes:
        parts = []
        while data:
            parts.append(self._dobj.decompress(data))
            if self._dobj.eof:  # frame complete: the rest (if any) starts a new frame
                data = self._dobj.unused_data
                self._dobj = self._new()
                self._in_frame = False
            else:
                data = b""
                self._in_frame = True
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            chunk = self._fh.read(_CHUNK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd file ended inside a frame (truncated)")
                return 0
            self._out = memoryview(self._feed(chunk))
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def check_line_encoding(encoding: str) -> str:
    """Validate ``encoding`` for binary line splitting and return its canonical name.

    The line readers split the raw bytes on ``b"\\n"`` before decoding, so the encoding must be
    ASCII-compatible for newlines (UTF-8, Latin-1, cp1252, ...; not UTF-16/32).
    """
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ConfigError(f"encoding must be a known codec name, got {encoding!r}") from None
    if "\n".encode(name) != b"\n" or "\r".encode(name) != b"\r":
        raise ConfigError(
            f"encoding {encoding!r} is not supported: line-based readers need an encoding that writes "
            "'\\n' as the single byte 0x0A (e.g. utf-8, latin-1)"
        )
    return name


@contextlib.contextmanager
def _compressed_data_errors_named(path: str) -> Iterator[None]:
    """Corrupt or truncated compressed data inside the block becomes a :class:`DataFormatError` naming ``path``."""
    try:
        yield
    except DECOMPRESSION_ERRORS + _zstd_errors() as exc:
        raise DataFormatError(f"corrupt or truncated compressed data: {exc}", path) from exc


@contextlib.contextmanager
def iter_blocks(path: str, size: int = 1 << 20) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over ``size``-byte blocks of ``path``'s (decompressed) bytes.

    Corrupt or truncated compressed data surfaces as a :class:`DataFormatError` naming the file.

    Example::

        with iter_blocks(path) as blocks:
            newlines = sum(block.count(b"\\n") for block in blocks)
    """
    with open_binary(path) as f, _compressed_data_errors_named(path):
        yield iter(lambda: f.read(size), b"")


@contextlib.contextmanager
def iter_block_views(path: str, size: int = 1 << 20) -> Iterator[Iterator[memoryview | bytes]]:
    """:func:`iter_blocks`, each block read into the same buffer: a view that is valid until the next.

    No memory is allocated (and faulted in) per block: twice as fast as :func:`iter_blocks` for a scan
    that keeps nothing, such as counting newlines. Streams without ``readinto`` give ``bytes`` blocks.

    Example::

        with iter_block_views(path) as blocks:
            newlines = sum(bytes(block).count(b"\\n") for block in blocks)
    """
    spare = getattr(_spare_buffers, "buffer", None)  # one per thread, kept: no fresh pages to fault in
    _spare_buffers.buffer = None  # in use (a scan inside a scan gets its own)
    buffer = spare if spare is not None and len(spare) == size else memoryview(bytearray(size))
    try:
        with open_binary(path) as f, _compressed_data_errors_named(path):
            readinto = getattr(f, "readinto", None)

            def blocks() -> Iterator[memoryview | bytes]:
                if readinto is None:
                    yield from iter(lambda: f.read(size), b"")
                    return
                while True:
                    got = readinto(buffer)
                    if not got:
                        return
                    yield buffer[:got]

            yield blocks()
    finally:
        _spare_buffers.buffer = buffer


_spare_buffers = threading.local()


@contextlib.contextmanager
def iter_lines(path: str) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over the raw lines (newline kept) of ``path``, compressed or not.

    Corrupt or truncated compressed data surfaces as a :class:`DataFormatError` naming the file.

    Example::

        with iter_lines(path) as lines:
            n = sum(1 for line in lines if line.strip())
    """
    with open_binary(path) as f, _compressed_data_errors_named(path):
        yield iter(f)
