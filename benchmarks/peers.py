"""The contenders: every way of feeding the same batches, each measured the same way.

A contender is a generator of ``(input_ids, attention_mask, label)`` batches over a list of chunk
files of its workload: the default one (:mod:`benchmarks.workload`: orjson reader + vectorised
``TextDataset`` returning numpy) or "lists" (:mod:`benchmarks.lists_workload`: plain user code, stdlib
``json`` and a ``Dataset`` returning lists of lists; its rows are named ``lists-*``). :func:`measure`
times one pass of it in the current process: time to the first batch and samples/s, both counted from
the moment the pipeline starts being built (module imports excluded, worker start-up included).

This module imports only the standard library, numpy and ``benchmarks.workload`` at top level: process
workers started with *spawn* re-import the main module (``benchmarks.run``, which imports this one),
and frameworks are imported only by the contenders that use them (``peer_torch``, ``peer_tf``,
``peer_hf``, ``peer_grain``, ``peer_torch_lists``; ``lists_workload`` imports ``pyloader_core``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.perfect_pool import perfect_pool
from benchmarks.workload import Tally, batches_of, encode_file, make_encoder, make_reader

__all__ = [
    "CONTENDERS", "DEFAULT", "LISTS_PREFIX", "QUICK", "QUICK_LISTS", "WORKLOADS", "Contender", "Context", "measure",
    "missing_module",
]

#: The workloads, in the order the runner reports them.
WORKLOADS = ("default", "lists")
#: Row names of the "lists" workload start with this.
LISTS_PREFIX = "lists-"

Batch = tuple[Any, Any, Any]


@dataclasses.dataclass
class Context:
    """What a contender gets: the vocab, its files, and a dict to put diagnostics in."""

    vocab: str
    files: list[str]
    samples_per_chunk: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Contender:
    """One row of the table."""

    name: str
    run: Callable[[Context], Iterator[Any]]  # batches; or each chunk's totals (the pool rows)
    description: str
    requires: tuple[str, ...] = ()  # importable modules it needs (else the row is skipped)
    scale: int = 1  # reads ``scale`` times the base data
    workers: int | None = None  # background workers (for the "equal workers" comparison)
    family: str = ""  # bare, pyloader, torch-numpy, torch-tensor, tf, hf, grain
    module: str | None = None  # benchmarks.<module> to import before timing starts (frameworks)
    workload: str = "default"  # which data and per-sample work: "default" or "lists" (see WORKLOADS)


def missing_module(contender: Contender) -> str | None:
    """The first module ``contender`` needs that is not installed, or ``None``."""
    for module in contender.requires:
        if importlib.util.find_spec(module) is None:
            return module
    return None


# -- bare loop --------------------------------------------------------------------------------------


def bare_loop(ctx: Context) -> Iterator[Batch]:
    """One thread does everything: read a chunk, encode it, hand out its batches (the per-core limit)."""
    reader, encoder = make_reader(), make_encoder(ctx.vocab)
    chunk_s: list[float] = []
    for path in ctx.files:
        start = time.perf_counter()
        encoded, n = encode_file(reader, encoder, path)
        chunk_s.append(time.perf_counter() - start)
        for b in batches_of(encoded, n):
            yield b["input_ids"], b["attention_mask"], b["label"]
    ctx.extra["first_chunk_s"] = chunk_s[0]  # read + encode of the first chunk, cold (what TTFB is held to)
    ctx.extra["median_chunk_s"] = statistics.median(chunk_s)


# -- PyLoader ---------------------------------------------------------------------------------------


def pyloader(
    num_workers: int | str, worker_type: str, workload: str = "default"
) -> Callable[[Context], Iterator[Batch]]:
    def run(ctx: Context) -> Iterator[Batch]:
        from pyloader_core import DataLoader, NumpyDataCollator

        if workload == "lists":
            from benchmarks.lists_workload import make_parts

            parts = make_parts()  # the user's own DataReader, Dataset and DataCollator subclasses
        else:
            parts = make_reader(), make_encoder(ctx.vocab), NumpyDataCollator()
        loader = DataLoader(
            *parts,
            ctx.files,
            num_workers=num_workers,
            worker_type=worker_type,  # no start_method: the library's default is what is measured
        )
        with loader:
            for b in loader:
                yield b["input_ids"], b["attention_mask"], b["label"]
        stats = loader.stats()
        ctx.extra.update(
            wait_s=round(stats["wait_s"], 4),
            num_workers=stats["num_workers"],
            worker_busy_s={str(k): round(v, 3) for k, v in sorted(stats["worker_busy_s"].items())},
        )

    return run


def bare_lists(ctx: Context) -> Iterator[Batch]:
    """The "lists" workload's bare loop: read a chunk, encode it (lists), collate each batch (np.asarray)."""
    from benchmarks.lists_workload import encode_chunk, make_parts, slice_batches

    reader, dataset, collator = make_parts()
    chunk_s: list[float] = []
    for path in ctx.files:
        start = time.perf_counter()
        encoded, n = encode_chunk(reader, dataset, path)
        chunk_s.append(time.perf_counter() - start)
        for b in slice_batches(encoded, n):
            c = collator.collate_batch(b)
            yield c["input_ids"], c["attention_mask"], c["label"]
    ctx.extra["first_chunk_s"] = chunk_s[0]
    ctx.extra["median_chunk_s"] = statistics.median(chunk_s)


