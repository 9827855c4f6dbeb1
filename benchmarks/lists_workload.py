"""The "lists" workload: plain user code that returns Python lists, as most users' first pipeline does.

Where the default workload (:mod:`benchmarks.workload`) runs PyLoader's built-in orjson reader and the
vectorised :class:`~pyloader_core.TextDataset` (numpy out of the workers), this one is what someone
writes in ten minutes on top of the public base classes, with no numpy until the very end:

- :class:`JsonLinesReader` (a :class:`~pyloader_core.DataReader`): stdlib ``json.loads`` per line;
  ``read_file`` returns ``(dict of lists, n)``.
- :class:`HashedTextDataset` (a :class:`~pyloader_core.Dataset`): each text's whitespace-split words to
  ids by ``zlib.crc32(word) % 30000 + 2`` (0 is padding; deterministic in every process, unlike
  ``hash()``), cut and padded to 128; ``input_ids`` and ``attention_mask`` as **lists of lists**,
  ``label`` as a list of ints.
- :class:`ListsCollator` (a :class:`~pyloader_core.DataCollator`): ``np.asarray`` of every key of a batch.

Data: :func:`benchmarks.workload.generate` (the same record format and word statistics), 32 chunks of
3,000 records by default, in their own directory. The classes live in this importable module so that
process workers started with *spawn* can unpickle them. Every contender of this workload does the same
work per chunk (:func:`chunk_batches`: read, encode, slice 64-sample batches, collate), so every one
must end with the same :class:`~benchmarks.workload.Tally` as the bare loop.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from pyloader_core import DataCollator, DataReader, Dataset

__all__ = [
    "BATCH",
    "BUCKETS",
    "CHUNKS",
    "KEYS",
    "MAX_SEQ_LEN",
    "SAMPLES_PER_CHUNK",
    "HashedTextDataset",
    "JsonLinesReader",
    "ListsCollator",
    "chunk_batches",
    "encode_chunk",
    "make_parts",
    "slice_batches",
]

BATCH = 64
MAX_SEQ_LEN = 128
BUCKETS = 30_000  # ids 2 .. 30001 (0 = padding, 1 unused)
CHUNKS = 32  # full-size data
SAMPLES_PER_CHUNK = 3_000
KEYS = ("input_ids", "attention_mask", "label")


class JsonLinesReader(DataReader):
    """One JSON object per line, parsed with the standard library; every field becomes a column."""

    def read_file(self, path: str) -> tuple[dict[str, list[Any]], int]:
        records = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    records.append(json.loads(line))
        columns = {key: [r[key] for r in records] for key in records[0]} if records else {}
        return columns, len(records)


class HashedTextDataset(Dataset):
    """Words to hashed ids, cut and padded to ``max_seq_len``; plain lists out (no numpy)."""

    def __init__(self, max_seq_len: int = MAX_SEQ_LEN, buckets: int = BUCKETS, text_key: str = "input_text",
                 label_key: str = "label") -> None:
        self.max_seq_len = max_seq_len
        self.buckets = buckets
        self.text_key = text_key
        self.label_key = label_key

    def batch_encode(self, batch: Any) -> dict[str, list[Any]]:
        width, buckets = self.max_seq_len, self.buckets
        input_ids: list[list[int]] = []
        attention_mask: list[list[int]] = []
        for text in batch[self.text_key]:
            ids = [zlib.crc32(word.encode("utf-8")) % buckets + 2 for word in text.split()[:width]]
            pad = width - len(ids)
            input_ids.append(ids + [0] * pad)
            attention_mask.append([1] * len(ids) + [0] * pad)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "label": [int(x) for x in batch[self.label_key]]}


class ListsCollator(DataCollator):
    """Every key of a batch to a numpy array."""

    def collate_batch(self, batch: Any) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in batch.items()}


def make_parts() -> tuple[JsonLinesReader, HashedTextDataset, ListsCollator]:
    """The reader, dataset and collator every contender of this workload uses."""
    return JsonLinesReader(batch_size=BATCH), HashedTextDataset(), ListsCollator()


def encode_chunk(reader: DataReader, dataset: Dataset, path: str) -> tuple[dict[str, list[Any]], int]:
    """Read one chunk and encode all of its samples: ``({input_ids, attention_mask, label}, n)`` (lists)."""
    columns, n = reader.read_file(path)
    return dataset.batch_encode(columns), n


def slice_batches(encoded: dict[str, list[Any]], n: int, batch: int = BATCH) -> Iterator[dict[str, list[Any]]]:
    """Consecutive batches (list slices) of one encoded chunk; the last may be short."""
    for s in range(0, n, batch):
        yield {k: encoded[k][s : s + batch] for k in KEYS}


def chunk_batches(reader: DataReader, dataset: Dataset, collator: DataCollator, path: str) -> Iterator[dict[str, Any]]:
    """The whole per-chunk job: read, encode, then each 64-sample batch collated to arrays."""
    encoded, n = encode_chunk(reader, dataset, path)
    for b in slice_batches(encoded, n):
        yield collator.collate_batch(b)
