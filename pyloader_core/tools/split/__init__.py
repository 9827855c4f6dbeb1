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

    from pyloader_core.tools.split import split

    result = split(["big.jsonl"], "data/", chunk_size="64MB", shuffle=True, seed=1, compression="zstd")
    result.samples, len(result.chunks)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pyloader_core import storage
from pyloader_core.errors import ConfigError
from pyloader_core.formats import FORMATS, detect_format, get_format, split_formats
from pyloader_core.index import ChunkEntry, Index
from pyloader_core.options import check_int
from pyloader_core.sizes import parse_size
from pyloader_core.storage.compression import is_compressed
from pyloader_core.storage.paths import INDEX_NAME
from pyloader_core.tools.indexing import write_index
from pyloader_core.tools.split.shuffle import ArrowCodec, LineCodec, Shuffler
from pyloader_core.tools.split.staging import commit, make_stage, prepare_out_dir, widen_names
from pyloader_core.tools.split.writers import COMPRESSIONS, LineChunkWriter, ParquetChunkWriter

__all__ = ["COMPRESSIONS", "DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_MEMORY", "SplitOptions", "SplitResult", "split"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64 << 20
DEFAULT_MAX_MEMORY = 256 << 20
_MIN_MEMORY = 1 << 20
_NO_LIMIT = 1 << 62
_PARQUET_CODECS = {None: "snappy", "none": "none", "gzip": "gzip", "zstd": "zstd"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitOptions:
    """How :func:`split` cuts its inputs, validated on construction.

    Attributes:
        fmt: a format name or alias that ``split`` reads (``jsonl``, ``csv``, ``parquet``, ``txt``);
            default: told from the input names.
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
        overwrite: replace earlier ``part-*`` chunks in the output directory.

    Example::

        SplitOptions(samples_per_chunk=100_000, shuffle=True, seed=1, compression="zstd")
    """

    fmt: str | None = None
    chunk_size: int | str | None = None
    samples_per_chunk: int | None = None
    shuffle: bool = False
    seed: int = 42
    compression: str | None = None
    max_memory: int | str = DEFAULT_MAX_MEMORY
    tmp_dir: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.samples_per_chunk is not None:
            check_int("samples per chunk", self.samples_per_chunk, 1, "a positive int")
        if self.chunk_size is not None:
            parse_size(self.chunk_size)
        if parse_size(self.max_memory) < _MIN_MEMORY:
            raise ConfigError(f"max memory must be at least 1MB, got {self.max_memory!r}")
        comp = self.compression.lower() if self.compression else None
        if comp is not None and comp not in COMPRESSIONS:
            raise ConfigError(f"unknown compression {self.compression!r}: use {', '.join(COMPRESSIONS)}")
        check_int("seed", self.seed)

    @property
    def limits(self) -> tuple[int, int]:
        """``(bytes, samples)`` a chunk may hold at most."""
        limit_bytes = parse_size(self.chunk_size) if self.chunk_size is not None else None
        if limit_bytes is None and self.samples_per_chunk is None:
            limit_bytes = DEFAULT_CHUNK_SIZE
        return limit_bytes or _NO_LIMIT, self.samples_per_chunk or _NO_LIMIT

    def codec(self, fmt: str) -> str:
        """The compression written for ``fmt`` (Parquet: the column codec)."""
        comp = self.compression.lower() if self.compression else None
        compression = _PARQUET_CODECS[comp] if fmt == "parquet" else comp or "none"
        if compression == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError:
                raise ImportError("zstd compression needs the 'zstandard' module: pip install zstandard") from None
        return compression


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


def _resolve_format(inputs: Sequence[str], fmt: str | None) -> str:
    readable = split_formats()
    if fmt is not None:
        try:
            name = get_format(fmt).name
        except ConfigError:
            name = fmt.lower()
        if name not in readable:
            raise ConfigError(f"unknown format {fmt!r}: split reads {', '.join(readable)}")
        return name
    found = {p: detect_format(p) for p in inputs}
    unknown = [p for p, f in found.items() if f is None]
    if unknown:
        raise ConfigError(f"cannot tell the format of {unknown[0]} from its name; pass --format ({', '.join(readable)})")
    kinds = sorted({f for f in found.values() if f is not None})
    if len(kinds) > 1:
        raise ConfigError(f"inputs mix formats ({', '.join(kinds)}); split them separately or pass --format")
    if kinds[0] not in readable:
        raise ConfigError(f"split reads {', '.join(readable)}, not {kinds[0]} ({inputs[0]})")
    return kinds[0]


def _input_size(paths: Sequence[str]) -> int:
    total = 0
    for p in paths:
        try:
            total += storage.file_size(p)
        except OSError:
            pass
    return total


def split(
    inputs: str | Sequence[str], out_dir: str | os.PathLike[str], options: SplitOptions | None = None, **fields: Any
) -> SplitResult:
    """Split ``inputs`` into chunk files in ``out_dir`` and write ``out_dir/index.json``.

    Args:
        inputs: files, directories, globs or URLs (expanded with :func:`~pyloader_core.storage.list_files`).
        out_dir: a local directory; created if needed. It must hold no data files, unless
            ``overwrite`` (its ``part-*`` files and ``index.json`` are then replaced, once the new
            ones are complete).
        options: a :class:`SplitOptions`; ``fields`` (its attribute names) build one, or override it.

    Raises:
        ConfigError: bad options, mixed or unknown formats, a non-empty ``out_dir``.
        DataFormatError: an input that is not what its format says.
        NoFilesError: an input that does not exist.

    Example::

        split("big.jsonl", "chunks/", SplitOptions(samples_per_chunk=100_000, compression="gzip"))
        split("big.jsonl", "chunks/", samples_per_chunk=100_000)  # the same, as keywords
    """
    opts = dataclasses.replace(options, **fields) if options is not None else SplitOptions(**fields)
    started = time.perf_counter()
    paths = storage.list_files([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    fmt = _resolve_format(paths, opts.fmt)
    compression = opts.codec(fmt)
    out = os.fspath(out_dir)
    replaced = prepare_out_dir(out, paths, opts.overwrite)
    stage = make_stage(out)
    try:
        chunks, record_bytes, buckets = _write_all(paths, stage, fmt, compression, opts)
        if not chunks:
            logger.warning("the inputs hold no records: no chunks written")
        meta = {
            "split": {
                "format": fmt,
                "shuffle": bool(opts.shuffle),
                "seed": opts.seed if opts.shuffle else None,
                "compression": compression,
            }
        }
        write_index(stage, Index(out, {c.name: c for c in chunks}, meta))
        commit(stage, out, [c.name for c in chunks], replaced)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # leave no partial dataset behind
        raise
    return SplitResult(
        out_dir=out,
        format=fmt,
        chunks=chunks,
        samples=sum(c.samples for c in chunks),
        input_bytes=_input_size(paths),
        record_bytes=record_bytes,
        output_bytes=sum(c.bytes for c in chunks),
        seconds=time.perf_counter() - started,
        index_path=storage.join(out, INDEX_NAME),
        buckets=buckets,
        compression=compression,
    )


def _pipeline(paths: list[str], out: str, fmt: str, compression: str, opts: SplitOptions, on_chunk: Any) -> Any:
    """``(blocks, writer, shuffle codec)`` for ``fmt``: the format's framing, and the writer that fits it."""
    memory = parse_size(opts.max_memory)
    limit_bytes, limit_samples = opts.limits
    framing = FORMATS[fmt].split_source
    assert framing is not None
    source = framing(memory)
    if source.arrow:
        schema = _schema_of(paths[0])
        group = max(1 << 20, memory // 8)
        writer: Any = ParquetChunkWriter(out, compression, limit_bytes, limit_samples, schema, group, on_chunk)
        return source.blocks(paths), writer, ArrowCodec(schema)
    ext = FORMATS[fmt].suffixes[0]
    writer = LineChunkWriter(out, ext, compression, limit_bytes, limit_samples, None, on_chunk)
    return _with_header(source.blocks(paths), source, writer), writer, LineCodec()


def _schema_of(path: str) -> Any:
    from pyloader_core.formats.parquet import close_parquet, open_parquet

    pf = open_parquet(path)
    try:
        return pf.schema_arrow
    finally:
        close_parquet(pf)


def _write_all(
    paths: list[str], out: str, fmt: str, compression: str, opts: SplitOptions
) -> tuple[list[ChunkEntry], int, int]:
    """Write every chunk into ``out``; returns ``(chunks, record bytes, shuffle buckets used)``."""
    chunks: list[ChunkEntry] = []

    def on_chunk(entry: ChunkEntry) -> None:
        chunks.append(dataclasses.replace(entry, format=fmt))
        logger.info("wrote %s: %d samples, %d bytes", entry.name, entry.samples, entry.bytes)

    blocks, writer, codec = _pipeline(paths, out, fmt, compression, opts, on_chunk)
    work = None
    buckets = 0
    try:
        if opts.shuffle:
            work = tempfile.mkdtemp(prefix=".pyloader-split-", dir=opts.tmp_dir or out)
            buckets = _shuffled(blocks, writer, codec, paths, fmt, opts, work)
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
    return widen_names(out, chunks), writer.record_bytes, buckets


def _shuffled(blocks: Any, writer: Any, codec: Any, paths: list[str], fmt: str, opts: SplitOptions, work: str) -> int:
    """Write ``blocks`` through the external shuffle; returns the bucket files used."""
    budget = parse_size(opts.max_memory) // 2
    size = _input_size(paths)
    expand = 4 if fmt == "parquet" or any(is_compressed(p) for p in paths) else 1
    k = math.ceil(2 * size * expand / (budget / 3)) if size else 2
    shuffler = Shuffler(codec, np.random.default_rng(opts.seed), work, budget)
    shuffler.gather(shuffler.scatter(blocks, k), writer.write_block)
    return shuffler.buckets


def _with_header(blocks: Iterator[list[bytes]], source: Any, writer: LineChunkWriter) -> Iterator[list[bytes]]:
    """Hands the CSV header to the writer as soon as the first input's header row is read."""
    for block in blocks:
        writer.header = source.header
        yield block
    writer.header = source.header
