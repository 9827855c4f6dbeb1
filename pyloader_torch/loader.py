"""One call to the right torch DataLoader: :func:`make_dataloader`, and the check for torch's default batching.

A :class:`~pyloader_torch.TorchChunkDataset` yields whole batches. torch's ``DataLoader(ds)`` defaults
to ``batch_size=1`` and would batch them again: every tensor gains a leading dimension of 1 (shapes
``(1, 64, 64)``) and the first error comes from the model or the loss. :func:`make_dataloader` sets
``batch_size=None``; :func:`check_not_batched` makes a DataLoader built by hand with a batch size
fail at the first batch with :class:`~pyloader_core.ConfigError` and the fix.

Example::

    from pyloader_core import JsonLineDataReader, TextDataset
    from pyloader_torch import make_dataloader

    loader = make_dataloader(JsonLineDataReader(batch_size=64), TextDataset("vocab.txt"), None, "data/",
                             shuffle=True, num_workers=2, worker_type="process", pin_memory=True)
    for epoch in range(3):
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            ...
"""

from __future__ import annotations

import types
from typing import Any

import torch.utils.data

from pyloader_core import ConfigError, DataCollator, DataReader, Dataset

__all__ = ["check_not_batched", "make_dataloader"]

try:  # torch's fetcher of IterableDatasets (private: looked up defensively)
    from torch.utils.data._utils.fetch import _IterableDatasetFetcher as _Fetcher
except ImportError:  # pragma: no cover - another torch layout: the check is then off
    _Fetcher = None

_BATCHED_TWICE = (
    "torch.utils.data.DataLoader was given a TorchChunkDataset with a batch_size (default 1): it would batch "
    "PyLoader's batches again (every tensor gains a leading dimension: (1, 64, 64)). Pass batch_size=None, "
    "DataLoader(ds, batch_size=None, ...), or build it with pyloader_torch.make_dataloader(...); PyLoader's "
    "own batch_size is the reader's (or the batch_size option)"
)


def check_not_batched(caller: types.FrameType | None) -> None:
    """Raise :class:`~pyloader_core.ConfigError` when ``caller`` (the frame that called the dataset's
    ``__iter__``) is torch's fetcher for a DataLoader with automatic batching (``batch_size`` not ``None``).

    torch creates that fetcher in the training process (``num_workers=0``) and in each of its workers,
    and it calls ``iter(dataset)`` from its constructor, so the check holds for both (a worker's error
    reaches the training process as torch re-raises it). A DataLoader that iterates the dataset in
    another way (a custom fetcher or wrapper) is not checked.

    Example::

        def __iter__(self):
            check_not_batched(sys._getframe(1))
    """
    if _Fetcher is None or caller is None:
        return
    fetcher = caller.f_locals.get("self")
    if isinstance(fetcher, _Fetcher) and getattr(fetcher, "auto_collation", False):
        raise ConfigError(_BATCHED_TWICE)


def make_dataloader(
    datareader: DataReader | str,
    dataset: Dataset | None = None,
    datacollator: DataCollator | None = None,
    data_dir: Any = None,
    *,
    torch_num_workers: int = 0,
    pin_memory: bool = False,
    stateful: bool = False,
    torch_options: dict[str, Any] | None = None,
    **options: Any,
) -> torch.utils.data.DataLoader:
    """A torch ``DataLoader(TorchChunkDataset(...), batch_size=None, ...)``: the right one in one call.

    Args:
        datareader, dataset, datacollator, data_dir: as in :class:`~pyloader_torch.TorchChunkDataset`.
        torch_num_workers: torch's own workers (default 0: the fast path, with PyLoader's workers from
            ``num_workers`` / ``worker_type`` in ``options``).
        pin_memory: torch's ``pin_memory`` (``True`` when training on a GPU).
        stateful: a ``torchdata.stateful_dataloader.StatefulDataLoader`` (``state_dict`` /
            ``load_state_dict`` for checkpoints; needs ``pip install torchdata``).
        torch_options: more arguments for torch's DataLoader (``prefetch_factor``,
            ``multiprocessing_context``, ...); ``batch_size`` and ``collate_fn`` are not allowed.
        **options: :class:`~pyloader_torch.TorchChunkDataset` arguments (``rank``, ``world_size``,
            ``strict_files``) and :class:`~pyloader_core.LoaderOptions` fields (``shuffle``,
            ``batch_size``, ``num_workers``, ``worker_type``, ...); an unknown name raises
            :class:`~pyloader_core.ConfigError` with the closest valid one.

    The dataset is the loader's ``.dataset``: call ``loader.dataset.set_epoch(epoch)`` every epoch.

    Example::

        loader = make_dataloader("jsonl", None, None, "data/", num_workers=2, worker_type="process")
        batch = next(iter(loader))  # a dict of tensors, batch_size rows each
    """
    from pyloader_torch.dataset import TorchChunkDataset

    extra = dict(torch_options or {})
    for name in ("batch_size", "batch_sampler", "collate_fn", "sampler", "shuffle"):
        if name in extra:
            raise ConfigError(
                f"torch_options may not set {name!r}: the TorchChunkDataset batches, shuffles and shards "
                "itself (pass PyLoader's batch_size / shuffle as options)"
            )
    ds = TorchChunkDataset(datareader, dataset, datacollator, data_dir, **options)
    if stateful:
        try:
            from torchdata.stateful_dataloader import StatefulDataLoader
        except ImportError as exc:
            raise ImportError(f"stateful=True needs torchdata ({exc}): pip install torchdata") from exc
        return StatefulDataLoader(
            ds, batch_size=None, num_workers=torch_num_workers, pin_memory=pin_memory, **extra
        )
    return torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=torch_num_workers, pin_memory=pin_memory, **extra
    )
