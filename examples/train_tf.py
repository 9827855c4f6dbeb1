"""PyLoader + TensorFlow demo: train a small Keras text classifier from generated JSON-lines chunks.

Run it (from the repository root, with tensorflow-cpu installed)::

    TF_CPP_MIN_LOG_LEVEL=2 python examples/train_tf.py [--chunks 32] [--samples-per-chunk 2000] [--epochs 2]
        [--batch-size 128] [--workers 2] [--worker-type process|thread] [--baseline] [--keep DIR]

The dataset: ``--chunks`` files of ``--samples-per-chunk`` lines ``{"id": int, "input_text": "w12 w7 ...",
"label": 0|1}`` (20-120 words of a 5,000-word vocabulary; each word carries a hidden score and the label
says whether the words' mean score is positive, so a bag-of-embeddings model can learn it) and a vocab
file. The model (Embedding -> GlobalAveragePooling1D -> Dense) is trained with ``model.fit`` on
``pyloader_tf.make_tf_dataset`` (``TextDataset`` tokenises in the background workers); the demo
prints the loss per epoch and samples/s, both for training and for the input pipeline alone.

``--baseline`` then does the same with the equivalent plain ``tf.data`` pipeline over the same files
(``TextLineDataset`` of the shuffled file list + ``shuffle`` + ``map`` (parse the JSON line with
regexes, split, vocabulary lookup, truncate/pad) + ``batch`` + ``prefetch``) and prints both side by side.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sample_data import MAX_SEQ_LEN, SPECIALS, VOCAB_WORDS, in_workdir, make_dataset  # examples/, beside this script

SEED = 42


# --------------------------------------------------------------------------- dataset


# --------------------------------------------------------------------------- input pipelines


def pyloader_pipeline(data_dir: str, vocab_file: str, args: argparse.Namespace) -> Any:
    """``make_tf_dataset`` -> ``(input_ids, label)`` pairs, prefetched."""
    import tensorflow as tf

    from pyloader_core import JsonLineDataReader, TextDataset
    from pyloader_tf import TFCollator, make_tf_dataset

    ds = make_tf_dataset(
        JsonLineDataReader(batch_size=args.batch_size),
        TextDataset(vocab_file, max_seq_len=MAX_SEQ_LEN),
        TFCollator(),
        data_dir,
        shuffle=True,
        random_seed=SEED,
        num_workers=args.workers,
        worker_type=args.worker_type,
        max_queue_size=4,
        count_batches=True,  # known cardinality: Keras shows steps and warns of nothing
    )
    return ds.map(lambda b: (b["input_ids"], b["label"])).prefetch(tf.data.AUTOTUNE)


def plain_tf_pipeline(data_dir: str, vocab_file: str, args: argparse.Namespace) -> Any:
    """The same batches with plain tf.data: TextLineDataset + shuffle + map + batch + prefetch."""
    import tensorflow as tf

    files = sorted(os.path.join(data_dir, f) for f in os.listdir(data_dir) if f.endswith(".jsonl"))
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER
        ),
        default_value=SPECIALS.index("<unk>"),
    )

    def parse(line: Any) -> tuple[Any, Any]:
        # json.dumps writes {"id": N, "input_text": "...", "label": L}; the words hold no quotes.
        text = tf.strings.regex_replace(line, r'^.*"input_text": "([^"]*)".*$', r"\1")
        label = tf.strings.to_number(tf.strings.regex_replace(line, r'^.*"label": (\d+).*$', r"\1"), tf.int64)
        ids = table.lookup(tf.strings.split(text))[:MAX_SEQ_LEN]
        ids = tf.pad(ids, [[0, MAX_SEQ_LEN - tf.shape(ids)[0]]])
        return tf.ensure_shape(ids, [MAX_SEQ_LEN]), label

    file_ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=SEED)
    n_batches = -(-args.chunks * args.samples_per_chunk // args.batch_size)
    return (
        tf.data.TextLineDataset(file_ds)
        .shuffle(args.samples_per_chunk, seed=SEED)  # like PyLoader's per-chunk shuffle
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(args.batch_size)
        .apply(tf.data.experimental.assert_cardinality(n_batches))  # as PyLoader's count_batches=True
        .prefetch(tf.data.AUTOTUNE)
    )


# --------------------------------------------------------------------------- model, timing


def make_model(vocab_size: int) -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.layers.Input((MAX_SEQ_LEN,), dtype="int64"),
            keras.layers.Embedding(vocab_size, 16, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def input_rates(ds: Any, n_total: int, passes: int = 2) -> list[float]:
    """Samples/s of each of ``passes`` passes over ``ds`` with no model (the input pipeline alone)."""
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in ds)
        assert n == n_total, (n, n_total)
        rates.append(n / (time.perf_counter() - start))
    return rates


def train(name: str, make_ds: Callable[[], Any], n_total: int, epochs: int) -> dict[str, Any]:
    """Fit a fresh model on ``make_ds()`` for ``epochs``; returns losses and rates."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            dt = time.perf_counter() - self.t0
            rates.append(n_total / dt)
            print(
                f"  [{name}] epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.3f}, "
                f"{n_total / dt:,.0f} samples/s ({dt:.1f} s)",
                flush=True,
            )

    rates: list[float] = []
    ds = make_ds()
    model = make_model(len(SPECIALS) + VOCAB_WORDS)
    history = model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[EpochTimer()])
    pipe = input_rates(make_ds(), n_total)
    print(f"  [{name}] input pipeline alone (no model), 2 passes: {_rates(pipe)} samples/s", flush=True)
    return {"loss": history.history["loss"], "fit": rates, "input": pipe}


