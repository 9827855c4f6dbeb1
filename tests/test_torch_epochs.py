"""Epochs: set_epoch and automatic advance, also when torch iterates fresh copies in new workers."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

from torch_helpers import SIZES, batch_ids, flat, make_ds, torch_loader, write_chunks  # noqa: E402

from pyloader_core import ConfigError  # noqa: E402

# (torch num_workers, persistent_workers): the user's object is never iterated with num_workers > 0.
MODES = [(0, False), (1, False), (2, False), (2, True)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    root = tmp_path_factory.mktemp("chunks")
    return root, write_chunks(root, SIZES)


def reference(root: Path, num_workers: int, epoch: int) -> list[list[int]]:
    """Epoch ``epoch`` from a fresh dataset told so with set_epoch."""
    ds = make_ds(root, shuffle=True)
    ds.set_epoch(epoch)
    return batch_ids(torch_loader(ds, num_workers))


@pytest.mark.parametrize("num_workers, persistent", MODES)
def test_epoch_advances_on_each_iter(data: tuple[Path, list[int]], num_workers: int, persistent: bool) -> None:
    root, ids = data
    ds = make_ds(root, shuffle=True)
    loader = torch_loader(ds, num_workers, persistent_workers=persistent)
    epochs = []
    for e in range(3):
        assert ds.epoch == e
        epochs.append(batch_ids(loader))
    assert ds.epoch == 3
    for e, got in enumerate(epochs):
        assert sorted(flat(got)) == ids  # each epoch: every sample once
        assert got == reference(root, num_workers, e)  # and exactly epoch e's stream
    assert flat(epochs[0]) != flat(epochs[1]) != flat(epochs[2])  # reshuffled every epoch


@pytest.mark.parametrize("num_workers, persistent", MODES)
def test_set_epoch(data: tuple[Path, list[int]], num_workers: int, persistent: bool) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    loader = torch_loader(ds, num_workers, persistent_workers=persistent)
    batch_ids(loader)  # epoch 0
    ds.set_epoch(5)
    assert ds.epoch == 5
    assert batch_ids(loader) == reference(root, num_workers, 5)
    ds.set_epoch(5)  # DistributedSampler style: the same epoch again when told so
    assert batch_ids(loader) == reference(root, num_workers, 5)
    assert batch_ids(loader) == reference(root, num_workers, 6)  # and on from there
    ds.set_epoch(2)  # backwards too
    assert batch_ids(loader) == reference(root, num_workers, 2)


def test_set_epoch_every_epoch_like_distributed_sampler(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    loader = torch_loader(ds, 2)
    for e in range(3):
        ds.set_epoch(e)
        assert batch_ids(loader) == reference(root, 2, e)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_changing_the_number_of_workers_keeps_counting(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = make_ds(root, shuffle=True)
    plan = [2, 0, 3, 1, 2]
    for e, num_workers in enumerate(plan):
        got = batch_ids(torch_loader(ds, num_workers))
        assert got == reference(root, num_workers, e), f"iteration {e} with {num_workers} workers"
        assert sorted(flat(got)) == ids
    assert ds.epoch == len(plan)


def test_direct_iteration_counts_as_an_epoch(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    first = batch_ids(ds)  # no torch DataLoader at all
    assert first == reference(root, 0, 0)
    assert batch_ids(torch_loader(ds, 2)) == reference(root, 2, 1)


def test_broken_off_epoch_still_counts(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    for _batch in torch_loader(ds, 2):
        break
    assert ds.epoch == 1
    assert batch_ids(torch_loader(ds, 2)) == reference(root, 2, 1)


def test_without_shuffle_every_epoch_is_the_same(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = make_ds(root)
    loader = torch_loader(ds, 2)
    first, second = batch_ids(loader), batch_ids(loader)
    assert first == second
    assert sorted(flat(first)) == ids


def test_set_epoch_validates(data: tuple[Path, list[int]]) -> None:
    ds = make_ds(data[0])
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match="epoch"):
            ds.set_epoch(bad)  # type: ignore[arg-type]


def test_spawn_fresh_workers_advance_the_epoch(data: tuple[Path, list[int]]) -> None:
    """spawn workers unpickle the dataset; the epoch table must still be the shared one."""
    root, _ = data
    ds = make_ds(root, shuffle=True)
    loader = torch_loader(ds, 1, multiprocessing_context="spawn")
    first, second = batch_ids(loader), batch_ids(loader)
    assert ds.epoch == 2
    assert first == reference(root, 1, 0)
    assert second == reference(root, 1, 1)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_len_is_the_batches_of_one_iteration(data: tuple[Path, list[int]], num_workers: int) -> None:
    """len(ds) counts one iter(), which is one epoch (the core loader's len counts its pass)."""
    root, _ = data
    ds = make_ds(root, shuffle=True, batch_size=7)
    loader = torch_loader(ds, num_workers)
    assert len(ds) == -(-sum(SIZES) // 7)
    for _ in range(2):
        assert len(batch_ids(loader)) == len(ds)
    assert len(ds) == ds.core_loader.batches_per_epoch() == len(ds.core_loader)  # num_epoch=1 there


def test_num_epoch_other_than_one_is_refused(data: tuple[Path, list[int]]) -> None:
    for bad in (0, 2):
        with pytest.raises(ConfigError, match=f"num_epoch={bad}: each iter"):
            make_ds(data[0], num_epoch=bad)
