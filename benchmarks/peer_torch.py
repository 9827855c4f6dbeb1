"""``torch.utils.data.DataLoader`` doing the shared work (imported only by the torch rows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from benchmarks.workload import batches_of, encode_file, make_encoder, make_reader

__all__ = ["ChunkFiles", "torch_loader"]


class ChunkFiles(IterableDataset):  # type: ignore[type-arg]
    """What one writes without PyLoader: each torch worker reads every k-th file, encodes it and yields
    its batches of 64 (whole-chunk encoding, exactly as PyLoader's workers do).

    ``tensors``: yield ``torch.from_numpy`` tensors (built in the worker, so they cross processes
    through torch's shared-memory reductions); otherwise numpy arrays (pickled through the queue).
    """

    def __init__(self, files: list[str], vocab: str, tensors: bool) -> None:
        self.files, self.vocab, self.tensors = files, vocab, tensors

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, encoder = make_reader(), make_encoder(self.vocab)
        for path in self.files[w::k]:
            encoded, n = encode_file(reader, encoder, path)
            for b in batches_of(encoded, n):
                if self.tensors:
                    # a copy: a view would share (and ship) the whole chunk's storage with every batch
                    yield tuple(torch.from_numpy(b[key].copy()) for key in ("input_ids", "attention_mask", "label"))
                else:
                    yield b["input_ids"], b["attention_mask"], b["label"]


def _identity(batch: Any) -> Any:
    """No collation: the dataset already yields whole batches (and numpy stays numpy)."""
    return batch


def torch_loader(ctx: Any, num_workers: int, tensors: bool) -> Iterator[tuple[Any, Any, Any]]:
    loader = DataLoader(
        ChunkFiles(ctx.files, ctx.vocab, tensors),
        batch_size=None,
        collate_fn=_identity,
        num_workers=num_workers,
    )
    ctx.extra["start_method"] = (
        torch.multiprocessing.get_start_method() if num_workers else "none"
    )
    yield from loader
