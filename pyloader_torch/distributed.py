"""This process's rank and the world size: from ``torch.distributed`` when it is initialised, else arguments."""

from __future__ import annotations

import logging

import torch.distributed as dist

from pyloader_core import ConfigError

__all__ = ["distributed_context", "resolve_rank"]

logger = logging.getLogger(__name__)


def distributed_context() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the default process group, or ``None`` when it is not initialised.

    Example::

        distributed_context()  # None outside torchrun; (1, 2) on rank 1 of 2 after init_process_group
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """The ``(rank, world_size)`` a dataset shards for.

    Explicit ``rank`` and ``world_size`` win (pass both, e.g. to simulate ranks in one process or to
    have every rank read everything with ``rank=0, world_size=1``); a warning is logged when they
    disagree with an initialised ``torch.distributed``. Without them, the default process group is
    used when initialised, and ``(0, 1)`` otherwise.

    Raises:
        ConfigError: only one of the two given while ``torch.distributed`` is not initialised, or
            values out of range.

    Example::

        resolve_rank()                        # (0, 1) in a single process
        resolve_rank(rank=1, world_size=3)    # (1, 3)
    """
    ctx = distributed_context()
    if rank is None and world_size is None:
        return ctx if ctx is not None else (0, 1)
    if rank is None or world_size is None:
        if ctx is None:
            raise ConfigError(
                f"pass both rank and world_size (got rank={rank!r}, world_size={world_size!r}), "
                "or initialise torch.distributed"
            )
        rank = ctx[0] if rank is None else rank
        world_size = ctx[1] if world_size is None else world_size
    for name, value, minimum in (("rank", rank, 0), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    if rank >= world_size:
        raise ConfigError(f"rank must be < world_size, got rank={rank}, world_size={world_size}")
    if ctx is not None and ctx != (rank, world_size):
        logger.warning(
            "rank=%d, world_size=%d given explicitly, but torch.distributed says rank %d of %d; using the "
            "explicit values",
            rank,
            world_size,
            *ctx,
        )
    return rank, world_size
