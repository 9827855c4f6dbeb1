"""The benchmark's workload: generated chunk files and the ONE per-sample job every contender does.

Data: ``chunks`` JSON-lines files of ``samples_per_chunk`` records ``{"id", "input_text", "label"}``;
each text is 20-120 words drawn (Zipf-like) from a 20,000-word vocabulary file plus ~1,000 words
that are not in it (they map to ``<unk>``). Everything is a pure function of the seed: the same
arguments write byte-identical files, and the first ``n`` chunks of a bigger dataset are the ``n``
chunks of a smaller one (so "1x" and "4x" data share their first quarter).

Work (the same for every contender): JSON parse (orjson when installed, as PyLoader's reader) ->
whitespace tokenise -> vocab lookup -> truncate/pad to 128 -> batches of 64 -> numpy ``int64``
``input_ids`` / ``attention_mask`` / ``label``. Python contenders run exactly this code:
:class:`~pyloader_core.JsonLineDataReader` + :class:`~pyloader_core.TextDataset` ``(vocab,
max_seq_len=128)`` (see :func:`encode_file`). The consumer only touches each batch
(:class:`Tally`: sums of ``input_ids``, ``attention_mask`` and ``label``), so every contender's
totals must agree exactly: a cross-check that they all did the same work.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "BATCH",
    "KEYS",
    "MAX_SEQ_LEN",
    "Tally",
    "Workload",
    "batches_of",
    "encode_file",
    "generate",
    "make_encoder",
    "make_reader",
]

BATCH = 64
MAX_SEQ_LEN = 128
VOCAB_SIZE = 20_000  # words in the vocab file (after <pad> and <unk>)
OOV_WORDS = 1_000  # words that appear in texts but not in the vocab
MIN_WORDS, MAX_WORDS = 20, 120
SPECIALS = ("<pad>", "<unk>")  # ids 0 and 1: TextDataset pads with 0 and maps unknown words to <unk>
KEYS = ("input_ids", "attention_mask", "label")
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Workload:
    """Where a generated dataset lies: the vocab file and every chunk file, in order."""

    root: str
    vocab: str
    files: tuple[str, ...]
    samples_per_chunk: int

    def subset(self, chunks: int) -> list[str]:
        """The first ``chunks`` files."""
        return list(self.files[:chunks])


def _words(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct lowercase pseudo-words of 2-10 letters."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    seen: set[str] = set(SPECIALS)
    out: list[str] = []
    while len(out) < count:
        length = int(rng.integers(2, 11))
        word = "".join(letters[rng.integers(0, 26, size=length)])
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def generate(root: str, chunks: int, samples_per_chunk: int, seed: int = 0) -> Workload:
    """Write (or reuse, when ``root`` already holds it) the dataset; returns its :class:`Workload`."""
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "data")
    vocab = os.path.join(root, "vocab.txt")
    files = tuple(os.path.join(data, f"part-{c:05d}.jsonl") for c in range(chunks))
    manifest_path = os.path.join(root, "manifest.json")
    manifest = {"version": _FORMAT_VERSION, "chunks": chunks, "samples_per_chunk": samples_per_chunk, "seed": seed}
    workload = Workload(root, vocab, files, samples_per_chunk)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            if json.load(f) == manifest and all(os.path.exists(p) for p in (vocab, *files)):
                return workload
    except (OSError, ValueError):
        pass
    os.makedirs(data, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = _words(rng, VOCAB_SIZE + OOV_WORDS)
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join([*SPECIALS, *words[:VOCAB_SIZE]]) + "\n")
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    p = 1.0 / (ranks + 20.0)  # Zipf-like word frequencies
    p /= p.sum()
    order = rng.permutation(len(words))  # out-of-vocab words at random ranks: a few % of the tokens
    by_rank = [words[i] for i in order]
    for c, path in enumerate(files):
        crng = np.random.default_rng([seed, c])  # per chunk: chunk c is the same whatever ``chunks`` is
        lengths = crng.integers(MIN_WORDS, MAX_WORDS + 1, size=samples_per_chunk)
        picks = crng.choice(len(by_rank), size=int(lengths.sum()), p=p).tolist()
        labels = crng.integers(0, 2, size=samples_per_chunk).tolist()
        lines = []
        pos = 0
        k = c * samples_per_chunk
        for i, n in enumerate(lengths.tolist()):
            text = " ".join(map(by_rank.__getitem__, picks[pos : pos + n]))
            pos += n
            lines.append(json.dumps({"id": k + i, "input_text": text, "label": labels[i]}))
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return workload


# -- the shared work ------------------------------------------------------------------------------


def make_reader() -> Any:
    """The JSON-lines reader every Python contender parses with (orjson when installed)."""
    from pyloader_core import JsonLineDataReader

    return JsonLineDataReader(batch_size=BATCH)


def make_encoder(vocab: str) -> Any:
    """The tokeniser every Python contender encodes with."""
    from pyloader_core import TextDataset

    return TextDataset(vocab, max_seq_len=MAX_SEQ_LEN)


def encode_file(reader: Any, encoder: Any, path: str) -> tuple[dict[str, np.ndarray], int]:
    """Read one chunk and encode all of its samples: ``({input_ids, attention_mask, label}, n)``."""
    columns, n = reader.read_file(path)
    encoded = encoder.batch_encode(columns)
    return {k: encoded[k] for k in KEYS}, n


def batches_of(encoded: dict[str, np.ndarray], n: int, batch: int = BATCH) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches (views) of one encoded chunk; the last may be short."""
    for s in range(0, n, batch):
        yield {k: encoded[k][s : s + batch] for k in KEYS}


class Tally:
    """What the consumer does with each batch: count it and sum its arrays (no model).

    Every contender must end with the same totals; :meth:`as_dict` gives them.
    """

    __slots__ = ("batches", "ids_sum", "label_sum", "mask_sum", "samples")

    def __init__(self) -> None:
        self.samples = self.batches = self.ids_sum = self.mask_sum = self.label_sum = 0

    def touch(self, input_ids: Any, attention_mask: Any, label: Any) -> None:
        """Touch one batch; the arguments may be numpy arrays, torch tensors or eager tf tensors."""
        ids, mask, lab = _np(input_ids), _np(attention_mask), _np(label)
        self.samples += int(lab.shape[0])
        self.batches += 1
        self.ids_sum += int(ids.sum())
        self.mask_sum += int(mask.sum())
        self.label_sum += int(lab.sum())

    def add(self, totals: dict[str, int]) -> None:
        """Add the totals of batches touched elsewhere (the perfect Pool rows' workers)."""
        for key, value in totals.items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("samples", "batches", "ids_sum", "mask_sum", "label_sum")}


def _np(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    numpy = getattr(x, "numpy", None)  # torch tensors (zero-copy on CPU) and eager tf tensors
    return numpy() if numpy is not None else np.asarray(x)
