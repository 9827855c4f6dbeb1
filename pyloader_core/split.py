"""Split big input files into chunk files, streaming, in bounded memory; optionally shuffled.

:func:`split` (``pyloader split``) reads its inputs record by record and writes chunks
``part-00000.jsonl`` (``.csv``, ``.txt``, ``.parquet``; ``.gz``/``.zst`` when compressed) that roll
over at ``chunk_size`` bytes of records (uncompressed) or ``samples_per_chunk`` records, whichever
comes first, then writes ``index.json`` (see :mod:`pyloader_core.index`) beside them.

Records:

* **jsonl**: one non-blank line (blank lines are dropped, as the reader drops them);
* **txt**: one line (every line, blank ones included, as the reader counts them);
* **csv**: one row, which may span lines inside quotes; the header row is written at the top of
  every chunk, and every input must have the same header;
* **parquet**: one row, streamed in record batches; the schema must be the same in every input.

Lines are copied as bytes, never decoded or re-encoded (a UTF-8 byte-order mark at the start of an
input is dropped; a last line without a newline gets one).

**Memory.** Without shuffling, at most one block of records (about 1 MiB, or a Parquet batch sized
from ``max_memory``) is held at a time. **Shuffling** is a two-pass external shuffle:

1. *scatter*: every record goes to one of ``K`` temporary bucket files chosen uniformly at random
   (``K`` is picked so that a bucket is expected to fill about a third of ``max_memory``);
2. *gather*: each bucket in turn is loaded, permuted uniformly in memory, and written out.

Conditioned on the bucket sizes, each bucket holds a uniformly random subset and is permuted
uniformly, so the output order is a uniformly random permutation of all records. A bucket that
turns out too large for ``max_memory`` (a skewed guess of ``K``, e.g. compressed inputs) is
scattered again into sub-buckets, recursively, so the bound holds whatever the input. Every random
choice comes from one generator seeded with ``seed``: the same inputs and options give the same
chunks. Bucket files live in a hidden ``.pyloader-split-*`` folder inside the staging directory (or
``tmp_dir``) and are deleted at the end; they need as much free disk as the input.

**All or nothing.** Chunks and ``index.json`` are written into a hidden staging directory on the
output's file system (beside the output directory when it does not exist yet, inside it when it
does) and put in place only once everything is written: a failure at any point (bad input, a full
disk while ``index.json`` is written) leaves no output directory, or the earlier one as it was.

Example::

    from pyloader_core.split import split

    result = split(["big.jsonl"], "data/", chunk_size="64MB", shuffle=True, seed=1, compression="zstd")
    result.samples, len(result.chunks)
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core import remote
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.files import INDEX_NAME, is_data_file_name, list_files
from pyloader_core.index import ChunkEntry, Index, detect_format, write_index
from pyloader_core.readers._open import iter_lines
from pyloader_core.sizes import parse_size

__all__ = ["COMPRESSIONS", "DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_MEMORY", "SPLIT_FORMATS", "SplitResult", "split"]

logger = logging.getLogger(__name__)

#: Formats :func:`split` reads and writes.
SPLIT_FORMATS = ("jsonl", "csv", "parquet", "txt")
#: Compression names and the suffix they add to line-format chunks.
COMPRESSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}
DEFAULT_CHUNK_SIZE = 64 << 20
DEFAULT_MAX_MEMORY = 256 << 20
_MIN_MEMORY = 1 << 20

_EXTENSIONS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", "txt": ".txt"}
_BLOCK_RECORDS = 4096
_BLOCK_BYTES = 1 << 20
_MAX_BUCKETS = 256  # open bucket files at once; more is reached by recursion
_LEN = struct.Struct("<I")
_BOM = b"\xef\xbb\xbf"
_PART_RE = re.compile(r"^part-\d+\.")


@dataclasses.dataclass
class SplitResult:
    """What :func:`split` wrote.

    Example::

        result = split(["big.csv"], "out/", samples_per_chunk=10_000)
        result.samples, result.output_bytes, result.index_path
    """

    out_dir: str
    format: str
    chunks: list[ChunkEntry]
    samples: int
    input_bytes: int
    record_bytes: int
    output_bytes: int
    seconds: float
    index_path: str
    buckets: int = 0
    compression: str = "none"


# -- writing chunks ----------------------------------------------------------------------------


class _HashingRaw(io.RawIOBase):
    """A raw file that hashes and counts what is written through it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.sha = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        self.sha.update(view)
        done = 0
        while done < len(view):
            done += self._f.write(view[done:]) or 0
        self.count += done
        return done

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class _LineChunkWriter:
    """Writes byte records into ``part-NNNNN`` files, rolling over at the limits."""

    def __init__(
        self,
        out_dir: str,
        ext: str,
        compression: str,
        limit_bytes: int,
        limit_samples: int,
        header: bytes | None,
        on_chunk: Callable[[ChunkEntry], None],
    ) -> None:
        self.out_dir, self.ext, self.compression = out_dir, ext, compression
        self.limit_bytes, self.limit_samples = limit_bytes, limit_samples
        self.header = header
        self.on_chunk = on_chunk
        self.index = 0
        self.record_bytes = 0
        self.created: list[str] = []
        self._raw: _HashingRaw | None = None
        self._buf: io.BufferedWriter | None = None
        self._out: Any = None
        self._name = ""
        self._samples = 0
        self._bytes = 0

    def _open(self) -> None:
        self._name = f"part-{self.index:05d}{self.ext}{COMPRESSIONS[self.compression]}"
        self.index += 1
        self.created.append(self._name)
        self._raw = _HashingRaw(os.path.join(self.out_dir, self._name))
        self._buf = io.BufferedWriter(self._raw, buffer_size=1 << 20)
        if self.compression == "gzip":
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._buf, compresslevel=6, mtime=0)
        elif self.compression == "zstd":
            import zstandard

            self._out = zstandard.ZstdCompressor(level=3).stream_writer(self._buf, closefd=False)
        else:
            self._out = self._buf
        self._samples = 0
        self._bytes = 0
        if self.header is not None:
            self._out.write(self.header)
            self._bytes += len(self.header)

    def close_chunk(self) -> None:
        if self._raw is None:
            return
        if self._out is not self._buf:
            self._out.close()
        assert self._buf is not None
        self._buf.close()
        entry = ChunkEntry(self._name, self._samples, self._raw.count, self._raw.sha.hexdigest(), "")
        self.record_bytes += self._bytes
        self._raw = self._buf = self._out = None
        self.on_chunk(entry)

    def write_block(self, records: Sequence[bytes]) -> None:
        out = self._out
        for rec in records:
            n = len(rec)
            full = self._samples >= self.limit_samples or self._bytes + n > self.limit_bytes
            if out is not None and full and self._samples > 0:
                self.close_chunk()
                out = None
            if out is None:
                self._open()
                out = self._out
            out.write(rec)
            self._samples += 1
            self._bytes += n

    def abort(self) -> None:
        for f in (self._out, self._buf):
            try:
                if f is not None:
                    f.close()
            except Exception:  # noqa: BLE001 - cleaning up after another error
                pass


