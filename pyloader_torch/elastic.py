"""Resuming a ``torchdata`` ``StatefulDataLoader`` with another ``num_workers`` than it was saved with.

``StatefulDataLoader.load_state_dict`` asserts that the worker count is unchanged. Its state holds
one :class:`~pyloader_torch.TorchChunkDataset` state per torch worker; :func:`reshape_state` merges
them (what every worker consumed of the epoch) and writes a state of the new worker count in which
every new worker gets that merged state: each then resumes its part of the rest of the epoch
re-split over the new workers (see :mod:`pyloader_core.runtime.elastic`). World-size changes need nothing
here: load the state of any rank on every new rank.

Example::

    state = torch.load("loader.pt")                       # saved with num_workers=2
    dl = StatefulDataLoader(ds, batch_size=None, num_workers=0)
    dl.load_state_dict(reshape_state(state, num_workers=0))
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch

from pyloader_core import ConfigError

__all__ = ["dataset_states", "reshape_state"]

logger = logging.getLogger(__name__)

_MAIN_KEYS = ("_sampler_iter_state", "_index_sampler_state", "_sampler_iter_yielded", "_IterableDataset_len_called", "_shared_seed")
_FETCHER = {"dataset_iter_state": None, "fetcher_ended": False}


def dataset_states(state: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The dataset state of every torch worker of a ``StatefulDataLoader`` state (one with ``num_workers=0``)."""
    if "_snapshot" in state:
        if state.get("_steps_since_snapshot", 0):
            raise ConfigError(
                "this StatefulDataLoader state was taken between snapshots (snapshot_every_n_steps > 1): "
                "the worker states are older than the batches yielded; save with snapshot_every_n_steps=1"
            )
        workers = state["_snapshot"]["_worker_snapshots"]
        return [workers[f"worker_{j}"].get("dataset_state") for j in range(len(workers))]
    if "dataset_state" in state:
        return [state["dataset_state"]]
    raise ConfigError(f"not a StatefulDataLoader state (keys {sorted(state)})")


def _merged(states: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One dataset state that knows what every old worker consumed (``loader["peers"]``)."""
    started = [s for s in states if s and s.get("epoch") is not None]
    if not started:
        return None
    epochs = {int(s["epoch"]) for s in started}
    if len(epochs) > 1:
        raise ConfigError(f"the torch workers' states are in different epochs {sorted(epochs)}")
    peers = []
    for j, s in enumerate(states):
        consumed = 0 if not s or s.get("epoch") is None else s["loader"].get("consumed")
        if consumed is None:
            raise ConfigError(f"torch worker {j}'s state has no consumption count (sample counts unknown)")
        peers.append(int(consumed))
    histories = {repr(s["loader"].get("history")) for s in started}
    if len(histories) > 1:
        raise ConfigError("the torch workers' states disagree on the epoch's elastic history")
    loader = copy.deepcopy(started[0]["loader"])
    loader["worker"] = [0, len(states)]
    loader["peers"] = peers
    return {"epoch": int(started[0]["epoch"]), "loader": loader}


def reshape_state(state: dict[str, Any], num_workers: int) -> dict[str, Any]:
    """``state`` (from ``StatefulDataLoader.state_dict()``) for a ``StatefulDataLoader`` with ``num_workers``.

    Returns ``state`` itself when the worker count is unchanged, ``{}`` (a fresh start) when no
    worker had started. The rest of the saved epoch is re-split over the new workers: no sample
    twice, and at most the documented remainder missed (see :mod:`pyloader_core.runtime.elastic`).

    Example::

        dl = StatefulDataLoader(ds, batch_size=None, num_workers=1)
        dl.load_state_dict(reshape_state(torch.load("loader.pt"), num_workers=1))
    """
    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    if not state:
        return {}
    old = len(state["_snapshot"]["_worker_snapshots"]) if "_snapshot" in state else 0
    if old == num_workers:
        return state
    merged = _merged(dataset_states(state))
    if merged is None:
        return {}
    main = state["_snapshot"]["_main_snapshot"] if "_snapshot" in state else state
    finished = bool(state.get("_iterator_finished", False))
    logger.info("StatefulDataLoader state of %d torch workers reshaped for %d", old, num_workers)
    common = {k: main.get(k) for k in _MAIN_KEYS}
    common["_sampler_iter_yielded"] = 0
    if num_workers == 0:
        return {
            **common, "_num_yielded": 0, "dataset_state": merged, "fetcher_state": dict(_FETCHER),
            "_iterator_finished": finished,
        }
    base_seed = main.get("_base_seed")
    if base_seed is None:
        base_seed = int(torch.empty((), dtype=torch.int64).random_().item())
    workers = {
        f"worker_{j}": {"worker_id": j, "dataset_state": copy.deepcopy(merged), "fetcher_state": dict(_FETCHER)}
        for j in range(num_workers)
    }
    return {
        "_snapshot": {
            "_snapshot_step": 0,
            "_last_yielded_worker_id": num_workers - 1,  # the next batch comes from worker 0
            "_main_snapshot": {**common, "_num_workers": num_workers, "_base_seed": base_seed},
            "_worker_snapshots": workers,
        },
        "_steps_since_snapshot": 0,
        "_iterator_finished": finished,
    }
