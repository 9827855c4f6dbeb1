"""``split``'s chunk writers: byte records into line files, Arrow batches into Parquet files.

Example::

    writer = LineChunkWriter(out, ".jsonl", "gzip", 64 << 20, 1 << 62, None, chunks.append)
    writer.write_block([b'{"a": 1}\\n'])
    writer.close_chunk()
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Sequence
from typing import Any

from pyloader_core.index import ChunkEntry
from pyloader_core.storage.access import file_sha256
from pyloader_core.storage.checks import sha256_hasher

__all__ = ["COMPRESSIONS", "HashingRaw", "LineChunkWriter", "ParquetChunkWriter"]

#: Compression names and the suffix they add to line-format chunks.
COMPRESSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}


class HashingRaw(io.RawIOBase):
    """A raw file that hashes and counts what is written through it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.sha = sha256_hasher()
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


class LineChunkWriter:
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
        self._raw: HashingRaw | None = None
        self._buf: io.BufferedWriter | None = None
        self._out: Any = None
        self._name = ""
        self._samples = 0
        self._bytes = 0

    def _open(self) -> None:
        self._name = f"part-{self.index:05d}{self.ext}{COMPRESSIONS[self.compression]}"
        self.index += 1
        self.created.append(self._name)
        self._raw = HashingRaw(os.path.join(self.out_dir, self._name))
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


class ParquetChunkWriter:
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
        entry = ChunkEntry(self._name, self._samples, os.path.getsize(path), file_sha256(path), "")
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
