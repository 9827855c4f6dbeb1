"""``split``'s two-pass external shuffle: scatter records into random buckets, then permute each.

Example::

    shuffler = Shuffler(LineCodec(), np.random.default_rng(1), work_dir, budget=128 << 20)
    shuffler.gather(shuffler.scatter(blocks, k=8), writer.write_block)
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

__all__ = ["ArrowCodec", "LineCodec", "Shuffler"]

logger = logging.getLogger(__name__)

_BLOCK_RECORDS = 4096
_MAX_BUCKETS = 256  # open bucket files at once; more is reached by recursion
_LEN = struct.Struct("<I")


class LineCodec:
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


class ArrowCodec:
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


class Shuffler:
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
