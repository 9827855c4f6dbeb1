"""HuggingFace ``datasets`` streaming doing the shared work (imported only by the ``hf-*`` rows).

``load_dataset("json", data_files=<the local chunk files>, streaming=True)`` (offline: the runner sets
``HF_DATASETS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` and a private cache dir), ``.map`` of the shared
encode (:class:`~pyloader_core.TextDataset`) in batches of 64, numpy format, through
``torch.utils.data.DataLoader(batch_size=64, num_workers=N)``: the streaming dataset shards its files
over the torch workers, which yield examples that torch collates into tensors. JSON is parsed by
``datasets``' own (pyarrow) JSON reader, not orjson.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks.workload import BATCH, KEYS, make_encoder  # noqa: E402

__all__ = ["Encode", "hf_streaming"]


class Encode:
    """The shared encode as a ``datasets`` batched map function (picklable)."""

    def __init__(self, vocab: str) -> None:
        self.encoder = make_encoder(vocab)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        out = self.encoder.batch_encode(batch)
        return {k: out[k] for k in KEYS}


def hf_streaming(ctx: Any, num_workers: int) -> Iterator[tuple[Any, Any, Any]]:
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=list(ctx.files), split="train", streaming=True)
    ds = ds.map(Encode(ctx.vocab), batched=True, batch_size=BATCH, remove_columns=["id", "input_text"])
    ds = ds.with_format("numpy")
    ctx.extra["shards"] = getattr(ds, "num_shards", getattr(ds, "n_shards", None))
    loader = DataLoader(ds, batch_size=BATCH, num_workers=num_workers)
    for b in loader:
        yield b["input_ids"], b["attention_mask"], b["label"]
