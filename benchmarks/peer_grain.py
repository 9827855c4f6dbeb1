"""Grain (``pip install grain``) doing the same work, on either workload (imported only by the ``*grain-*`` rows).

Grain's ``Dataset`` API, chunk files read whole as every other contender does::

    grain.MapDataset.source(files)                       # one element per chunk file (random access)
        .map(ChunkBatches(workload, vocab))              # chunk -> the list of its 64-sample batches
        .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))  # one chunk ahead
    -> grain.experimental.FlatMapIterDataset(..., Flatten())                        # -> one batch per element
    -> .mp_prefetch(grain.MultiprocessingOptions(num_workers=2, per_worker_buffer_size=8))

``mp_prefetch`` slices the files across its worker processes (file ``i`` to worker ``i % workers``; Grain
starts them with *spawn*); each reads and encodes its chunks with the shared code (one chunk ahead, in a
thread of the worker) and hands out ``{input_ids, attention_mask, label}`` numpy batches, which Grain
copies into shared memory for the main process. On the "lists" workload the batches are collated
(``np.asarray``) in the worker too.

Two other shapes were tried and are slower, both for reasons inside Grain 0.2.x:

- ``grain.experimental.InterleaveIterDataset`` over ``MapDataset.source(files).map(file -> MapDataset)``
  (the pattern its docs give for file sources): ``mp_prefetch`` takes each worker's initial state in the
  main process, which makes the interleave build its first file's dataset there, i.e. reads and encodes
  chunk 0 in the main process once per worker before any worker starts (TTFB ~0.8-1.2 s instead of ~0.4 s).
- a ``.map(collate)`` stage over list-of-lists batches: every stage walks its elements leaf by leaf for its
  byte-size statistics (``tree_lib.map_structure``), ~15 ms per 64 x 128 batch of lists, ~15x the collation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grain

from benchmarks.workload import batches_of, encode_file, make_encoder, make_reader

__all__ = ["ChunkBatches", "Flatten", "grain_loader", "pipeline"]

#: Batches each worker may have ready ahead of the consumer (Grain's default is 1; 1, 8 and 32 measured
#: the same within the noise here).
PER_WORKER_BUFFER = 8


class ChunkBatches:
    """A chunk file -> the list of its batches (dicts of numpy arrays); runs in the worker that owns the file.

    Picklable (Grain ships it to its spawned workers); the reader and encoder are built lazily in each
    process, once (the vocab is loaded once per worker, as in every other contender).
    """

    def __init__(self, workload: str, vocab: str) -> None:
        self.workload = workload
        self.vocab = vocab
        self._parts: tuple[Any, ...] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"workload": self.workload, "vocab": self.vocab, "_parts": None}

    def _get_parts(self) -> tuple[Any, ...]:
        if self._parts is None:
            if self.workload == "lists":
                from benchmarks.lists_workload import make_parts

                self._parts = make_parts()
            else:
                self._parts = (make_reader(), make_encoder(self.vocab))
        return self._parts

    def __call__(self, path: str) -> list[dict[str, Any]]:
        parts = self._get_parts()
        if self.workload == "lists":
            from benchmarks.lists_workload import encode_chunk, slice_batches

            reader, dataset, collator = parts
            encoded, n = encode_chunk(reader, dataset, path)
            return [collator.collate_batch(b) for b in slice_batches(encoded, n)]
        reader, encoder = parts
        encoded, n = encode_file(reader, encoder, path)
        return list(batches_of(encoded, n))


class Flatten(grain.experimental.FlatMapTransform):
    """A chunk's list of batches -> its batches, one element each."""

    max_fan_out = 1 << 20  # only FlatMapMapDataset uses it; FlatMapIterDataset has no limit

    def flat_map(self, element: Sequence[Any]) -> Sequence[Any]:
        return element


def pipeline(files: list[str], vocab: str, num_workers: int, workload: str,
             buffer: int = PER_WORKER_BUFFER) -> grain.IterDataset:
    """The Grain pipeline over ``files`` (see the module docstring)."""
    chunks = (
        grain.MapDataset.source(list(files))
        .map(ChunkBatches(workload, vocab))
        # the default ReadOptions (16 threads, 500 elements ahead) would hold up to 500 encoded chunks
        .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
    )
    batches = grain.experimental.FlatMapIterDataset(chunks, Flatten())
    return batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=buffer))


def grain_loader(ctx: Any, num_workers: int, workload: str) -> Iterator[tuple[Any, Any, Any]]:
    it = iter(pipeline(ctx.files, ctx.vocab, num_workers, workload))
    ctx.extra.update(grain_version=grain.__version__, per_worker_buffer_size=PER_WORKER_BUFFER)
    try:
        for b in it:
            yield b["input_ids"], b["attention_mask"], b["label"]
    finally:
        it.close()  # Grain's advice for mp_prefetch pipelines: stop the worker processes now, not at GC
