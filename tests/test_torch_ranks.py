"""Rank and world size are found when iteration starts (training process and torch workers), never guessed.

The real torchrun run is in tests/test_torch_ddp.py (``test_torchrun_dataset_built_before_init_process_group``);
here the sources are simulated: the torchrun environment (monkeypatched variables), an initialised
process group (``distributed_context`` monkeypatched), and what the training process carries to
``spawn`` workers through pickling.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

from torch_helpers import as_torch_worker, batch_ids, flat, make_ds, simulate, torch_loader, write_chunks  # noqa: E402

from pyloader_core import ConfigError  # noqa: E402
from pyloader_torch import dataset as dataset_module  # noqa: E402
from pyloader_torch import distributed as distributed_module  # noqa: E402
from pyloader_torch.distributed import UnknownRankError, environment_rank, resolve_rank  # noqa: E402

ENV_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
SIZES = (37, 50, 23, 61, 30)  # 201 samples: one dropped per epoch with 2 ranks


@pytest.fixture(autouse=True)
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test outside any launcher (a CI job could itself run under torchrun)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    root = tmp_path_factory.mktemp("chunks")
    return root, write_chunks(root, SIZES)


def torchrun_env(monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int) -> None:
    for name, value in zip(ENV_NAMES, (rank, world_size, rank, world_size)):
        monkeypatch.setenv(name, str(value))


def fake_group(monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int) -> None:
    """As if ``init_process_group`` had run in this process (and so in its forked torch workers)."""
    for module in (dataset_module, distributed_module):
        monkeypatch.setattr(module, "distributed_context", lambda: (rank, world_size))


def expected_share(root: Path, rank: int, world_size: int, num_workers: int) -> list[int]:
    """Rank ``rank``'s sample ids of epoch 0, from a dataset given the rank explicitly."""
    return sorted(flat(simulate(make_ds(root, rank=rank, world_size=world_size, shuffle=True), num_workers)))


# ----------------------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"RANK": "1", "WORLD_SIZE": "2"}, (1, 2)),
        ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, (3, 4)),  # RANK is global
        ({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2"}, (1, 2)),  # one node: local = global
        ({"WORLD_SIZE": "1"}, (0, 1)),
        ({"RANK": "1"}, None),  # no world size: not a launcher's environment
    ],
)
def test_environment_rank(env: dict[str, str], expected: tuple[int, int] | None) -> None:
    assert environment_rank(env) == expected


