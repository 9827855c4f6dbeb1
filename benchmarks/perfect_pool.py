"""The perfect Pool: a fork ``multiprocessing.Pool`` doing each chunk's whole job, returning only totals.

Each worker reads a chunk, encodes it, cuts its 64-sample batches (the lists workload also collates
each one, as its contenders do) and touches every batch as the consumer would, then returns the
chunk's :class:`~benchmarks.workload.Tally` totals: a few integers. Nothing else crosses between
processes: the reference the issue that asked for 2x called "the ceiling". It is not a strict one (a
loader whose consumer touches the batches in a third process can beat it by a few percent), but the
``*-pool-2`` rows put a number on what "2x the bare loop" can mean on this machine at this minute:
two processes on two cores share caches, memory bandwidth and the VM's neighbours.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.workload import Tally, batches_of, encode_file, make_encoder, make_reader

__all__ = ["perfect_pool"]

_parts: dict[str, Any] = {}  # per worker process: the reader and encoder, made on its first chunk


def _chunk_totals(job: tuple[str, str, str]) -> dict[str, int]:
    workload, vocab, path = job
    tally = Tally()
    if workload == "lists":
        from benchmarks.lists_workload import chunk_batches, make_parts

        parts = _parts.setdefault(workload, make_parts())
        for b in chunk_batches(*parts, path):
            tally.touch(b["input_ids"], b["attention_mask"], b["label"])
    else:
        reader, encoder = _parts.setdefault(workload, (make_reader(), make_encoder(vocab)))
        encoded, n = encode_file(reader, encoder, path)
        for b in batches_of(encoded, n):
            tally.touch(b["input_ids"], b["attention_mask"], b["label"])
    return tally.as_dict()


def perfect_pool(workers: int, workload: str = "default") -> Callable[[Any], Iterator[dict[str, int]]]:
    """A contender's ``run``: yields each chunk's totals as the pool finishes it (any order)."""

    def run(ctx: Any) -> Iterator[dict[str, int]]:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            jobs = [(workload, ctx.vocab, path) for path in ctx.files]
            yield from pool.imap_unordered(_chunk_totals, jobs, chunksize=1)

    return run