# -- the frameworks (imported lazily) ---------------------------------------------------------------


def _lazy(module: str, func: str, *args: Any) -> Callable[[Context], Iterator[Batch]]:
    """``benchmarks.<module>.<func>(ctx, *args)``; the runner imports the module before timing."""

    def run(ctx: Context) -> Iterator[Batch]:
        mod = importlib.import_module(f"benchmarks.{module}")
        return getattr(mod, func)(ctx, *args)

    return run


def _contenders() -> dict[str, Contender]:
    rows: list[Contender] = [
        Contender("bare", bare_loop, "single-thread Python loop: read, encode, batch (the per-core limit)",
                  family="bare", workers=0),
        Contender("pyloader-0", pyloader(0, "thread"), "PyLoader, num_workers=0 (inline, consumer thread)",
                  family="pyloader", workers=0),
    ]
    for kind in ("thread", "process"):
        for w in (1, 2):
            rows.append(Contender(f"pyloader-{kind}-{w}", pyloader(w, kind), f"PyLoader, {w} {kind} worker(s)",
                                  family="pyloader", workers=w))
    rows += [
        Contender("pyloader-auto", pyloader("auto", "process"),
                  "PyLoader, num_workers='auto' (process; grows from 1 while the consumer waits)", family="pyloader"),
        Contender("pyloader-process-2-4x", pyloader(2, "process"), "PyLoader, 2 process workers, 4x the data",
                  family="pyloader", workers=2, scale=4),
    ]
    for collate in ("numpy", "tensor"):
        for w in (0, 1, 2):
            how = "numpy batches (pickled)" if collate == "numpy" else "torch.from_numpy tensors (shared memory)"
            rows.append(Contender(
                f"torch-{collate}-{w}", _lazy("peer_torch", "torch_loader", w, collate == "tensor"),
                f"torch DataLoader over an IterableDataset (files sharded per worker), {w} workers, {how}",
                requires=("torch",), family=f"torch-{collate}", workers=w, module="peer_torch",
            ))
    rows += [
        Contender("tf-vectorised", _lazy("peer_tf", "tf_vectorised"),
                  "tf.data: TextLineDataset -> batch 64 -> vectorised map (tf.strings + StaticHashTable) -> prefetch",
                  requires=("tensorflow",), family="tf", module="peer_tf"),
        Contender("tf-per-element", _lazy("peer_tf", "tf_per_element"),
                  "tf.data: TextLineDataset -> per-line map (tf.strings + StaticHashTable) -> padded_batch 64 -> "
                  "prefetch", requires=("tensorflow",), family="tf", module="peer_tf"),
        Contender("tf-pyfunc", _lazy("peer_tf", "tf_pyfunc_batched"),
                  "tf.data: TextLineDataset -> batch 64 -> tf.py_function(the shared Python encode) -> prefetch",
                  requires=("tensorflow",), family="tf", module="peer_tf"),
        Contender("tf-pyfunc-element", _lazy("peer_tf", "tf_pyfunc_element"),
                  "tf.data: TextLineDataset -> per-line tf.py_function(the shared Python encode) -> batch 64 "
                  "(~40x slower than the bare loop)", requires=("tensorflow",), family="tf", module="peer_tf"),
        Contender("hf-streaming-2", _lazy("peer_hf", "hf_streaming", 2),
                  "HF datasets streaming (local json) -> batched map (the shared encode) -> torch DataLoader, "
                  "2 workers", requires=("datasets", "torch"), family="hf", workers=2, module="peer_hf"),
        Contender("pool-2", perfect_pool(2), "a perfect fork Pool of 2 doing each chunk's whole job (batches "
                  "touched there), returning only totals", family="pool", workers=2, module="perfect_pool"),
        Contender("grain-2", _lazy("peer_grain", "grain_loader", 2, "default"),
                  "Grain: MapDataset.source(files).map(chunk -> its batches) -> to_iter_dataset -> "
                  "FlatMapIterDataset -> mp_prefetch, 2 workers", requires=("grain",), family="grain", workers=2,
                  module="peer_grain"),
    ]
    # The "lists" workload: the user's own reader / dataset / collator returning Python lists.
    p = LISTS_PREFIX
    rows += [
        Contender(f"{p}bare", bare_lists,
                  "lists: single-thread loop: read (json), encode (lists), np.asarray per batch (the per-core limit)",
                  family="bare", workers=0, module="lists_workload", workload="lists"),
    ]
    for kind in ("thread", "process"):
        for w in (1, 2):
            rows.append(Contender(f"{p}pyloader-{kind}-{w}", pyloader(w, kind, "lists"),
                                  f"lists: PyLoader, {w} {kind} worker(s)", family="pyloader", workers=w,
                                  module="lists_workload", workload="lists"))
    rows += [
        Contender(f"{p}torch-numpy-2", _lazy("peer_torch_lists", "torch_lists_loader", 2),
                  "lists: torch DataLoader over an IterableDataset (files sharded per worker), 2 workers, "
                  "numpy batches collated in the workers", requires=("torch",), family="torch-numpy", workers=2,
                  module="peer_torch_lists", workload="lists"),
        Contender(f"{p}pool-2", perfect_pool(2, "lists"), "lists: a perfect fork Pool of 2 doing each chunk's "
                  "whole job, returning only totals", family="pool", workers=2, module="perfect_pool",
                  workload="lists"),
        Contender(f"{p}grain-2", _lazy("peer_grain", "grain_loader", 2, "lists"),
                  "lists: Grain, the same pipeline as grain-2 (batches collated in the workers), 2 workers",
                  requires=("grain",), family="grain", workers=2, module="peer_grain", workload="lists"),
    ]
    return {c.name: c for c in rows}


