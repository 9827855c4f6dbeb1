"""The :class:`Dataset` (encoding step) and the built-in :class:`TextDataset`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.reader import Columns

__all__ = ["Dataset", "PAD_IDX", "TextDataset", "UNK_TOKEN"]

PAD_IDX = 0
UNK_TOKEN = "<unk>"


class Dataset:
    """Encodes raw columns into model inputs; runs in the background workers.

    :meth:`batch_encode` receives a dict of equally long lists (a whole chunk's samples at once,
    already sharded and shuffled, so the per-call overhead is paid once per chunk) and returns a dict
    of equally long lists or numpy arrays. Return numpy arrays for numeric features: process workers
    then hand them back without pickling. The base class passes columns through unchanged.

    Example::

        class Lowercase(Dataset):
            def batch_encode(self, batch):
                return {"text": [t.lower() for t in batch["text"]], "label": batch["label"]}
    """

    def batch_encode(self, batch_data: Columns) -> Columns:
        """Encode ``batch_data`` (a dict of lists); the default returns it unchanged."""
        return batch_data


class TextDataset(Dataset):
    """Whitespace-tokenised text to fixed-length id arrays.

    Reads ``text_key`` (default ``"input_text"``) and ``label_key`` (default ``"label"``) and returns
    ``input_ids`` and ``attention_mask`` as ``int64`` arrays of shape ``(n, max_seq_len)`` (truncated,
    and padded with ``PAD_IDX`` when ``padding`` is true; ragged lists otherwise) and ``label``.

    Args:
        vocab_file: one token per line (first tab-separated field); line number = id. Without a vocab
            the text must already be whitespace-separated integer ids.
        max_seq_len: length to truncate (and pad) to.
        max_vocab_size: only the first ``max_vocab_size`` vocab lines are used.
        padding: pad every sequence to ``max_seq_len``.

    Unknown tokens map to the id of ``<unk>`` when the vocab has it, else to ``PAD_IDX``.

    Example::

        ds = TextDataset("vocab.txt", max_seq_len=128)
        ds.batch_encode({"input_text": ["hello world"], "label": [1]})["input_ids"].shape  # (1, 128)
    """

    def __init__(
        self,
        vocab_file: str | None = None,
        max_seq_len: int = 100,
        max_vocab_size: int = 30000,
        padding: bool = True,
        *,
        text_key: str = "input_text",
        label_key: str = "label",
    ) -> None:
        if max_seq_len < 1:
            raise ConfigError(f"max_seq_len must be >= 1, got {max_seq_len!r}")
        self.max_seq_len = max_seq_len
        self.max_vocab_size = max_vocab_size
        self.padding = padding
        self.text_key = text_key
        self.label_key = label_key
        self.stoi: dict[str, int] = {}
        self.itos: dict[int, str] = {}
        if vocab_file is not None:
            self.load_vocab(vocab_file)

    def load_vocab(self, vocab_file: str) -> None:
        """Load the vocabulary: token on each line (first tab field), id = line number."""
        with open(vocab_file, encoding="utf-8") as f:
            for idx, line in enumerate(f):
                if idx >= self.max_vocab_size:
                    break
                token = line.rstrip("\n").split("\t")[0]
                self.stoi.setdefault(token, idx)
                self.itos[idx] = token
        self._unk = self.stoi.get(UNK_TOKEN, PAD_IDX)

    def _ids(self, text: str) -> list[int]:
        if self.stoi:
            stoi, unk = self.stoi, self._unk
            return [stoi.get(w, unk) for w in text.split()[: self.max_seq_len]]
        return [int(w) for w in text.split()[: self.max_seq_len]]

    def batch_encode(self, batch_data: Columns) -> Columns:
        """Tokenise ``batch_data[text_key]``; see the class docstring."""
        for key in (self.text_key, self.label_key):
            if key not in batch_data:
                raise DataFormatError(f"TextDataset needs key {key!r}; got keys {sorted(batch_data)}")
        texts: Sequence[str] = batch_data[self.text_key]
        try:
            ids = [self._ids(t) for t in texts]
        except ValueError as exc:  # no vocab and a non-integer token
            raise DataFormatError(f"TextDataset without a vocab needs integer tokens: {exc}") from None
        except AttributeError as exc:
            raise DataFormatError(f"{self.text_key!r} must hold strings: {exc}") from None
        labels = batch_data[self.label_key]
        if not self.padding:
            return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids], "label": labels}
        n, width = len(ids), self.max_seq_len
        input_ids = np.full((n, width), PAD_IDX, dtype=np.int64)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=n)
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(lengths.sum()))
        # Scatter all tokens in one vectorised step rather than a slice assignment per row.
        mask = np.arange(width) < lengths[:, None]
        input_ids[mask] = flat
        return {"input_ids": input_ids, "attention_mask": mask.astype(np.int64), "label": _labels(labels)}


def _labels(labels: Sequence[Any]) -> Any:
    """Labels as an array when they are numbers, unchanged otherwise."""
    if isinstance(labels, np.ndarray):
        return labels
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError):
        return labels
    return arr if arr.dtype.kind in "iufb" else labels
