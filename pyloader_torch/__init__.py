"""PyLoader for PyTorch: a thin adapter over :mod:`pyloader_core`.

:class:`TorchChunkDataset` is a ``torch.utils.data.IterableDataset`` of collated batches (dicts of
tensors) for ``torch.utils.data.DataLoader(ds, batch_size=None, ...)``: sharded across torch workers
and distributed ranks, every sample exactly once per epoch, reproducible from ``(seed, epoch)``.

Example::

    from torch.utils.data import DataLoader
    from pyloader_core import JsonLineDataReader, TextDataset
    from pyloader_torch import TorchChunkDataset, make_dataloader

    ds = TorchChunkDataset(JsonLineDataReader(batch_size=64), TextDataset("vocab.txt"), None, "data/",
                           shuffle=True, num_workers=2, worker_type="process")
    for epoch in range(2):
        ds.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=None):
            ...

:func:`make_dataloader` builds both in one call (``batch_size=None`` set: torch's default
``batch_size=1`` would batch the batches again, which the dataset refuses with a ``ConfigError``)::

    loader = make_dataloader(JsonLineDataReader(batch_size=64), None, None, "data/", num_workers=2)
    loader.dataset.set_epoch(0)
"""

from pyloader_torch.collator import TorchCollator, to_tensors
from pyloader_torch.dataset import MAX_TORCH_WORKERS, TorchChunkDataset
from pyloader_torch.distributed import UnknownRankError, distributed_context, resolve_rank
from pyloader_torch.elastic import reshape_state
from pyloader_torch.loader import make_dataloader
from pyloader_torch.transport import PIPE_MAX_BYTES, PipeBatch, for_transport

__all__ = [
    "MAX_TORCH_WORKERS",
    "PIPE_MAX_BYTES",
    "PipeBatch",
    "TorchChunkDataset",
    "TorchCollator",
    "UnknownRankError",
    "distributed_context",
    "for_transport",
    "make_dataloader",
    "reshape_state",
    "resolve_rank",
    "to_tensors",
]
