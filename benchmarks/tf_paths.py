"""Input-pipeline throughput (no model) of the TensorFlow paths over the same generated JSON-lines chunks.

Paths, all yielding ``(input_ids [B, 128] int64, label [B] int64)`` batches of every sample once per pass:

* ``core``: ``pyloader_core.DataLoader.iter_epochs`` iterated in Python (no TensorFlow): the ceiling.
* ``pyloader_tf``: ``make_tf_dataset(...).map(to_pair).prefetch(AUTOTUNE)`` (what ``examples/train_tf.py`` trains on).
* ``tf.data``: ``TextLineDataset`` + ``shuffle`` + ``map`` (per line) + ``batch`` + ``prefetch`` (the demo's baseline).
* ``tf.data-vec``: ``TextLineDataset`` + ``shuffle`` + ``batch`` + ``map`` (whole batch at once) + ``prefetch``.

Run (from the repository root)::

    TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=. python benchmarks/tf_paths.py [--passes 3] [--workers 2]
        [--worker-type process|thread] [--chunks 32] [--samples-per-chunk 2000] [--paths core,pyloader_tf,...]

Each pass of a PyLoader path is a new epoch (new worker pool: process workers are spawned per pass,
which is included). Prints samples/s per pass and the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import train_tf  # noqa: E402  (examples/train_tf.py: dataset generator and the demo's pipelines)

PATHS = ("core", "pyloader_tf", "tf.data", "tf.data-vec")


def core_passes(data_dir: str, vocab_file: str, args: argparse.Namespace) -> Callable[[], Iterable[Any]]:
    from pyloader_core import DataLoader, JsonLineDataReader, NumpyDataCollator, TextDataset

    loader = DataLoader(
        JsonLineDataReader(batch_size=args.batch_size),
        TextDataset(vocab_file, max_seq_len=train_tf.MAX_SEQ_LEN),
        NumpyDataCollator(),
        data_dir,
        shuffle=True,
        random_seed=train_tf.SEED,
        num_workers=args.workers,
        worker_type=args.worker_type,
        max_queue_size=4,
    )
    epochs = iter(range(1_000_000))
    return lambda: ((b["input_ids"], b["label"]) for b in loader.iter_epochs([next(epochs)]))


def vectorized_tf_pipeline(data_dir: str, vocab_file: str, args: argparse.Namespace) -> Any:
    """Like ``train_tf.plain_tf_pipeline``, but batching first and parsing a whole batch per ``map`` call."""
    import tensorflow as tf

    files = sorted(os.path.join(data_dir, f) for f in os.listdir(data_dir) if f.endswith(".jsonl"))
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ),
        default_value=train_tf.SPECIALS.index("<unk>"),
    )
    width = train_tf.MAX_SEQ_LEN

    def parse(lines: Any) -> tuple[Any, Any]:
        text = tf.strings.regex_replace(lines, r'^.*"input_text": "([^"]*)".*$', r"\1")
        label = tf.strings.to_number(tf.strings.regex_replace(lines, r'^.*"label": (\d+).*$', r"\1"), tf.int64)
        ids = tf.ragged.map_flat_values(table.lookup, tf.strings.split(text))[:, :width]
        return ids.to_tensor(default_value=0, shape=[None, width]), label

    file_ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=train_tf.SEED)
    return (
        tf.data.TextLineDataset(file_ds)
        .shuffle(args.samples_per_chunk, seed=train_tf.SEED)
        .batch(args.batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def measure(make_pass: Callable[[], Iterable[Any]], n_total: int, passes: int) -> list[float]:
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in make_pass())
        if n != n_total:
            raise AssertionError(f"a pass yielded {n} samples, expected {n_total}")
        rates.append(n / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--samples-per-chunk", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-type", choices=["thread", "process"], default="process")
    ap.add_argument("--passes", type=int, default=3, help="passes (epochs) per path (default 3)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    args = ap.parse_args(argv)
    chosen = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PATHS))
    if unknown:
        ap.error(f"unknown paths {unknown}; choose from {PATHS}")

    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="pyloader-tf-bench-") as root:
        data_dir, vocab_file = train_tf.make_dataset(root, args.chunks, args.samples_per_chunk)
        n_total = args.chunks * args.samples_per_chunk
        print(
            f"{n_total:,} samples in {args.chunks} chunks, batch {args.batch_size}, {args.passes} passes per path; "
            f"PyLoader: {args.workers} {args.worker_type} workers; TensorFlow {tf.__version__}, {os.cpu_count()} CPUs"
        )
        makers: dict[str, Callable[[], Callable[[], Iterable[Any]]]] = {
            "core": lambda: core_passes(data_dir, vocab_file, args),
            "pyloader_tf": lambda: _reiterable(train_tf.pyloader_pipeline(data_dir, vocab_file, args)),
            "tf.data": lambda: _reiterable(train_tf.plain_tf_pipeline(data_dir, vocab_file, args)),
            "tf.data-vec": lambda: _reiterable(vectorized_tf_pipeline(data_dir, vocab_file, args)),
        }
        for name in chosen:
            rates = measure(makers[name](), n_total, args.passes)
            per_pass = ", ".join(f"{r:,.0f}" for r in rates)
            median = statistics.median(rates)
            print(f"  {name:12s} median {median:>9,.0f} samples/s   per pass [{per_pass}]", flush=True)


def _reiterable(ds: Any) -> Callable[[], Iterable[Any]]:
    return lambda: ds


if __name__ == "__main__":  # required: process workers are started with spawn and re-import this file
    main()
