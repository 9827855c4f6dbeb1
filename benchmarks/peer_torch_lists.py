"""``torch.utils.data.DataLoader`` on the "lists" workload (imported only by the ``lists-torch-*`` rows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from benchmarks.lists_workload import chunk_batches, make_parts

__all__ = ["ListChunkFiles", "torch_lists_loader"]


class ListChunkFiles(IterableDataset):  # type: ignore[type-arg]
    """Each torch worker reads every k-th file with the workload's own reader, encodes the whole chunk
    (lists), and yields its batches of 64 collated to numpy in the worker (pickled to the main process)."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, dataset, collator = make_parts()
        for path in self.files[w::k]:
            for b in chunk_batches(reader, dataset, collator, path):
                yield b["input_ids"], b["attention_mask"], b["label"]


def _identity(batch: Any) -> Any:
    """No collation: the dataset already yields whole numpy batches."""
    return batch


def torch_lists_loader(ctx: Any, num_workers: int) -> Iterator[tuple[Any, Any, Any]]:
    loader = DataLoader(ListChunkFiles(ctx.files), batch_size=None, collate_fn=_identity, num_workers=num_workers)
    ctx.extra["start_method"] = torch.multiprocessing.get_start_method() if num_workers else "none"
    yield from loader