@pytest.mark.parametrize(
    "env",
    # Two nodes in the second: the local rank is not the global one.
    [{"WORLD_SIZE": "2"}, {"WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}],
)
def test_environment_without_a_rank_is_an_error_that_says_what_to_do(env: dict[str, str]) -> None:
    with pytest.raises(UnknownRankError, match="RANK is not") as info:
        environment_rank(env)
    assert isinstance(info.value, ConfigError)
    for advice in ("torchrun", "init_process_group", "rank= and world_size="):
        assert advice in str(info.value)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "two"}, "not an integer"),
        ({"WORLD_SIZE": "0"}, "must be >= 1"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "not in"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "not in"),
    ],
)
def test_environment_with_bad_values(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        environment_rank(env)


# ----------------------------------------------------------------------------- the order of sources


def test_resolve_rank_order_of_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    none = lambda: None  # noqa: E731 - no process group
    assert resolve_rank(context=none) == (0, 1)
    torchrun_env(monkeypatch, 1, 2)
    assert resolve_rank(context=none) == (1, 2)  # the environment
    assert resolve_rank(context=none, carried=(0, 3)) == (0, 3)  # carried from the training process beats it
    assert resolve_rank(context=lambda: (2, 4), carried=(0, 3)) == (2, 4)  # an initialised group beats both
    assert resolve_rank(0, 1, context=lambda: (2, 4), warn=False) == (0, 1)  # explicit values beat everything
    assert resolve_rank(world_size=4, context=none) == (1, 4)  # one given: the other found
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("LOCAL_RANK")
    with pytest.raises(UnknownRankError):
        resolve_rank(context=none)
    assert resolve_rank(context=none, carried=(1, 2)) == (1, 2)  # the training process knew


# ----------------------------------------------------------------------------- the dataset


def test_built_outside_then_iterated_under_torchrun_environment(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The environment appears after construction: iteration shards for it; the stale loader is not reused."""
    root, ids = data
    shares = []
    for rank in range(2):
        monkeypatch.delenv("RANK", raising=False)
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        ds = make_ds(root, shuffle=True)
        stale = ds.core_loader
        assert (ds.rank, ds.world_size, len(ds), ds.dropped_per_epoch) == (0, 1, 26, 0)  # 201 / 8
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        with caplog.at_level(logging.WARNING, logger="pyloader_torch"):
            caplog.clear()
            got = batch_ids(torch_loader(ds, 0))
        assert "built for rank 0 of 1" in caplog.text and "dropped from every epoch" in caplog.text
        assert (ds.rank, ds.world_size, ds.dropped_per_epoch) == (rank, 2, 1)
        assert ds.core_loader is not stale
        assert (ds.core_loader.options.rank, ds.core_loader.options.world_size) == (rank, 2)
        assert len(got) == len(ds) == 13  # 100 samples / 8
        shares.append(flat(got))
    assert not set(shares[0]) & set(shares[1])
    assert len(shares[0]) == len(shares[1]) == 100 and set(shares[0]) | set(shares[1]) <= set(ids)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_group_initialised_after_construction(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, num_workers: int
) -> None:
    """Built before init_process_group: each rank (and each of its torch workers) reads its own share."""
    root, ids = data
    shares = []
    for rank in range(2):
        ds = make_ds(root, shuffle=True)
        with monkeypatch.context() as m:
            fake_group(m, rank, 2)
            shares.append(sorted(flat(simulate(ds, num_workers))))
        assert (ds.rank, ds.world_size) == (rank, 2)
        assert shares[rank] == expected_share(root, rank, 2, num_workers)
    assert not set(shares[0]) & set(shares[1])
    assert len(shares[0] + shares[1]) == len(ids) - 1


def test_real_forked_torch_workers_see_the_group(data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Real torch workers (fork) copy the training process's group: they shard for it."""
    root, _ = data
    ds = make_ds(root, shuffle=True)
    fake_group(monkeypatch, 1, 2)  # forked workers inherit it, as they inherit a real default group
    got = batch_ids(torch_loader(ds, 2))
    assert sorted(flat(got)) == expected_share(root, 1, 2, 2)
    assert len(got) == 13


def test_real_forked_torch_workers_read_the_environment(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    torchrun_env(monkeypatch, 0, 2)
    got = batch_ids(torch_loader(ds, 2))
    assert sorted(flat(got)) == expected_share(root, 0, 2, 2)


def test_pickled_copy_carries_the_training_process_rank(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawned torch worker cannot see the group: it uses what the training process found when pickling."""
    root, _ = data
    ds = make_ds(root, shuffle=True)
    with monkeypatch.context() as m:
        fake_group(m, 1, 2)
        blob = pickle.dumps(ds)  # what torch does when it starts a spawn worker
    assert (ds.rank, ds.world_size) == (1, 2)  # the training process found it too
    copy = pickle.loads(blob)  # no group, no environment here: as in a spawned worker
    with as_torch_worker(0, 1):
        got = flat(batch_ids(iter(copy)))
    assert sorted(got) == expected_share(root, 1, 2, 0)
    # A copy pickled without any group reads as rank 0 of 1.
    plain = pickle.loads(pickle.dumps(make_ds(root, shuffle=True)))
    with as_torch_worker(0, 1):
        assert len(flat(batch_ids(iter(plain)))) == 201


def test_real_spawned_torch_worker_uses_the_carried_rank(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real spawn worker (fresh interpreter: neither the fake group nor an environment)."""
    root, _ = data
    ds = make_ds(root, shuffle=True)
    fake_group(monkeypatch, 1, 2)
    got = batch_ids(torch_loader(ds, 1, multiprocessing_context="spawn"))
    assert sorted(flat(got)) == expected_share(root, 1, 2, 1)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_world_size_without_rank_raises(
    data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch, num_workers: int
) -> None:
    """WORLD_SIZE=2 and nothing says the rank: a clear error, never every rank reading everything."""
    root, _ = data
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = make_ds(root, shuffle=True)  # the group may still be initialised before iteration
    with pytest.raises(ConfigError, match="RANK is not"):
        batch_ids(torch_loader(ds, num_workers))
    fake_group(monkeypatch, 1, 2)  # init_process_group ran: now it is known
    assert sorted(flat(batch_ids(torch_loader(ds, num_workers)))) == expected_share(root, 1, 2, num_workers)


def test_explicit_arguments_win(data: tuple[Path, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    root, ids = data
    torchrun_env(monkeypatch, 1, 2)
    everything = make_ds(root, rank=0, world_size=1, shuffle=True)  # every rank reads everything, on purpose
    assert sorted(flat(batch_ids(torch_loader(everything, 2)))) == ids
    fake_group(monkeypatch, 1, 2)
    assert sorted(flat(simulate(everything, 0))) == ids
    from_env = make_ds(root, shuffle=True)  # under torchrun the rank is known at construction already
    assert (from_env.rank, from_env.world_size, from_env.dropped_per_epoch, len(from_env)) == (1, 2, 1, 13)
