"""Distributed sharding with simulated ranks (rank=/world_size=), and rank discovery from torch.distributed."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from unittest import mock

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

import torch.distributed as dist  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch_helpers import (  # noqa: E402
    SIZES,
    UncountableReader,
    batch_ids,
    flat,
    make_ds,
    simulate,
    torch_loader,
    write_chunks,
)

from pyloader_core import ConfigError, DataLoader, JsonLineDataReader, Shard  # noqa: E402
from pyloader_torch import dataset as dataset_module  # noqa: E402
from pyloader_torch import resolve_rank  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    root = tmp_path_factory.mktemp("chunks")
    return root, write_chunks(root, SIZES)


def run_ranks(root: Path, world_size: int, num_workers: int, epochs: int = 1, **options: object):
    """Per rank: the datasets and each epoch's batches, through a real torch DataLoader."""
    datasets = [make_ds(root, rank=r, world_size=world_size, shuffle=True, **options) for r in range(world_size)]
    out = []
    for ds in datasets:
        loader = torch_loader(ds, num_workers)
        out.append([batch_ids(loader) for _ in range(epochs)])
    return datasets, out


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_ranks_are_disjoint_equal_and_cover_the_epoch(
    data: tuple[Path, list[int]], world_size: int, num_workers: int, caplog: pytest.LogCaptureFixture
) -> None:
    root, ids = data
    with caplog.at_level(logging.WARNING, logger="pyloader_torch"):
        datasets, per_rank = run_ranks(root, world_size, num_workers, epochs=2)
    dropped = len(ids) % world_size  # 200 samples: 0 for 1 and 2 ranks, 2 for 3 ranks
    for ds in datasets:
        assert ds.dropped_per_epoch == dropped
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == (world_size if dropped else 0)  # reported once per rank's dataset, never silent
    for epoch in range(2):
        rank_ids = [flat(epochs[epoch]) for epochs in per_rank]
        seen = [i for r in rank_ids for i in r]
        assert len(seen) == len(set(seen)), "a sample went to two ranks or twice to one"
        assert len(seen) == len(ids) - dropped and set(seen) <= set(ids)
        assert len({len(r) for r in rank_ids}) == 1  # equal samples per rank
        steps = {len(epochs[epoch]) for epochs in per_rank}
        assert steps == {len(datasets[0])}  # equal batches per rank, and len() says how many
    if world_size > 1:
        assert flat(per_rank[0][0]) != flat(per_rank[0][1])  # each epoch reshuffled across ranks


@pytest.mark.parametrize("world_size", [2, 3])
def test_same_stream_for_the_same_seed(data: tuple[Path, list[int]], world_size: int) -> None:
    root, _ = data
    _, a = run_ranks(root, world_size, 2)
    _, b = run_ranks(root, world_size, 2)
    assert a == b


@pytest.mark.parametrize("drop_last", [False, True])
def test_one_file_two_ranks_two_workers(tmp_path: Path, drop_last: bool) -> None:
    """Fewer files than ranks x workers: shards are sample ranges of the one file."""
    ids = write_chunks(tmp_path, (45,))
    datasets, per_rank = run_ranks(tmp_path, 2, 2, batch_size=4, drop_last=drop_last)
    assert datasets[0].dropped_per_epoch == 1  # 45 = 2 x 22 + 1
    rank_ids = [flat(epochs[0]) for epochs in per_rank]
    assert not set(rank_ids[0]) & set(rank_ids[1])
    assert all(len(r) == (20 if drop_last else 22) for r in rank_ids)  # 22 = 5 x 4 + 2
    assert set(rank_ids[0]) | set(rank_ids[1]) <= set(ids)
    assert [len(epochs[0]) for epochs in per_rank] == [len(datasets[0])] * 2 == [5 if drop_last else 6] * 2


def test_reader_without_counts_is_counted_once_for_ranks(data: tuple[Path, list[int]]) -> None:
    """Several ranks need counts: read once at construction, never again by the workers."""
    root, ids = data
    original = UncountableReader.read_file
    with mock.patch.object(UncountableReader, "read_file", autospec=True, side_effect=original) as read_file:
        datasets = [make_ds(root, reader=UncountableReader, rank=r, world_size=2, shuffle=True) for r in range(2)]
        assert read_file.call_count == 2 * len(SIZES)  # each rank's dataset counts by reading, once
        read_file.reset_mock()
        seen = [flat(simulate(ds, 2)) for ds in datasets]
        units = sum(len(ds.core_loader.plan(0, Shard(w, 2)).units) for ds in datasets for w in range(2))
        assert read_file.call_count == units  # workers read their units, nothing to count
    assert datasets[0].sample_counts == list(SIZES)
    assert sorted(seen[0] + seen[1]) == ids


