"""This process's rank and the world size: arguments, else ``torch.distributed``, else the torchrun environment.

Where each value comes from, first match wins:

1. explicit ``rank`` / ``world_size`` arguments;
2. the default process group, when ``torch.distributed`` is initialised (forked torch DataLoader
   workers inherit the training process's group object, so this holds in them too);
3. ``carried``: what the training process found when it handed the dataset to a torch worker
   (:class:`~pyloader_torch.TorchChunkDataset` carries it through pickling, for ``spawn`` workers);
4. the launcher's environment: ``RANK`` and ``WORLD_SIZE`` (set by ``torchrun``), or ``LOCAL_RANK``
   when ``LOCAL_WORLD_SIZE`` equals ``WORLD_SIZE`` (one node);
5. a single process: rank 0 of 1.

When the environment says ``WORLD_SIZE > 1`` but nothing tells the rank, :class:`UnknownRankError`
is raised: reading as rank 0 of 1 would make every rank read every sample.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import torch.distributed as dist

from pyloader_core import ConfigError

__all__ = ["UnknownRankError", "distributed_context", "environment_rank", "resolve_rank"]

logger = logging.getLogger(__name__)

#: What to do when the rank cannot be found (appended to :class:`UnknownRankError` messages).
_HOW_TO_FIX = (
    "launch with torchrun (it sets RANK, WORLD_SIZE and LOCAL_RANK), set RANK, call "
    "torch.distributed.init_process_group before iterating, or pass rank= and world_size= to the dataset"
)


class UnknownRankError(ConfigError):
    """Several processes take part (``WORLD_SIZE > 1``), but nothing says which one this is."""


def distributed_context() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the default process group, or ``None`` when it is not initialised.

    Example::

        distributed_context()  # None outside torchrun; (1, 2) on rank 1 of 2 after init_process_group
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    """The environment variable ``name`` as an int, ``None`` when unset or empty."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def environment_rank(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``(rank, world_size)`` from the launcher's environment (``torchrun``), ``None`` when ``WORLD_SIZE`` is unset.

    ``RANK`` gives the rank; without it, ``LOCAL_RANK`` does when ``LOCAL_WORLD_SIZE`` equals
    ``WORLD_SIZE`` (a single node, so local and global ranks agree). ``WORLD_SIZE=1`` alone is rank 0.

    Raises:
        UnknownRankError: ``WORLD_SIZE > 1`` and no rank can be told.
        ConfigError: a value is not an integer, or out of range.

    Example::

        environment_rank({"RANK": "1", "WORLD_SIZE": "2"})   # (1, 2)
        environment_rank({})                                 # None
    """
    env = os.environ if environ is None else environ
    world_size = _env_int(env, "WORLD_SIZE")
    if world_size is None:
        return None
    if world_size < 1:
        raise ConfigError(f"environment variable WORLD_SIZE={world_size} must be >= 1")
    rank = _env_int(env, "RANK")
    if rank is None:
        local_rank, local_world = _env_int(env, "LOCAL_RANK"), _env_int(env, "LOCAL_WORLD_SIZE")
        if local_rank is not None and local_world == world_size:
            rank = local_rank
        elif world_size == 1:
            rank = 0
        else:
            raise UnknownRankError(
                f"WORLD_SIZE={world_size} is set but RANK is not (LOCAL_RANK={env.get('LOCAL_RANK')!r}, "
                f"LOCAL_WORLD_SIZE={env.get('LOCAL_WORLD_SIZE')!r}) and torch.distributed is not initialised, "
                f"so this process cannot tell which share of the data is its own; {_HOW_TO_FIX}"
            )
    if not 0 <= rank < world_size:
        raise ConfigError(f"environment rank {rank} is not in [0, WORLD_SIZE={world_size})")
    return rank, world_size


def _check_values(rank: object, world_size: object) -> None:
    for name, value, minimum in (("rank", rank, 0), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    assert isinstance(rank, int) and isinstance(world_size, int)
    if rank >= world_size:
        raise ConfigError(f"rank must be < world_size, got rank={rank}, world_size={world_size}")


def resolve_rank(
    rank: int | None = None,
    world_size: int | None = None,
    *,
    context: Callable[[], tuple[int, int] | None] | None = None,
    carried: tuple[int, int] | None = None,
    warn: bool = True,
) -> tuple[int, int]:
    """The ``(rank, world_size)`` a dataset shards for (order of sources: see the module docstring).

    Explicit ``rank`` and ``world_size`` win (pass both, e.g. to simulate ranks in one process or to
    have every rank read everything with ``rank=0, world_size=1``); with ``warn``, a warning is
    logged when they disagree with an initialised ``torch.distributed``. One of them given: the
    other comes from the process group, ``carried`` or the environment.

    Args:
        rank, world_size: explicit values, or ``None``.
        context: returns the process group's ``(rank, world_size)`` or ``None``; default
            :func:`distributed_context`.
        carried: what the training process found, for a torch worker that cannot see the group.
        warn: log a warning when explicit values disagree with the process group.

    Raises:
        UnknownRankError: ``WORLD_SIZE > 1`` in the environment, and no argument, process group or
            carried value says the rank.
        ConfigError: only one of the two given and nothing supplies the other, or values out of range.

    Example::

        resolve_rank()                        # (0, 1) in a single process; (r, n) under torchrun
        resolve_rank(rank=1, world_size=3)    # (1, 3)
    """
    ctx = (context or distributed_context)()
    if rank is not None and world_size is not None:
        found = ctx
    else:
        found = ctx if ctx is not None else carried if carried is not None else environment_rank()
    if rank is None and world_size is None:
        return found if found is not None else (0, 1)
    if rank is None or world_size is None:
        if found is None:
            raise ConfigError(
                f"pass both rank and world_size (got rank={rank!r}, world_size={world_size!r}), "
                "or initialise torch.distributed (or launch with torchrun)"
            )
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    _check_values(rank, world_size)
    if warn and ctx is not None and ctx != (rank, world_size):
        logger.warning(
            "rank=%d, world_size=%d given explicitly, but torch.distributed says rank %d of %d; using the "
            "explicit values",
            rank,
            world_size,
            *ctx,
        )
    return rank, world_size