class _ParquetChunkWriter:
    """Writes Arrow record batches into ``part-NNNNN.parquet`` files, rolling over at the limits."""

    def __init__(
        self,
        out_dir: str,
        compression: str,
        limit_bytes: int,
        limit_samples: int,
        schema: Any,
        group_bytes: int,
        on_chunk: Callable[[ChunkEntry], None],
    ) -> None:
        self.out_dir, self.limit_bytes, self.limit_samples = out_dir, limit_bytes, limit_samples
        self.codec = compression
        self.schema = schema
        self.group_bytes = group_bytes
        self.on_chunk = on_chunk
        self.index = 0
        self.record_bytes = 0
        self.created: list[str] = []
        self._writer: Any = None
        self._name = ""
        self._samples = 0
        self._bytes = 0
        self._pending: list[Any] = []
        self._pending_bytes = 0

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self._name = f"part-{self.index:05d}.parquet"
        self.index += 1
        self.created.append(self._name)
        self._writer = pq.ParquetWriter(os.path.join(self.out_dir, self._name), self.schema, compression=self.codec)
        self._samples = 0
        self._bytes = 0

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema))
            self._pending = []
            self._pending_bytes = 0

    def close_chunk(self) -> None:
        if self._writer is None:
            return
        self._flush()
        self._writer.close()
        self._writer = None
        path = os.path.join(self.out_dir, self._name)
        entry = ChunkEntry(self._name, self._samples, os.path.getsize(path), _sha256_file(path), "")
        self.record_bytes += self._bytes
        self.on_chunk(entry)

    def write_block(self, batch: Any) -> None:
        rows = batch.num_rows
        per_row = max(1.0, batch.nbytes / rows) if rows else 1.0
        pos = 0
        while pos < rows:
            full = self._samples >= self.limit_samples or self._bytes + per_row > self.limit_bytes
            if self._writer is not None and full and self._samples > 0:
                self.close_chunk()
            if self._writer is None:
                self._open()
            room = min(self.limit_samples - self._samples, int((self.limit_bytes - self._bytes) // per_row))
            take = max(1, min(room, rows - pos))
            piece = batch.slice(pos, take)
            self._pending.append(piece)
            self._pending_bytes += piece.nbytes
            if self._pending_bytes >= self.group_bytes:
                self._flush()
            self._samples += take
            self._bytes += int(take * per_row)
            pos += take

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - cleaning up after another error
                pass


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# -- reading records ---------------------------------------------------------------------------


class _LineSource:
    """Blocks of byte records (jsonl/txt lines, csv rows) from the inputs, in order."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.header: bytes | None = None
        self._header_from = ""

    def blocks(self, paths: Sequence[str]) -> Iterator[list[bytes]]:
        for path in paths:
            if self.fmt == "csv":
                yield from self._csv(path)
            else:
                yield from self._lines(path)

    def _lines(self, path: str) -> Iterator[list[bytes]]:
        jsonl = self.fmt == "jsonl"
        checked = not jsonl
        block: list[bytes] = []
        size = 0
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                if not line.endswith(b"\n"):
                    line += b"\n"
                if jsonl and line.isspace():
                    continue
                if not checked:
                    _check_json_object(line, path, lineno)
                    checked = True
                block.append(line)
                size += len(line)
                if len(block) >= _BLOCK_RECORDS or size >= _BLOCK_BYTES:
                    yield block
                    block, size = [], 0
        if block:
            yield block

    def _csv(self, path: str) -> Iterator[list[bytes]]:
        """Rows found by quote parity: a row ends at a newline outside quotes (RFC 4180 quoting)."""
        block: list[bytes] = []
        size = 0
        parts: list[bytes] = []
        quotes = 0
        header_seen = False
        start = 0
        with iter_lines(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if lineno == 1 and line.startswith(_BOM):
                    line = line[len(_BOM) :]
                if not parts:
                    start = lineno
                    if line.isspace():
                        continue  # a blank line between rows
                parts.append(line)
                quotes += line.count(b'"')
                if quotes % 2:
                    continue  # inside a quoted field: the row goes on
                row = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, quotes = [], 0
                if not row.endswith(b"\n"):
                    row += b"\n"
                if not header_seen:
                    header_seen = True
                    self._check_header(row, path)
                    continue
                block.append(row)
                size += len(row)
                if len(block) >= _BLOCK_RECORDS or size >= _BLOCK_BYTES:
                    yield block
                    block, size = [], 0
        if parts:
            raise DataFormatError("unterminated quoted field at the end of the file", path, start)
        if block:
            yield block

    def _check_header(self, row: bytes, path: str) -> None:
        if self.header is None:
            self.header, self._header_from = row, path
        elif row.rstrip(b"\r\n") != self.header.rstrip(b"\r\n"):
            raise DataFormatError(
                f"CSV header {row.rstrip().decode('utf-8', 'replace')!r} differs from "
                f"{self.header.rstrip().decode('utf-8', 'replace')!r} of {self._header_from}",
                path,
                1,
            )


def _check_json_object(line: bytes, path: str, lineno: int) -> None:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise DataFormatError(f"not JSON lines (the first record is not valid JSON: {exc})", path, lineno) from None
    if not isinstance(record, dict):
        raise DataFormatError(
            f"not JSON lines (the first record is a {type(record).__name__}, not an object)", path, lineno
        )


class _ParquetSource:
    """Record batches from Parquet inputs; every input must have the first one's schema."""

    def __init__(self, max_memory: int) -> None:
        self.max_memory = max_memory
        self.schema: Any = None
        self._schema_from = ""

    def open(self, path: str) -> tuple[Any, Any]:
        from pyloader_core.readers.parquet import _pyarrow

        pa, pq = _pyarrow()
        source = remote.open_binary_any(path, seekable=True)
        try:
            return pq.ParquetFile(source), source
        except Exception as exc:
            source.close()
            if isinstance(exc, (pa.ArrowException, OSError)) and not isinstance(exc, FileNotFoundError):
                raise DataFormatError(f"not a valid Parquet file: {exc}", path) from None
            raise

    def blocks(self, paths: Sequence[str]) -> Iterator[Any]:
        for path in paths:
            pf, source = self.open(path)
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
                source.close()


# -- shuffle buckets ---------------------------------------------------------------------------


class _LineCodec:
    """Bucket files of length-prefixed byte records."""

    per_record = 80  # bytes object + list slot + permutation entry, roughly

    def open_bucket(self, path: str, buffer: int) -> Any:
        return open(path, "wb", buffering=buffer)

    def scatter(
        self, block: list[bytes], ids: list[int], files: list[Any], sizes: list[int], counts: list[int]
    ) -> None:
        pack = _LEN.pack
        for rec, b in zip(block, ids, strict=True):
            f = files[b]
            f.write(pack(len(rec)))
            f.write(rec)
            sizes[b] += len(rec)
            counts[b] += 1

    def nrows(self, block: list[bytes]) -> int:
        return len(block)

    def load(self, path: str) -> list[bytes]:
        out = []
        with open(path, "rb", buffering=1 << 20) as f:
            read, unpack = f.read, _LEN.unpack
            while head := read(4):
                out.append(read(unpack(head)[0]))
        return out

    def blocks_of(self, path: str) -> Iterator[list[bytes]]:
        block: list[bytes] = []
        with open(path, "rb", buffering=1 << 20) as f:
            read, unpack = f.read, _LEN.unpack
            while head := read(4):
                block.append(read(unpack(head)[0]))
                if len(block) >= _BLOCK_RECORDS:
                    yield block
                    block = []
        if block:
            yield block

    def permuted(self, records: list[bytes], perm: np.ndarray) -> Iterator[list[bytes]]:
        idx = perm.tolist()
        for i in range(0, len(idx), _BLOCK_RECORDS):
            yield [records[j] for j in idx[i : i + _BLOCK_RECORDS]]

    def close(self, f: Any) -> None:
        f.close()


class _ArrowCodec:
    """Bucket files of Arrow IPC streams."""

    per_record = 16

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def open_bucket(self, path: str, buffer: int) -> Any:
        import pyarrow as pa

        sink = pa.OSFile(path, "wb")
        return (pa.ipc.new_stream(sink, self.schema), sink)

    def scatter(self, batch: Any, ids: list[int], files: list[Any], sizes: list[int], counts: list[int]) -> None:
        import pyarrow as pa

        arr = np.asarray(ids, dtype=np.int64)
        order = np.argsort(arr, kind="stable")
        taken = batch.take(pa.array(order))
        per = np.bincount(arr, minlength=len(files))
        pos = 0
        for b, n in enumerate(per.tolist()):
            if n:
                piece = taken.slice(pos, n)
                files[b][0].write_batch(piece)
                sizes[b] += piece.nbytes
                counts[b] += n
                pos += n

    def nrows(self, batch: Any) -> int:
        return int(batch.num_rows)

    def load(self, path: str) -> Any:
        import pyarrow as pa

        with pa.OSFile(path, "rb") as f:
            return pa.ipc.open_stream(f).read_all()

    def blocks_of(self, path: str) -> Iterator[Any]:
        import pyarrow as pa

        with pa.OSFile(path, "rb") as f:
            yield from pa.ipc.open_stream(f)

    def permuted(self, table: Any, perm: np.ndarray) -> Iterator[Any]:
        import pyarrow as pa

        step = 65536
        for i in range(0, len(perm), step):
            yield from table.take(pa.array(perm[i : i + step])).to_batches()

    def close(self, f: Any) -> None:
        writer, sink = f
        writer.close()
        sink.close()


class _Shuffler:
    """The two-pass external shuffle described in the module docstring."""

    def __init__(self, codec: Any, rng: np.random.Generator, tmp_dir: str, budget: int) -> None:
        self.codec = codec
        self.rng = rng
        self.tmp_dir = tmp_dir
        self.budget = budget  # bytes one loaded bucket may take
        self.buckets = 0
        self._serial = 0

    def _memory(self, nbytes: int, count: int) -> int:
        return nbytes + count * self.codec.per_record

    def scatter(self, blocks: Iterable[Any], k: int) -> list[tuple[str, int, int]]:
        k = max(2, min(k, _MAX_BUCKETS))
        self.buckets += k
        self._serial += 1
        paths = [os.path.join(self.tmp_dir, f"b{self._serial}-{i}") for i in range(k)]
        buffer = int(min(1 << 20, max(1 << 12, self.budget // 8 // k)))
        files = [self.codec.open_bucket(p, buffer) for p in paths]
        sizes = [0] * k
        counts = [0] * k
        try:
            for block in blocks:
                ids = self.rng.integers(0, k, size=self.codec.nrows(block)).tolist()
                self.codec.scatter(block, ids, files, sizes, counts)
        finally:
            for f in files:
                self.codec.close(f)
        return list(zip(paths, sizes, counts, strict=True))

    def gather(self, buckets: list[tuple[str, int, int]], write: Callable[[Any], None]) -> None:
        for path, nbytes, count in buckets:
            if count == 0:
                os.unlink(path)
                continue
            need = self._memory(nbytes, count)
            if need > self.budget and count > 1:
                k = math.ceil(need / (self.budget / 3))
                logger.debug("bucket %s needs ~%d bytes > %d: scattering it into %d", path, need, self.budget, k)
                sub = self.scatter(self.codec.blocks_of(path), k)
                os.unlink(path)
                self.gather(sub, write)
                continue
            records = self.codec.load(path)
            os.unlink(path)
            perm = self.rng.permutation(count)
            for block in self.codec.permuted(records, perm):
                write(block)
            del records


# -- the public function -----------------------------------------------------------------------


def _prepare_out_dir(out_dir: str, inputs: Sequence[str], overwrite: bool) -> list[str]:
    """Check ``out_dir``; returns the names of an earlier split's files there, replaced at the end."""
    if remote.is_url(out_dir):
        raise ConfigError(f"the output directory must be local, got {out_dir!r}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"output path {out_dir!r} exists and is not a directory")
    out_abs = os.path.realpath(out_dir)
    for path in inputs:
        if not remote.is_url(path) and os.path.realpath(path).startswith(out_abs + os.sep):
            raise ConfigError(f"input {path} is inside the output directory {out_dir}")
    if not os.path.isdir(out_dir):
        return []
    existing = [n for n in sorted(os.listdir(out_dir)) if is_data_file_name(n) or n == INDEX_NAME]
    if not existing:
        return []
    ours = [n for n in existing if _PART_RE.match(n) or n == INDEX_NAME]
    others = [n for n in existing if n not in ours]
    if not overwrite or others:
        hint = " (use --overwrite to replace its part-* files)" if not others else ""
        raise ConfigError(f"output directory {out_dir!r} is not empty: {', '.join(existing[:3])}...{hint}")
    return ours


def _make_stage(out_dir: str) -> str:
    """A fresh hidden directory to write the output into, on the output's file system.

    Beside ``out_dir`` when that does not exist yet (the end is then one rename of the whole
    directory); inside it when it does (it may be a mount point, or hold other hidden files).
    """
    if os.path.isdir(out_dir):
        return tempfile.mkdtemp(prefix=".pyloader-split-", dir=out_dir)
    out_abs = os.path.abspath(out_dir)
    parent = os.path.dirname(out_abs)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out_abs)}.pyloader-split-", dir=parent)


def _commit(stage: str, out_dir: str, names: Sequence[str], old: Sequence[str]) -> None:
    """Put the staged chunks and ``index.json`` in place of ``old``: all of them, or (on an error) none.

    A stage beside ``out_dir`` is renamed to it in one step. A stage inside it is emptied into
    it: the earlier split's files are moved aside (its ``index.json`` first), the new chunks moved
    in and the new ``index.json`` last; an error on the way moves everything back. (A crash in
    the middle of those renames can still leave a part; the index is then missing or the old one
    is gone, never a new index over a partial set.)
    """
    if os.path.dirname(os.path.abspath(stage)) != os.path.abspath(out_dir):
        os.rename(stage, out_dir)  # out_dir absent, or an empty directory made meanwhile
        return
    aside = os.path.join(stage, ".replaced")
    os.mkdir(aside)
    old_order = sorted(old, key=lambda n: n != INDEX_NAME)  # the old index goes first
    new_order = [n for n in names if n != INDEX_NAME] + [INDEX_NAME]  # the new index comes last
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in old_order:
            os.replace(os.path.join(out_dir, name), os.path.join(aside, name))
            moved_old.append(name)
        for name in new_order:
            os.replace(os.path.join(stage, name), os.path.join(out_dir, name))
            moved_new.append(name)
    except BaseException:
        for name in reversed(moved_new):
            with contextlib.suppress(OSError):
                os.replace(os.path.join(out_dir, name), os.path.join(stage, name))
        for name in reversed(moved_old):
            with contextlib.suppress(OSError):
                os.replace(os.path.join(aside, name), os.path.join(out_dir, name))
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _resolve_format(inputs: Sequence[str], fmt: str | None) -> str:
    if fmt is not None:
        fmt = fmt.lower()
        fmt = {"json": "jsonl", "text": "txt", "ndjson": "jsonl"}.get(fmt, fmt)
        if fmt not in SPLIT_FORMATS:
            raise ConfigError(f"unknown format {fmt!r}: split reads {', '.join(SPLIT_FORMATS)}")
        return fmt
    found = {p: detect_format(p) for p in inputs}
    unknown = [p for p, f in found.items() if f is None]
    if unknown:
        raise ConfigError(
            f"cannot tell the format of {unknown[0]} from its name; pass --format ({', '.join(SPLIT_FORMATS)})"
        )
    kinds = sorted({f for f in found.values() if f is not None})
    if len(kinds) > 1:
        raise ConfigError(f"inputs mix formats ({', '.join(kinds)}); split them separately or pass --format")
    if kinds[0] not in SPLIT_FORMATS:
        raise ConfigError(f"split reads {', '.join(SPLIT_FORMATS)}, not {kinds[0]} ({inputs[0]})")
    return kinds[0]


def _input_size(paths: Sequence[str]) -> int:
    total = 0
    for p in paths:
        try:
            total += remote.file_size(p)
        except OSError:
            pass
    return total


def split(
    inputs: str | Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunk_size: int | str | None = None,
    samples_per_chunk: int | None = None,
    shuffle: bool = False,
    seed: int = 42,
    compression: str | None = None,
    max_memory: int | str = DEFAULT_MAX_MEMORY,
    tmp_dir: str | None = None,
    overwrite: bool = False,
) -> SplitResult:
    """Split ``inputs`` into chunk files in ``out_dir`` and write ``out_dir/index.json``.

    Args:
        inputs: files, directories, globs or URLs (expanded with :func:`~pyloader_core.files.list_files`).
        out_dir: a local directory; created if needed. It must hold no data files, unless
            ``overwrite`` (its ``part-*`` files and ``index.json`` are then replaced, once the new
            ones are complete).
        fmt: ``jsonl``, ``csv``, ``parquet`` or ``txt``; default: told from the input names.
        chunk_size: roll over before a chunk's records exceed this many bytes (uncompressed;
            Arrow's in-memory size for Parquet); a size string such as ``"64MB"`` is accepted.
            Default 64 MiB when ``samples_per_chunk`` is not given either.
        samples_per_chunk: roll over after this many records.
        shuffle: write the records in a uniformly random order (see the module docstring).
        seed: the shuffle's seed.
        compression: ``none``, ``gzip`` or ``zstd`` (line formats: the whole file, default none;
            Parquet: the column codec, default snappy).
        max_memory: the memory the shuffle may use for one bucket (and that sizes buffers).
        tmp_dir: where shuffle buckets go (default: a hidden folder in the staging directory).
        overwrite: replace earlier ``part-*`` chunks in ``out_dir``.

    Raises:
        ConfigError: bad options, mixed or unknown formats, a non-empty ``out_dir``.
        DataFormatError: an input that is not what its format says.
        NoFilesError: an input that does not exist.

    Example::

        split("big.jsonl", "chunks/", samples_per_chunk=100_000, compression="gzip")
    """
    started = time.perf_counter()
    paths = list_files([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    fmt = _resolve_format(paths, fmt)
    limit_bytes = parse_size(chunk_size) if chunk_size is not None else None
    if samples_per_chunk is not None and (
        isinstance(samples_per_chunk, bool) or not isinstance(samples_per_chunk, int) or samples_per_chunk < 1
    ):
        raise ConfigError(f"samples per chunk must be a positive int, got {samples_per_chunk!r}")
    if limit_bytes is None and samples_per_chunk is None:
        limit_bytes = DEFAULT_CHUNK_SIZE
    limit_bytes = limit_bytes or (1 << 62)
    limit_samples = samples_per_chunk or (1 << 62)
    memory = parse_size(max_memory)
    if memory < _MIN_MEMORY:
        raise ConfigError(f"max memory must be at least 1MB, got {max_memory!r}")
    comp = compression.lower() if compression else None
    if comp is not None and comp not in COMPRESSIONS:
        raise ConfigError(f"unknown compression {compression!r}: use {', '.join(COMPRESSIONS)}")
    if fmt == "parquet":
        compression = {None: "snappy", "none": "none", "gzip": "gzip", "zstd": "zstd"}[comp]
    else:
        compression = comp or "none"
    if compression == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise ImportError("zstd compression needs the 'zstandard' module: pip install zstandard") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    out = os.fspath(out_dir)
    replaced = _prepare_out_dir(out, paths, overwrite)
    stage = _make_stage(out)
    try:
        chunks, writer, buckets = _write_all(
            paths, stage, fmt, compression, limit_bytes, limit_samples, memory, shuffle, seed, tmp_dir
        )
        if not chunks:
            logger.warning("the inputs hold no records: no chunks written")
        meta = {
            "split": {
                "format": fmt,
                "shuffle": bool(shuffle),
                "seed": seed if shuffle else None,
                "compression": compression,
            }
        }
        write_index(stage, Index(out, {c.name: c for c in chunks}, meta))
        _commit(stage, out, [c.name for c in chunks], replaced)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # leave no partial dataset behind
        raise
    return SplitResult(
        out_dir=out,
        format=fmt,
        chunks=chunks,
        samples=sum(c.samples for c in chunks),
        input_bytes=_input_size(paths),
        record_bytes=writer.record_bytes,
        output_bytes=sum(c.bytes for c in chunks),
        seconds=time.perf_counter() - started,
        index_path=remote.join(out, INDEX_NAME),
        buckets=buckets,
        compression=compression,
    )


def _write_all(
    paths: list[str],
    out: str,
    fmt: str,
    compression: str,
    limit_bytes: int,
    limit_samples: int,
    memory: int,
    shuffle: bool,
    seed: int,
    tmp_dir: str | None,
) -> tuple[list[ChunkEntry], Any, int]:
    """Write every chunk into ``out``; returns ``(chunks, writer, shuffle buckets used)``."""
    chunks: list[ChunkEntry] = []

    def on_chunk(entry: ChunkEntry) -> None:
        chunks.append(dataclasses.replace(entry, format=fmt))
        logger.info("wrote %s: %d samples, %d bytes", entry.name, entry.samples, entry.bytes)

    source: Any
    writer: Any
    if fmt == "parquet":
        source = _ParquetSource(memory)
        first_pf, first_src = source.open(paths[0])
        schema = first_pf.schema_arrow
        first_src.close()
        writer = _ParquetChunkWriter(
            out, compression, limit_bytes, limit_samples, schema, max(1 << 20, memory // 8), on_chunk
        )
        codec: Any = _ArrowCodec(schema)
    else:
        source = _LineSource(fmt)
        writer = _LineChunkWriter(out, _EXTENSIONS[fmt], compression, limit_bytes, limit_samples, None, on_chunk)
        codec = _LineCodec()

    blocks = source.blocks(paths)
    if fmt == "csv":
        blocks = _with_header(blocks, source, writer)
    shuffler = None
    work = None
    try:
        if shuffle:
            work = tempfile.mkdtemp(prefix=".pyloader-split-", dir=tmp_dir or out)
            budget = memory // 2
            size = _input_size(paths)
            expand = (
                4
                if fmt == "parquet" or any(p.lower().endswith((".gz", ".zst", ".zstd", ".gzip")) for p in paths)
                else 1
            )
            k = math.ceil(2 * size * expand / (budget / 3)) if size else 2
            shuffler = _Shuffler(codec, np.random.default_rng(seed), work, budget)
            buckets = shuffler.scatter(blocks, k)
            shuffler.gather(buckets, writer.write_block)
        else:
            for block in blocks:
                writer.write_block(block)
        writer.close_chunk()
    except BaseException:
        writer.abort()
        raise
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return _widen_names(out, chunks), writer, (shuffler.buckets if shuffler is not None else 0)


def _with_header(blocks: Iterator[list[bytes]], source: _LineSource, writer: _LineChunkWriter) -> Iterator[list[bytes]]:
    """Hands the CSV header to the writer as soon as the first input's header row is read."""
    for block in blocks:
        writer.header = source.header
        yield block
    writer.header = source.header


def _widen_names(out_dir: str, chunks: list[ChunkEntry], digits: int = 5) -> list[ChunkEntry]:
    """Past 100000 chunks the 5-digit names would sort wrongly: rename them all to one width."""
    width = len(str(max(len(chunks) - 1, 0)))
    if width <= digits:
        return chunks
    renamed = []
    for i, c in enumerate(chunks):
        new = f"part-{i:0{width}d}" + c.name[c.name.index(".") :]
        os.replace(os.path.join(out_dir, c.name), os.path.join(out_dir, new))
        renamed.append(dataclasses.replace(c, name=new))
    return renamed