def test_stats_report_dropped_samples(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = make_ds(root, rank=1, world_size=3, shuffle=True)
    for _ in range(2):
        for _batch in torch_loader(ds, 0):
            pass
    stats = ds.stats()
    assert stats["dropped_samples"] == 2 * ds.dropped_per_epoch == 4
    assert stats["samples"] == 2 * (len(ids) // 3)


def test_sample_sharding_agrees_with_the_core_plan(data: tuple[Path, list[int]]) -> None:
    """pyloader_torch plans torch workers like the core does whenever the core uses counts."""
    root, _ = data
    for world_size, workers in ((2, 2), (3, 2), (1, 7)):  # several ranks, or more workers than files
        ours = make_ds(root, rank=world_size - 1, world_size=world_size, shuffle=True, shuffle_buffer=2).core_loader
        core = DataLoader(
            JsonLineDataReader(batch_size=8),
            None,
            None,
            root,
            shuffle=True,
            shuffle_buffer=2,
            rank=world_size - 1,
            world_size=world_size,
        )
        for epoch in (0, 3):
            for w in range(workers):
                assert ours.plan(epoch, Shard(w, workers)) == core.plan(epoch, Shard(w, workers))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=5),
    batch_size=st.integers(1, 9),
    world_size=st.integers(1, 3),
    num_workers=st.integers(0, 4),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_any_split_is_exact(
    sizes: list[int], batch_size: int, world_size: int, num_workers: int, drop_last: bool, shuffle: bool, epoch: int
) -> None:
    """Every (sizes, batch, ranks, torch workers): disjoint, equal per rank, len() exact, nothing lost silently."""
    with tempfile.TemporaryDirectory() as tmp:
        ids = write_chunks(tmp, sizes)
        total = len(ids)
        per_rank_samples = total // world_size
        expected_batches = per_rank_samples // batch_size if drop_last else -(-per_rank_samples // batch_size)
        seen: list[int] = []
        for rank in range(world_size):
            ds = make_ds(
                tmp, batch_size=batch_size, rank=rank, world_size=world_size, shuffle=shuffle, drop_last=drop_last
            )
            ds.set_epoch(epoch)
            batches = simulate(ds, num_workers)
            assert ds.dropped_per_epoch == total % world_size
            assert len(batches) == len(ds) == expected_batches
            assert sum(len(b) < batch_size for b in batches) <= (0 if drop_last else 1)
            assert all(0 < len(b) <= batch_size for b in batches)
            got = flat(batches)
            kept = expected_batches * batch_size if drop_last else per_rank_samples
            assert len(got) == kept
            seen.extend(got)
        assert len(seen) == len(set(seen))
        assert set(seen) <= set(ids)


# ----------------------------------------------------------------------------- rank discovery


def test_resolve_rank_without_torch_distributed() -> None:
    assert resolve_rank() == (0, 1)
    assert resolve_rank(2, 3) == (2, 3)
    with pytest.raises(ConfigError, match="both"):
        resolve_rank(rank=1)
    with pytest.raises(ConfigError, match="rank must be < world_size"):
        resolve_rank(3, 3)
    with pytest.raises(ConfigError, match="world_size"):
        resolve_rank(0, 0)


def fake_group(rank: int, world_size: int):
    return mock.patch("pyloader_torch.distributed.distributed_context", return_value=(rank, world_size))


def test_rank_from_torch_distributed(data: tuple[Path, list[int]], caplog: pytest.LogCaptureFixture) -> None:
    root, _ = data
    with fake_group(1, 2):
        assert resolve_rank() == (1, 2)
        assert resolve_rank(world_size=4) == (1, 4)  # one given: the other from the group
        ds = make_ds(root)
        assert (ds.rank, ds.world_size) == (1, 2)
        with caplog.at_level(logging.WARNING, logger="pyloader_torch"):
            assert resolve_rank(0, 1) == (0, 1)  # explicit wins, with a warning
        assert "explicitly" in caplog.text


def test_warns_when_built_before_init_process_group(data: tuple[Path, list[int]], caplog: pytest.LogCaptureFixture):
    root, _ = data
    ds = make_ds(root)
    with (
        mock.patch.object(dataset_module, "distributed_context", return_value=(0, 2)),
        caplog.at_level(logging.WARNING, logger="pyloader_torch"),
    ):
        iter(ds)
        iter(ds)
    assert sum("init_process_group" in r.getMessage() for r in caplog.records) == 1


def test_real_single_process_group(tmp_path: Path, data: tuple[Path, list[int]]) -> None:
    root, ids = data
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ds = make_ds(root, shuffle=True)
        assert (ds.rank, ds.world_size) == (0, 1)
        assert sorted(flat(batch_ids(torch_loader(ds, 0)))) == ids
    finally:
        dist.destroy_process_group()
