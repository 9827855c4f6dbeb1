"""Memory budget (max_memory) and auto-tuning (num_workers / max_queue_size = "auto")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import IdDataset, IdReader, ids_of, write_id_chunks

from pyloader_core import ConfigError, DataCollator, DataLoader, DataReader, Dataset
from pyloader_core.runtime.memory import MemoryBudget, footprint


def test_footprint_counts_arrays_exactly_and_lists_roughly():
    assert footprint({"x": np.zeros((100, 10))}) == 8000
    texts = ["a" * 100] * 1000
    est = footprint({"t": texts})
    assert 100_000 < est < 200_000  # 1000 strings of ~150 bytes plus the list
    assert footprint({}) == 0 and footprint(None) == 0


def _traced(make):
    """What building ``make()`` allocates (tracemalloc), and the object."""
    import tracemalloc

    tracemalloc.start()
    try:
        obj = make()
        return tracemalloc.get_traced_memory()[0], obj
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "make",
    [
        lambda: {"t": [f"record {i} " * 20 for i in range(5000)]},  # texts
        lambda: {"r": [{"id": 10**6 + i, "text": f"text {i} " * 30, "label": i % 2} for i in range(5000)]},  # records
        lambda: {"ids": [[1000 * i + j for j in range(40)] + [0] * 88 for i in range(2000)]},  # padded id rows
        lambda: {"m": [[j % 2 for j in range(128)] for _ in range(2000)]},  # masks: small ints are shared
        lambda: {"v": [np.zeros(64) for _ in range(2000)]},  # arrays in a list, counted once
    ],
    ids=["texts", "records", "id-rows", "masks", "array-list"],
)
def test_footprint_of_python_objects_is_close_to_what_they_take(make):
    real, columns = _traced(make)
    assert 0.85 * real <= footprint(columns) <= 1.35 * real, (footprint(columns), real)


def test_release_free_memory_never_fails(monkeypatch):
    from pyloader_core.runtime import memory

    memory.release_free_memory()  # glibc: malloc_trim(0); elsewhere a no-op
    memory.release_free_memory()

    def broken(pad):
        raise OSError("no")

    monkeypatch.setattr(memory, "_malloc_trim", broken)
    monkeypatch.setattr(memory, "_trim_loaded", True)
    memory.release_free_memory()  # a failing trim is dropped, never raised
    assert memory._malloc_trim is None


def test_budget_caps_chunks_in_flight():
    budget = MemoryBudget(100 << 20, workers=2, window=1)
    assert budget.cap(50) == 2  # nothing measured yet: one per worker
    budget.observe(raw=10 << 20, encoded=10 << 20)
    # held: 2 workers x 20 MiB + 2 x 10 MiB = 60 MiB; 40 MiB spare = 4 more chunks
    assert budget.cap(50) == 6
    assert budget.cap(3) == 3
    budget.observe(raw=80 << 20, encoded=80 << 20)
    assert budget.cap(50) == 1  # never below one: the loader always makes progress


def test_budget_counts_the_batch_a_worker_is_encoding():
    budget = MemoryBudget(100 << 20, workers=2, window=1)
    budget.observe(raw=10 << 20, encoded=10 << 20, step=1 << 20)
    # each busy worker also holds its batch as Python lists (5 x 1 MiB): 70 MiB held, 30 MiB spare
    assert budget.cap(50) == 5
    budget.observe(raw=10 << 20, encoded=10 << 20, step=10 << 20)  # one batch_encode call for the chunk
    assert budget.cap(50) == 1


def test_max_memory_parsing():
    from pyloader_core import LoaderOptions

    assert LoaderOptions(max_memory="2GB").max_memory == 2 << 30
    assert LoaderOptions(max_memory=12345).max_memory == 12345
    with pytest.raises(ConfigError, match="max_memory"):
        LoaderOptions(max_memory="lots")


PEAK_SCRIPT = textwrap.dedent(
    """
    import sys, json
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_memory import peak_loader

    def hwm_mb():
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    if __name__ == "__main__":
        kind, budget = sys.argv[1], None if sys.argv[2] == "none" else sys.argv[2]
        loader, key, steps = peak_loader(kind, {data!r}, budget)
        work = np.ones((300, 300))
        before = hwm_mb()
        n = 0
        for batch in loader:
            n += len(batch[key])
            for _ in range(steps):
                work = np.tanh(work @ work / 300.0)  # a slow training step: the queue fills up
        print(json.dumps({{"samples": n, "peak_mb": hwm_mb() - before}}))
    """
)


def peak_loader(kind: str, data: str, budget: str | None):
    """The loader a peak-memory child runs, the key it counts and its training step (``kind``:
    ``"arrays"``, 16 MiB numeric chunks; ``"texts"``, Python strings encoded to id lists)."""
    if kind == "arrays":
        loader = DataLoader(BigChunkReader(batch_size=512), None, None, data, num_workers=2,
                            max_queue_size=40, max_memory=budget)
        return loader, "x", 4
    loader = DataLoader(TextChunkReader(batch_size=256), TokenIdsDataset(), ArraysCollator(), data,
                        num_workers=2, worker_type="thread", max_queue_size=40, max_memory=budget)
    return loader, "ids", 3


def _peak_run(tmp_path, kind: str, budget: str, files: int, env: dict) -> dict:
    """Run ``peak_loader(kind)`` over ``files`` chunks in a child process; its samples and peak above baseline."""
    import json

    data = tmp_path / kind
    if not data.exists():
        data.mkdir()
        for k in range(files):
            (data / f"c{k:02d}").write_text(str(k))
    script = tmp_path / "peak.py"
    script.write_text(PEAK_SCRIPT.format(tests=os.path.dirname(__file__), data=str(data)))
    proc = subprocess.run([sys.executable, str(script), kind, budget], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


class BigChunkReader(DataReader):
    """Each file names a chunk of 2048 rows x 1024 float64 = 16 MiB, made in memory."""

    def read_file(self, path):
        k = int(open(path).read())
        return {"x": np.full((2048, 1024), float(k))}, 2048


def _peak(tmp_path, budget: str) -> dict:
    # glibc raises its mmap threshold after big frees, then keeps freed chunks in the heap: RSS would
    # show the allocator's cache, not what the loader holds. A fixed threshold returns them at once
    # (the README's advice for thread workers; process workers hand chunks over in shared memory).
    return _peak_run(tmp_path, "arrays", budget, 30, dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072"))


def test_peak_rss_stays_within_max_memory(tmp_path):
    capped = _peak(tmp_path, "160MiB")
    free = _peak(tmp_path, "none")
    assert capped["samples"] == free["samples"] == 30 * 2048
    assert capped["peak_mb"] <= 160 * 1.10, capped  # within the budget (+10%) above the baseline
    assert free["peak_mb"] > 250, free  # without a budget, 40 chunks in flight cost far more


class TextChunkReader(DataReader):
    """Each file names a chunk of 4000 texts (~7 MB of Python strings) and labels, made in memory."""

    def read_file(self, path):
        k = int(open(path).read())
        texts = [f"chunk {k} row {i} " + "lorem ipsum " * 150 for i in range(4000)]
        return {"text": texts, "label": [i % 2 for i in range(4000)]}, 4000


class TokenIdsDataset(Dataset):
    """512 ids per text as lists of Python ints (as tokenisers give them): 16 MiB a chunk as arrays."""

    def batch_encode(self, batch):
        n = len(batch["text"])
        ids = (np.arange(n * 512).reshape(n, 512) + 1000).tolist()
        return {"ids": ids, "label": list(batch["label"])}


class ArraysCollator(DataCollator):
    def collate_batch(self, batch):
        return {k: np.asarray(v) for k, v in batch.items()}


def _thread_peak(tmp_path, budget: str) -> dict:
    # The library's own doing: no allocator tuning from the environment (MALLOC_*_, GLIBC_TUNABLES).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    return _peak_run(tmp_path, "texts", budget, 16, env)


def test_peak_rss_stays_within_max_memory_with_thread_workers(tmp_path):
    # Python objects read (strings), numeric lists encoded (arrays in the workers), two thread workers
    # allocating in their own malloc arenas: RSS must still follow the budget.
    capped = _thread_peak(tmp_path, "100MB")
    free = _thread_peak(tmp_path, "none")
    assert capped["samples"] == free["samples"] == 16 * 4000
    assert capped["peak_mb"] <= 100 * 1.10, capped  # within the budget (+10%) above the baseline
    assert free["peak_mb"] > 150, free  # without a budget, the chunks the workers run ahead cost far more


class SlowReader(IdReader):
    """Each chunk costs the worker real CPU time, so one worker cannot keep up."""

    def read_file(self, path):
        cols, n = super().read_file(path)
        x = np.ones((200, 200))
        for _ in range(30):
            x = np.tanh(x @ x / 200.0)
        return cols, n


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="auto-tuning can only add workers with 2+ CPUs")
def test_auto_workers_grow_when_the_consumer_waits(tmp_path):
    data = write_id_chunks(tmp_path / "d", [20] * 12)
    loader = DataLoader(SlowReader(batch_size=10), IdDataset(), None, data, num_workers="auto", max_queue_size="auto")
    ids = ids_of(loader)
    assert sorted(ids) == list(range(240))
    assert loader.stats()["num_workers"] == os.cpu_count()
    assert loader.stats()["wait_s"] > 0


def test_auto_workers_stay_at_one_when_the_consumer_is_the_bottleneck(tmp_path):
    data = write_id_chunks(tmp_path / "d", [5] * 12)
    loader = DataLoader(IdReader(batch_size=5), IdDataset(), None, data, num_workers="auto", max_queue_size=12)
    work = np.ones((200, 200))
    ids = []
    it = iter(loader)
    first = next(it)  # let the queue fill while the consumer trains
    for batch in it:
        ids.extend(batch["id"].tolist())
        for _ in range(20):
            work = np.tanh(work @ work / 200.0)
    assert sorted(first["id"].tolist() + ids) == list(range(60))
    assert loader.stats()["num_workers"] == 1


def test_autoscaler_needs_sustained_waiting():
    from pyloader_core.runtime.autotune import WorkerAutoscaler

    scaler = WorkerAutoscaler(max_workers=3, window=3, threshold=0.1)
    scaler.record(10.0)  # one long wait is not enough evidence
    assert not scaler.should_grow(1, busy=True)
    scaler.record(10.0)
    scaler.record(10.0)
    assert not scaler.should_grow(1, busy=False)  # idle workers: more would not help
    assert scaler.should_grow(1, busy=True)
    assert not scaler.should_grow(2, busy=True)  # evidence starts afresh after growing
    for _ in range(3):
        scaler.record(0.0)
    assert not scaler.should_grow(2, busy=True)
    assert not WorkerAutoscaler(max_workers=1).should_grow(1, busy=True)


def test_stream_is_the_same_with_auto_settings(tmp_path):
    data = write_id_chunks(tmp_path / "d", [7, 9, 4, 12, 3])
    fixed = ids_of(DataLoader(IdReader(batch_size=4), IdDataset(), None, data, shuffle=True, shuffle_buffer=2))
    auto = ids_of(
        DataLoader(IdReader(batch_size=4), IdDataset(), None, data, shuffle=True, shuffle_buffer=2,
                   num_workers="auto", max_queue_size="auto", max_memory="1MB")
    )
    assert auto == fixed
