"""The sample dataset every example trains on: chunked JSON lines of text with a learnable label.

Each sample is ``{"id", "input_text", "label"}``: 20-120 words drawn from a 5,000-word vocabulary;
each word carries a hidden score and the label says whether a sample's scores sum above zero, so a
bag-of-words model can learn it. ``vocab.txt`` (``<pad>`` = 0, ``<unk>`` = 1, then the words) lies
beside the data directory, not in it, so it is never read as a chunk.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MAX_SEQ_LEN", "SPECIALS", "VOCAB_WORDS", "make_dataset", "in_workdir"]

VOCAB_WORDS = 5_000
MIN_WORDS, MAX_WORDS = 20, 120
MAX_SEQ_LEN = 128
SPECIALS = ["<pad>", "<unk>"]  # id 0 is padding (pyloader_core's PAD_IDX), id 1 unknown words


def make_dataset(root: str, chunks: int, samples_per_chunk: int, seed: int = 0) -> tuple[str, str]:
    """Write ``chunks`` JSON-lines files under ``root/data`` and ``root/vocab.txt``.

    Returns ``(data_dir, vocab_file)``. The vocab lies outside ``data_dir`` so it is not read as a chunk.
    """
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(VOCAB_WORDS)]
    word_score = rng.standard_normal(VOCAB_WORDS)  # hidden "sentiment" of each word

    vocab_file = os.path.join(root, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(SPECIALS + words) + "\n")

    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir, exist_ok=True)
    sample_id = 0
    for c in range(chunks):
        lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, size=samples_per_chunk)
        ids = rng.integers(0, VOCAB_WORDS, size=int(lengths.sum()))
        # Mean hidden score of each sample's words -> label.
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        labels = (np.add.reduceat(word_score[ids], starts) > 0).astype(int)
        lines = []
        pos = 0
        for n, label in zip(lengths.tolist(), labels.tolist()):
            text = " ".join([words[i] for i in ids[pos : pos + n].tolist()])
            pos += n
            lines.append(json.dumps({"id": sample_id, "input_text": text, "label": label}))
            sample_id += 1
        with open(os.path.join(data_dir, f"chunk-{c:05d}.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return data_dir, vocab_file


def in_workdir(run: Callable[[Any, str], Any], args: Any, prefix: str) -> None:
    """``run(args, root)`` in ``args.keep`` (kept afterwards) or in a temporary directory."""
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        run(args, args.keep)
        print(f"dataset kept in {args.keep}")
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as root:
            run(args, root)
