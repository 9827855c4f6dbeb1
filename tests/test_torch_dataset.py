"""TorchChunkDataset in a torch DataLoader: batches of tensors, worker sharding, determinism, lifecycle."""

from __future__ import annotations

import logging
import pickle
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="pyloader_torch needs PyTorch (pip install 'pyloader-chunks[torch]')")

import psutil  # noqa: E402
from torch_helpers import (  # noqa: E402
    SIZES,
    UncountableReader,
    batch_ids,
    flat,
    make_ds,
    pyloader_threads,
    torch_loader,
    write_chunks,
)

from pyloader_core import ConfigError, NumpyDataCollator, TextDataset  # noqa: E402
from pyloader_torch import TorchChunkDataset, TorchCollator  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    root = tmp_path_factory.mktemp("chunks")
    return root, write_chunks(root, SIZES)


# ----------------------------------------------------------------------------- what it yields


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_yields_dicts_of_tensors_once_per_sample(data: tuple[Path, list[int]], num_workers: int) -> None:
    root, ids = data
    ds = make_ds(root, shuffle=True)
    batches = list(torch_loader(ds, num_workers))
    first = batches[0]
    assert set(first) == {"id", "x", "label"}
    assert first["x"].dtype == torch.float64 and first["x"].shape == (8, 2)
    assert first["label"].dtype == torch.int64
    got = flat(batch_ids(batches))
    assert sorted(got) == ids  # every sample exactly once: no duplicate, none missing
    assert len(batches) == len(ds) == 25  # ceil(200 / 8)
    assert sum(len(b["id"]) != 8 for b in batches) == 0  # 200 = 25 * 8: no short batch


