"""Samples/s of the ways to feed PyTorch from chunk files, on one JSON-lines text-classification workload.

Workload: ``--chunks`` JSON-lines files of ``--samples-per-chunk`` records (20-120 words from a
5,000-word vocabulary, a label), read with ``JsonLineDataReader``, encoded with
``TextDataset(vocab, max_seq_len=128)``, batches of 64 as tensors. Each path runs one shuffled
epoch (time to the last batch, start-up included); the consumer touches every batch
(``--step`` ``sum``: a cheap reduction; ``model``: forward+backward of an EmbeddingBag+Linear
classifier, like ``examples/train_torch.py``).

Paths:

* ``plain``: one process, no workers: read, encode, batch, ``torch.from_numpy``, in a loop.
* ``torch-workers``: ``torch.utils.data.DataLoader(TorchChunkDataset(...), num_workers=2)``: each torch
  worker reads its share inline; every batch is pickled to the training process (tensors cross processes).
* ``pyloader-process``: ``DataLoader(TorchChunkDataset(..., num_workers=2, worker_type="process"),
  num_workers=0)``: PyLoader's process workers, shared-memory hand-off, ``from_numpy`` in the training process.
* ``pyloader-thread``: the same with ``worker_type="thread"``.
* ``torch-plain-dataset``: a plain ``IterableDataset`` reading the files itself (no PyLoader), ``num_workers=2``.

Usage::

    PYTHONPATH=. python benchmarks/torch_paths.py [--chunks 16] [--samples-per-chunk 2000] [--repeat 3]
                                                 [--step sum|model] [--paths plain,torch-workers,...]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import IterableDataset, get_worker_info

from pyloader_core import JsonLineDataReader, TextDataset
from pyloader_torch import TorchChunkDataset

BATCH = 64
MAX_SEQ_LEN = 128
VOCAB_WORDS = 5_000


def make_data(root: str, chunks: int, per_chunk: int, seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    vocab = os.path.join(root, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(["<pad>", "<unk>"] + [f"w{i}" for i in range(VOCAB_WORDS)]) + "\n")
    data = os.path.join(root, "data")
    os.makedirs(data)
    k = 0
    for c in range(chunks):
        with open(os.path.join(data, f"part-{c:04d}.jsonl"), "w", encoding="utf-8") as f:
            for _ in range(per_chunk):
                n = int(rng.integers(20, 121))
                text = " ".join(f"w{w}" for w in rng.integers(0, VOCAB_WORDS, size=n))
                f.write(json.dumps({"id": k, "input_text": text, "label": int(rng.integers(0, 2))}) + "\n")
                k += 1
    return data, vocab


class PlainFiles(IterableDataset):
    """What one writes without PyLoader: each torch worker reads every k-th file and yields batches."""

    def __init__(self, files: list[str], vocab: str) -> None:
        self.files, self.vocab = files, vocab

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, encoder = JsonLineDataReader(), TextDataset(self.vocab, max_seq_len=MAX_SEQ_LEN)
        rng = np.random.default_rng(w)
        for path in self.files[w::k]:
            columns, n = reader.read_file(path)
            enc = encoder.batch_encode(columns)
            order = rng.permutation(n)
            for s in range(0, n, BATCH):
                sel = order[s : s + BATCH]
                yield {key: torch.from_numpy(np.asarray(enc[key])[sel]) for key in ("input_ids", "label")}


def plain_loop(files: list[str], vocab: str) -> Iterator[dict[str, torch.Tensor]]:
    yield from PlainFiles(files, vocab)


def make_model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    emb = torch.nn.EmbeddingBag(VOCAB_WORDS + 2, 64, mode="mean", padding_idx=0)
    head = torch.nn.Linear(64, 2)
    model.add_module("emb", emb)
    model.add_module("head", head)
    return model, torch.optim.SGD(model.parameters(), lr=0.5)


def consume(batches: Any, step: str) -> int:
    n = 0
    if step == "model":
        model, opt = make_model()
        loss_fn = torch.nn.CrossEntropyLoss()
    for batch in batches:
        ids, label = batch["input_ids"], batch["label"]
        if step == "model":
            opt.zero_grad()
            loss = loss_fn(model.head(model.emb(ids)), label)
            loss.backward()
            opt.step()
        else:
            ids.sum()
        n += len(label)
    return n


def paths(data: str, vocab: str) -> dict[str, Callable[[], Any]]:
    files = sorted(os.path.join(data, f) for f in os.listdir(data))

    def ds(**options: Any) -> TorchChunkDataset:
        return TorchChunkDataset(
            JsonLineDataReader(batch_size=BATCH),
            TextDataset(vocab, max_seq_len=MAX_SEQ_LEN),
            None,
            data,
            shuffle=True,
            **options,
        )

    return {
        "plain": lambda: plain_loop(files, vocab),
        "torch-workers": lambda: TorchDataLoader(ds(), batch_size=None, num_workers=2),
        "pyloader-process": lambda: TorchDataLoader(ds(num_workers=2, worker_type="process"), batch_size=None),
        "pyloader-thread": lambda: TorchDataLoader(ds(num_workers=2, worker_type="thread"), batch_size=None),
        "torch-plain-dataset": lambda: TorchDataLoader(PlainFiles(files, vocab), batch_size=None, num_workers=2),
    }


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its finished (joined) children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--samples-per-chunk", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--step", choices=["sum", "model"], default="sum")
    parser.add_argument("--paths", default="plain,torch-workers,pyloader-process,pyloader-thread,torch-plain-dataset")
    args = parser.parse_args()
    torch.set_num_threads(1)  # leave the second core to the workers; the same for every path
    with tempfile.TemporaryDirectory() as root:
        data, vocab = make_data(root, args.chunks, args.samples_per_chunk)
        chosen = paths(data, vocab)
        names = args.paths.split(",")
        results: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeat):  # interleaved, so drifts in machine load hit every path alike
            for name in names:
                gc.collect()
                cpu0 = _cpu_s()
                start = time.perf_counter()
                n = consume(chosen[name](), args.step)
                results[name].append(n / (time.perf_counter() - start))
                gc.collect()  # workers are joined (and their CPU time counted) once their loader is gone
                cpu[name].append((_cpu_s() - cpu0) / n * 10_000)
        total = args.chunks * args.samples_per_chunk
        print(
            f"{total} samples, batch {BATCH}, max_seq_len {MAX_SEQ_LEN}, step={args.step}, "
            f"{os.cpu_count()} cores, torch {torch.__version__}, python {sys.version.split()[0]}"
        )
        base = statistics.median(results["plain"]) if "plain" in results else None
        for name in names:
            med = statistics.median(results[name])
            rel = f"  ({med / base:.2f}x plain)" if base else ""
            runs = ", ".join(f"{r:,.0f}" for r in results[name])
            print(
                f"{name:>20}: {med:>9,.0f} samples/s median{rel}, {statistics.median(cpu[name]):.2f} CPU-s "
                f"per 10k samples (all processes)   runs: {runs}"
            )


if __name__ == "__main__":
    main()