def _rates(values: list[float]) -> str:
    return "[" + ", ".join(f"{x:,.0f}" for x in values) + "]"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=32, help="number of chunk files (default 32)")
    ap.add_argument("--samples-per-chunk", type=int, default=2000, help="samples per chunk (default 2000)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    ap.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--workers", type=int, default=2, help="PyLoader background workers (default 2)")
    ap.add_argument("--worker-type", choices=["thread", "process"], default="process", help="default process")
    ap.add_argument("--baseline", action="store_true", help="also run the plain tf.data pipeline and compare")
    ap.add_argument("--keep", metavar="DIR", help="write the dataset to DIR and keep it (default: a temp dir)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace, root: str) -> None:
    import tensorflow as tf

    t0 = time.perf_counter()
    data_dir, vocab_file = make_dataset(root, args.chunks, args.samples_per_chunk)
    n_total = args.chunks * args.samples_per_chunk
    print(
        f"dataset: {args.chunks} chunks x {args.samples_per_chunk} = {n_total:,} samples in {data_dir} "
        f"({time.perf_counter() - t0:.1f} s to generate); TensorFlow {tf.__version__}, {os.cpu_count()} CPUs"
    )
    label = f"PyLoader make_tf_dataset, {args.workers} {args.worker_type} workers"
    print(f"{label}, batch size {args.batch_size}, {args.epochs} epochs:")
    results = {
        "pyloader": train("pyloader", lambda: pyloader_pipeline(data_dir, vocab_file, args), n_total, args.epochs)
    }
    if args.baseline:
        print(f"plain tf.data (TextLineDataset + shuffle + map + batch + prefetch), batch size {args.batch_size}:")
        results["tf.data"] = train(
            "tf.data", lambda: plain_tf_pipeline(data_dir, vocab_file, args), n_total, args.epochs
        )
    print("\nsummary (samples/s; fit = model.fit epoch incl. training, input = pipeline alone):")
    for name, r in results.items():
        losses = " -> ".join(f"{x:.4f}" for x in r["loss"])
        print(f"  {name:9s} fit per epoch {_rates(r['fit'])}  input per pass {_rates(r['input'])}  loss {losses}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    in_workdir(run, args, "pyloader-tf-demo-")


if __name__ == "__main__":  # required: process workers are started with spawn and re-import this file
    main()
