"""PyLoader demo: make a chunked JSON-lines dataset, then train a tiny numpy model from it.

Run it with ``bash scripts/demo.sh`` (sets up ``.venv-demo``), or directly::

    python examples/demo.py [--chunks 32] [--samples-per-chunk 2000] [--workers 2]
                            [--worker-type process|thread] [--epochs 2] [--batch-size 64] [--keep DIR]

The dataset: ``--chunks`` files of ``--samples-per-chunk`` lines, each
``{"id": int, "input_text": "w12 w7 ...", "label": 0|1}``, 20-120 words drawn from a 5,000-word
vocabulary. Each word carries a hidden score; the label is 1 when the words' mean score is positive,
so a bag-of-embeddings model can learn it. The model (mean of word embeddings -> logistic
regression) is trained with plain numpy SGD on the batches the loader yields, and the demo prints
the loss per epoch (going down), time to first batch, samples/s per epoch and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
from sample_data import MAX_SEQ_LEN, SPECIALS, VOCAB_WORDS, in_workdir, make_dataset  # examples/, beside this script

from pyloader_core import DataLoader, JsonLineDataReader, NumpyDataCollator, TextDataset

# --------------------------------------------------------------------------- dataset


# --------------------------------------------------------------------------- model


class BagOfEmbeddings:
    """mean(word embeddings) -> logistic regression, trained with plain SGD in numpy."""

    def __init__(self, vocab_size: int, dim: int = 16, lr: float = 0.5, emb_lr: float = 5.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.emb = (rng.standard_normal((vocab_size, dim)) * 0.1).astype(np.float32)
        self.emb[0] = 0.0  # padding
        self.w = (rng.standard_normal(dim) / np.sqrt(dim)).astype(np.float32)
        self.b = np.float32(0.0)
        self.lr = lr  # dense parameters (w, b): mean gradient over the batch
        self.emb_lr = emb_lr  # sparse embedding rows: per-sample gradient (each row is seen rarely)

    def step(self, input_ids: np.ndarray, mask: np.ndarray, label: np.ndarray) -> tuple[float, float]:
        """One SGD step on a batch; returns (mean log-loss, accuracy) before the update."""
        mask = mask.astype(np.float32)
        lengths = np.maximum(mask.sum(axis=1, keepdims=True), 1.0)  # (B, 1)
        h = (self.emb[input_ids] * mask[..., None]).sum(axis=1) / lengths  # (B, D)
        logit = h @ self.w + self.b
        p = 1.0 / (1.0 + np.exp(-logit))
        y = label.astype(np.float32)
        eps = 1e-7
        loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        acc = float(np.mean((p > 0.5) == (y > 0.5)))

        g = (p - y) / len(y)  # dLoss/dlogit, (B,)
        grad_w = h.T @ g
        grad_b = g.sum()
        # Per-sample gradient of each sample's mean embedding, spread over its tokens: (B, D).
        grad_h = (p - y)[:, None] * self.w[None, :] / lengths
        tok = mask > 0
        rows = np.nonzero(tok)[0]
        np.add.at(self.emb, input_ids[tok], (-self.emb_lr * grad_h[rows]).astype(np.float32))
        self.emb[0] = 0.0
        self.w -= self.lr * grad_w
        self.b -= self.lr * grad_b
        return loss, acc


# --------------------------------------------------------------------------- main


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS in MB of this process and of its largest finished child (Linux: ru_maxrss is KiB)."""
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # macOS reports bytes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 2**20
    return own, child


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=32, help="number of chunk files (default 32)")
    ap.add_argument("--samples-per-chunk", type=int, default=2000, help="samples per chunk (default 2000)")
    ap.add_argument("--workers", type=int, default=2, help="background workers (default 2)")
    ap.add_argument("--worker-type", choices=["thread", "process"], default="process", help="default process")
    ap.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    ap.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--keep", metavar="DIR", help="write the dataset to DIR and keep it (default: a temp dir)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace, root: str) -> None:
    t0 = time.perf_counter()
    data_dir, vocab_file = make_dataset(root, args.chunks, args.samples_per_chunk)
    n_total = args.chunks * args.samples_per_chunk
    print(
        f"dataset: {args.chunks} chunks x {args.samples_per_chunk} samples = {n_total:,} samples in {data_dir} "
        f"({time.perf_counter() - t0:.1f} s to generate)"
    )

    model = BagOfEmbeddings(len(SPECIALS) + VOCAB_WORDS)
    print(f"loader: {args.workers} {args.worker_type} workers, batch size {args.batch_size}, {args.epochs} epochs")

    start = time.perf_counter()
    first_batch_s = None
    epoch_stats: dict[int, list[float]] = {}  # epoch -> [samples, loss_sum, acc_sum, batches, t_start, t_end]
    total = 0
    with DataLoader(
        JsonLineDataReader(batch_size=args.batch_size),
        TextDataset(vocab_file, max_seq_len=MAX_SEQ_LEN),
        NumpyDataCollator(),
        data_dir,
        num_epoch=args.epochs,
        max_queue_size=8,
        shuffle=True,
        random_seed=42,
        num_workers=args.workers,
        worker_type=args.worker_type,
    ) as loader:
        for batch in loader:
            now = time.perf_counter()
            if first_batch_s is None:
                first_batch_s = now - start
            epoch = loader.get_epoch()
            if epoch not in epoch_stats:
                if epoch - 1 in epoch_stats:
                    epoch_stats[epoch - 1][5] = now  # previous epoch ends where this one starts
                epoch_stats[epoch] = [0, 0.0, 0.0, 0, now if epoch_stats else start, now]
            loss, acc = model.step(batch["input_ids"], batch["attention_mask"], batch["label"])
            n = len(batch["label"])
            s = epoch_stats[epoch]
            s[0] += n
            s[1] += loss * n
            s[2] += acc * n
            s[3] += 1
            s[5] = time.perf_counter()
            total += n
            if s[3] % 200 == 0:
                print(f"  epoch {epoch} batch {s[3]:5d}: loss {s[1] / s[0]:.4f}", flush=True)

    elapsed = time.perf_counter() - start
    print(f"time to first batch: {first_batch_s if first_batch_s is not None else float('nan'):.3f} s")
    for epoch, (n, loss_sum, acc_sum, batches, t_a, t_b) in sorted(epoch_stats.items()):
        dt = max(t_b - t_a, 1e-9)
        print(
            f"epoch {epoch}: {int(n):,} samples, {int(batches)} batches, loss {loss_sum / n:.4f}, "
            f"accuracy {acc_sum / n:.3f}, {n / dt:,.0f} samples/s"
        )
    print(f"total samples: {total:,} in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} samples/s overall)")
    own, child = peak_rss_mb()
    if args.worker_type == "process" and args.workers > 0:
        # RUSAGE_CHILDREN gives the peak of the largest finished child, not a sum over the workers.
        print(
            f"peak RSS: main process {own:.0f} MB, largest worker {child:.0f} MB "
            f"(process tree <= {own + child * args.workers:.0f} MB with {args.workers} workers)"
        )
    else:
        print(f"peak RSS: {own:.0f} MB (one process: thread workers)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    in_workdir(run, args, "pyloader-demo-")


if __name__ == "__main__":  # required: process workers are started with spawn and re-import this file
    main()