CONTENDERS: dict[str, Contender] = _contenders()

#: The rows of a full run, both workloads (``tf-pyfunc-element`` is opt-in: ~40x slower than the bare loop).
DEFAULT = [n for n in CONTENDERS if n != "tf-pyfunc-element"]
#: ``--quick`` on the default workload: the core and torch rows (no TensorFlow / datasets / Grain start-up), for CI.
QUICK = [
    "bare", "pyloader-0", "pyloader-thread-1", "pyloader-thread-2", "pyloader-process-1", "pyloader-process-2",
    "pyloader-auto", "pyloader-process-2-4x", "torch-numpy-0", "torch-numpy-2", "torch-tensor-2", "pool-2",
]
#: ``--quick`` on the "lists" workload: every one of its rows (torch and Grain are skipped rows where not installed).
QUICK_LISTS = [n for n in CONTENDERS if CONTENDERS[n].workload == "lists"]


# -- measuring --------------------------------------------------------------------------------------


def measure(contender: Contender, ctx: Context) -> dict[str, Any]:
    """One pass of ``contender`` over ``ctx.files``: samples/s, time to first batch, the tally."""
    tally = Tally()
    first: float | None = None
    first_n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for item in contender.run(ctx):
        if isinstance(item, dict):  # a chunk's totals, counted in the worker that made it (the pool rows)
            tally.add(item)
        else:
            tally.touch(*item)
        if first is None:
            first = time.perf_counter() - start
            first_n = tally.samples
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    first = total if first is None else first
    return {
        "seconds": total,
        "ttfb_s": first,
        "samples_per_s": tally.samples / total if total > 0 else 0.0,
        # the rate once the first batch is out: what the pipeline sustains, start-up excluded
        "steady_samples_per_s": (tally.samples - first_n) / (total - first) if total > first else 0.0,
        "main_cpu_s": cpu,  # CPU time of this process (every thread; not child processes)
        "tally": tally.as_dict(),
        "extra": ctx.extra,
    }
