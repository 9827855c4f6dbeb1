"""PyLoader + PyTorch demo: train a small text classifier on generated chunk files through pyloader_torch.

Run it (from the repository root, with torch installed; tqdm optional)::

    python examples/train_torch.py                 # PyLoader: TorchChunkDataset, the fast path
    python examples/train_torch.py --baseline      # the same work through a plain torch DataLoader
    python examples/train_torch.py --compare       # both, one after the other, on the same files

    options: [--chunks 16] [--samples-per-chunk 2000] [--epochs 2] [--batch-size 64] [--workers 2]
             [--worker-type process|thread] [--torch-workers 0] [--baseline-workers 2] [--keep DIR]

The dataset: ``--chunks`` JSON-lines files of ``{"id", "input_text", "label"}`` records, 20-120
words from a 5,000-word vocabulary (plus ``vocab.txt``). Each word has a hidden score and the label
says whether a sample's mean score is positive, so a bag of embeddings can learn it.

The model: ``EmbeddingBag`` (mean of the word embeddings, padding excluded) + ``Linear``, trained
with Adam. PyLoader's path is ``TorchChunkDataset(..., num_workers=2, worker_type="process")`` under
``torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)``: PyLoader's worker processes
parse and tokenise, hand arrays back through shared memory, and the training process wraps them with
``torch.from_numpy``. The baseline is what one writes without PyLoader: an ``IterableDataset`` that
reads every k-th file in each of ``--baseline-workers`` torch workers, doing the same parsing and
tokenising (the same reader and tokeniser functions), with batches handed back by torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from sample_data import MAX_SEQ_LEN, SPECIALS, VOCAB_WORDS, in_workdir, make_dataset  # examples/, beside this script
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import IterableDataset, get_worker_info

from pyloader_core import JsonLineDataReader, TextDataset
from pyloader_torch import TorchChunkDataset

try:
    from tqdm import tqdm
except ImportError:  # progress bar optional
    tqdm = None


# --------------------------------------------------------------------------- the two input pipelines


def pyloader_pipeline(args: argparse.Namespace, data_dir: str, vocab_file: str) -> tuple[Any, TorchChunkDataset]:
    ds = TorchChunkDataset(
        JsonLineDataReader(batch_size=args.batch_size),
        TextDataset(vocab_file, max_seq_len=MAX_SEQ_LEN),
        None,  # TorchCollator(NumpyDataCollator()): numpy arrays -> tensors with torch.from_numpy
        data_dir,
        shuffle=True,
        random_seed=42,
        num_workers=args.workers,
        worker_type=args.worker_type,
        max_queue_size=8,
    )
    loader = TorchDataLoader(ds, batch_size=None, num_workers=args.torch_workers, pin_memory=torch.cuda.is_available())
    return loader, ds


class PlainJsonLines(IterableDataset):
    """The baseline: each torch worker reads every k-th file, tokenises and yields shuffled batches."""

    def __init__(self, files: list[str], vocab_file: str, batch_size: int) -> None:
        self.files, self.vocab_file, self.batch_size = files, vocab_file, batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # read by the workers, which torch starts afresh every epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        reader = JsonLineDataReader()
        encoder = TextDataset(self.vocab_file, max_seq_len=MAX_SEQ_LEN)
        rng = np.random.default_rng([42, self.epoch, w])
        files = [self.files[i] for i in np.random.default_rng([42, self.epoch]).permutation(len(self.files))]
        for path in files[w::k]:
            columns, n = reader.read_file(path)
            enc = encoder.batch_encode(columns)
            order = rng.permutation(n)
            for s in range(0, n, self.batch_size):
                sel = order[s : s + self.batch_size]
                yield {key: torch.from_numpy(enc[key][sel]) for key in ("input_ids", "attention_mask", "label")}


def baseline_pipeline(args: argparse.Namespace, data_dir: str, vocab_file: str) -> tuple[Any, PlainJsonLines]:
    files = sorted(os.path.join(data_dir, f) for f in os.listdir(data_dir))
    ds = PlainJsonLines(files, vocab_file, args.batch_size)
    loader = TorchDataLoader(
        ds,
        batch_size=None,
        num_workers=args.baseline_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
    return loader, ds


# --------------------------------------------------------------------------- training


class Classifier(torch.nn.Module):
    def __init__(self, vocab_size: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.head = torch.nn.Linear(dim, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids))


def progress(batches: Iterable[Any], total: int | None, desc: str) -> Iterable[Any]:
    if tqdm is None:
        return batches
    return tqdm(batches, total=total, desc=desc, unit="batch", leave=False, mininterval=0.5)


def train(name: str, loader: Any, ds: Any, args: argparse.Namespace) -> float:
    """Train for ``args.epochs`` epochs; prints loss and samples/s per epoch; returns overall samples/s."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = Classifier(len(SPECIALS) + VOCAB_WORDS).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    total_samples, start = 0, time.perf_counter()
    first_batch_s = None
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        try:
            total = len(loader)
        except TypeError:
            total = None
        seen, loss_sum, correct = 0, 0.0, 0
        t0 = time.perf_counter()
        for step, batch in enumerate(progress(loader, total, f"{name} epoch {epoch}")):
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
            ids = batch["input_ids"].to(device, non_blocking=True)
            label = batch["label"].to(device, non_blocking=True)
            optimizer.zero_grad()
            logits = model(ids)
            loss = loss_fn(logits, label)
            loss.backward()
            optimizer.step()
            n = len(label)
            seen += n
            loss_sum += loss.item() * n
            correct += int((logits.argmax(1) == label).sum())
            if tqdm is None and step % 200 == 0:
                print(f"  {name} epoch {epoch} batch {step}: loss {loss.item():.4f}", flush=True)
        dt = time.perf_counter() - t0
        total_samples += seen
        print(
            f"{name} epoch {epoch}: loss {loss_sum / seen:.4f}, accuracy {correct / seen:.3f}, "
            f"{seen:,} samples in {dt:.1f} s = {seen / dt:,.0f} samples/s",
            flush=True,
        )
    elapsed = time.perf_counter() - start
    rate = total_samples / elapsed
    print(
        f"{name}: {total_samples:,} samples in {elapsed:.1f} s = {rate:,.0f} samples/s overall "
        f"(first batch after {first_batch_s or 0:.2f} s)",
        flush=True,
    )
    return rate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=16, help="chunk files (default 16)")
    ap.add_argument("--samples-per-chunk", type=int, default=2000, help="samples per chunk (default 2000)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    ap.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--workers", type=int, default=2, help="PyLoader workers (default 2)")
    ap.add_argument("--worker-type", choices=["thread", "process"], default="process", help="default process")
    ap.add_argument("--torch-workers", type=int, default=0, help="torch DataLoader workers over PyLoader (default 0)")
    ap.add_argument("--baseline-workers", type=int, default=2, help="torch workers of the baseline (default 2)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--baseline", action="store_true", help="run the plain torch DataLoader instead")
    mode.add_argument("--compare", action="store_true", help="run PyLoader, then the baseline")
    ap.add_argument("--keep", metavar="DIR", help="write the dataset to DIR and keep it (default: a temp dir)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace, root: str) -> dict[str, float]:
    t0 = time.perf_counter()
    data_dir, vocab_file = make_dataset(root, args.chunks, args.samples_per_chunk)
    print(
        f"dataset: {args.chunks} chunks x {args.samples_per_chunk} = {args.chunks * args.samples_per_chunk:,} "
        f"samples ({time.perf_counter() - t0:.1f} s to generate); torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, {'CUDA' if torch.cuda.is_available() else 'CPU'} training",
        flush=True,
    )
    rates = {}
    if not args.baseline:
        print(
            f"pyloader: TorchChunkDataset, {args.workers} {args.worker_type} workers, torch num_workers="
            f"{args.torch_workers}",
            flush=True,
        )
        rates["pyloader"] = train("pyloader", *pyloader_pipeline(args, data_dir, vocab_file), args)
    if args.baseline or args.compare:
        print(f"baseline: plain IterableDataset, torch num_workers={args.baseline_workers}", flush=True)
        rates["baseline"] = train("baseline", *baseline_pipeline(args, data_dir, vocab_file), args)
    if len(rates) == 2:
        print(
            f"samples/s: pyloader {rates['pyloader']:,.0f} vs plain torch DataLoader {rates['baseline']:,.0f} "
            f"({rates['pyloader'] / rates['baseline']:.2f}x)"
        )
    return rates


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # leave cores to the loader's workers
    in_workdir(run, args, "pyloader-torch-demo-")


if __name__ == "__main__":  # required: worker processes may re-import this file
    sys.exit(main())