def test_text_pipeline_and_custom_collator(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for f in range(3):
        (tmp_path / "data" / f"c{f}.jsonl").write_text(
            "".join(f'{{"input_text": "{i} {i + 1} {i + 2}", "label": {i % 2}}}\n' for i in range(10 * f, 10 * f + 10))
        )
    from pyloader_core import JsonLineDataReader

    ds = TorchChunkDataset(
        JsonLineDataReader(batch_size=4), TextDataset(max_seq_len=5), NumpyDataCollator(), tmp_path / "data"
    )
    assert isinstance(ds.datacollator, TorchCollator)
    batches = list(torch_loader(ds, 2))
    assert all(b["input_ids"].shape[1] == 5 and b["input_ids"].dtype == torch.int64 for b in batches)
    assert sum(len(b["label"]) for b in batches) == 30


# ----------------------------------------------------------------------------- worker sharding


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize(
    "num_workers, shuffle", [(0, False), (1, False), (2, False), (0, True), (1, True), (2, True), (4, True)]
)
def test_same_seed_same_stream(data: tuple[Path, list[int]], num_workers: int, shuffle: bool) -> None:
    root, ids = data
    a = batch_ids(torch_loader(make_ds(root, shuffle=shuffle, random_seed=7), num_workers))
    b = batch_ids(torch_loader(make_ds(root, shuffle=shuffle, random_seed=7), num_workers))
    assert a == b
    assert sorted(flat(a)) == ids
    if shuffle:
        c = batch_ids(torch_loader(make_ds(root, shuffle=True, random_seed=8), num_workers))
        assert flat(c) != flat(a) and sorted(flat(c)) == ids
    else:
        assert sorted(flat(a)) == ids


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize("num_workers", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_is_exact_for_every_worker_split(tmp_path: Path, num_workers: int, drop_last: bool) -> None:
    ids = write_chunks(tmp_path, (13, 2, 9, 30))  # 54 samples, batch 8: 6 full + 6 left
    ds = make_ds(tmp_path, shuffle=True, drop_last=drop_last)
    batches = batch_ids(torch_loader(ds, num_workers))
    assert len(batches) == len(ds) == (6 if drop_last else 7)
    assert sum(len(b) != 8 for b in batches) == (0 if drop_last else 1)  # one short batch per epoch at most
    got = flat(batches)
    assert len(got) == len(set(got))
    assert len(got) == (48 if drop_last else 54) and set(got) <= set(ids)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_fewer_files_than_workers_shards_by_sample(tmp_path: Path) -> None:
    ids = write_chunks(tmp_path, (45,))
    ds = make_ds(tmp_path, batch_size=4, shuffle=True)
    batches = batch_ids(torch_loader(ds, 3))
    assert sorted(flat(batches)) == ids
    assert len(batches) == len(ds) == 12


def test_reader_without_counts(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = make_ds(root, reader=UncountableReader, shuffle=True)
    assert ds.sample_counts is None
    with pytest.raises(TypeError, match="count_samples"):
        len(ds)
    for num_workers in (0, 2):  # whole files dealt to workers
        assert sorted(flat(batch_ids(torch_loader(ds, num_workers)))) == ids
    # More workers than files: the workers count by reading, and still split exactly.
    small = make_ds(root / "part-0001.jsonl", reader=UncountableReader, shuffle=True)
    assert sorted(flat(batch_ids(torch_loader(small, 2)))) == ids[37:87]


# ----------------------------------------------------------------------------- options


def test_options_are_validated_at_construction(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    with pytest.raises(ConfigError, match="num_workers"):
        make_ds(root, num_workers=-1)
    with pytest.raises(ConfigError, match="valid options"):
        make_ds(root, bogus=1)
    with pytest.raises(ConfigError, match="one epoch"):
        make_ds(root, num_epoch=3)
    with pytest.raises(ConfigError, match="rank"):
        make_ds(root, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="both"):
        make_ds(root, rank=1)


def test_reader_by_name(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = TorchChunkDataset("jsonl", None, None, root, batch_size=10)
    assert ds.batch_size == 10 and len(ds) == 20
    assert sorted(flat(batch_ids(torch_loader(ds, 0)))) == ids


# ----------------------------------------------------------------------------- pickling and lifecycle


def test_picklable_and_starts_nothing_before_iter(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    before = set(threading.enumerate())
    children = psutil.Process().children()
    ds = make_ds(root, shuffle=True, num_workers=2)  # core thread workers
    it = iter(ds)  # pools start on the first next()
    assert set(threading.enumerate()) == before
    assert psutil.Process().children() == children
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.files == ds.files and copy.sample_counts == ds.sample_counts
    next(it)  # a live iteration does not stop the dataset from pickling
    pickle.loads(pickle.dumps(ds))
    del it


def test_unpickled_copy_gives_the_same_epoch(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True)
    ds.set_epoch(3)
    copy = pickle.loads(pickle.dumps(ds))  # plain pickle: a private copy of the epoch table
    assert batch_ids(copy) == batch_ids(ds)
    assert ds.epoch == copy.epoch == 4


def worker_processes() -> list[int]:
    """PyLoader's worker processes alive under this one (not multiprocessing's resource tracker)."""
    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_break_stops_pyloader_workers(data: tuple[Path, list[int]], worker_type: str) -> None:
    root, _ = data
    ds = make_ds(root, batch_size=2, shuffle=True, num_workers=2, worker_type=worker_type, max_queue_size=2)
    loader = torch_loader(ds, 0)
    for i, _batch in enumerate(loader):
        if i == 0:
            assert len(pyloader_threads() if worker_type == "thread" else worker_processes()) == 2
        if i == 3:
            break
    # Leaving the loop drops torch's iterator, which closes our generator and with it the pool
    # (the pool's close joins its workers before it returns: nothing to wait for here). Process
    # workers are kept for the next epoch (persistent by default: their start-up is paid once), and
    # stop on close().
    assert pyloader_threads() == []
    if worker_type == "process":
        kept = worker_processes()
        assert len(kept) == 2
        assert sorted(flat(batch_ids(torch_loader(ds, 0)))) == sorted(flat(batch_ids(torch_loader(make_ds(root), 0))))
        assert worker_processes() == kept  # the same processes served the next epoch
        ds.close()
    assert worker_processes() == []


def test_explicit_close_and_exhaustion_stop_workers(data: tuple[Path, list[int]]) -> None:
    root, _ = data
    ds = make_ds(root, shuffle=True, num_workers=2)
    it = iter(torch_loader(ds, 0))
    next(it)
    assert len(pyloader_threads()) == 2
    ds.close()  # closes every open iteration of this process
    assert pyloader_threads() == []
    for _batch in torch_loader(ds, 0):  # a full epoch ends its own pool
        pass
    assert pyloader_threads() == []
    del it


def test_stats_of_main_process_iterations(data: tuple[Path, list[int]]) -> None:
    root, ids = data
    ds = make_ds(root, shuffle=True)
    for _ in range(2):
        for _batch in torch_loader(ds, 0):
            pass
    stats = ds.stats()
    assert stats["samples"] == 2 * len(ids)
    assert stats["batches"] == 2 * len(ds)
    assert stats["dropped_samples"] == 0
    assert stats["epoch"] == 1


def test_spawn_workers(data: tuple[Path, list[int]], caplog: pytest.LogCaptureFixture) -> None:
    """Workers started with spawn unpickle the dataset (and the shared epoch table) in a fresh interpreter."""
    root, ids = data
    ds = make_ds(root, shuffle=True)
    ref = make_ds(root, shuffle=True)
    loader = torch_loader(ds, 2, multiprocessing_context="spawn", persistent_workers=True)
    epochs = [batch_ids(loader) for _ in range(2)]  # persistent: the same two workers for both epochs
    assert ds.epoch == 2
    for e, got in enumerate(epochs):
        ref.set_epoch(e)
        assert got == batch_ids(torch_loader(ref, 2))  # same stream as fork workers
        assert sorted(flat(got)) == ids
    assert epochs[0] != epochs[1]


def test_no_log_noise_in_a_plain_run(data: tuple[Path, list[int]], caplog: pytest.LogCaptureFixture) -> None:
    root, _ = data
    with caplog.at_level(logging.WARNING):
        for _batch in torch_loader(make_ds(root, shuffle=True), 2):
            pass
    assert [r for r in caplog.records if r.name.startswith("pyloader")] == []


def test_pyloader_process_workers_inside_torch_workers(data: tuple[Path, list[int]]) -> None:
    """torch num_workers=2 around PyLoader process workers: they fork inside torch's daemonic workers
    (multiprocessing refuses to start children there) and every sample still comes exactly once."""
    root, ids = data
    ds = make_ds(root, shuffle=True, num_workers=2, worker_type="process")
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = flat(batch_ids(torch_loader(ds, 2)))
        assert sorted(got) == ids
    ds.close()
    assert worker_processes() == []


def test_skips_counted_in_torch_workers_reach_the_training_process(tmp_path: Path) -> None:
    """torch num_workers=2 splits files by sample ranges; a bad record costs itself only, and its count
    (from a worker process) shows in the dataset's stats() in the training process."""
    root = tmp_path / "d"
    ids = write_chunks(root, [40, 40])
    lines = (root / "part-0000.jsonl").read_text().splitlines()
    lines[7] = '{"id": 7, broken'
    (root / "part-0000.jsonl").write_text("\n".join(lines) + "\n")
    ds = make_ds(root, on_error="skip")
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = flat(batch_ids(torch_loader(ds, 2)))
        assert sorted(got) == [i for i in ids if i != 7]
    stats = ds.stats()
    assert stats["skipped_count"] == 2  # one bad record, two epochs
    assert stats["samples"] == 2 * 79
    assert sum(w["skipped_count"] for w in stats["torch_workers"].values()) == 2
