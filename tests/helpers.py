"""Test helpers: data generators and readers that worker processes can import (module-level classes)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pyloader_core import DataCollator, DataReader, Dataset


def worker_processes() -> list:
    """This process's running descendants but multiprocessing's helpers (resource tracker, forkserver)."""
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in cmd and "forkserver" not in cmd:
            out.append(p)
    return out


def write_id_chunks(directory: Path, sizes: list[int], *, prefix: str = "chunk") -> Path:
    """JSON-lines chunks with ``id`` (unique, consecutive), ``input_text`` and ``label``."""
    directory.mkdir(parents=True, exist_ok=True)
    k = 0
    for c, size in enumerate(sizes):
        with open(directory / f"{prefix}{c:03d}.jsonl", "w", encoding="utf-8") as f:
            for _ in range(size):
                words = " ".join(str(1 + (k * 7 + j) % 50) for j in range(3 + k % 5))
                f.write(json.dumps({"id": k, "input_text": words, "label": k % 2}) + "\n")
                k += 1
    return directory


def all_ids(sizes: list[int]) -> list[int]:
    return list(range(sum(sizes)))


class IdReader(DataReader):
    """Minimal JSON-lines reader written the way a user would (the seed README's step 2)."""

    def read_file(self, path: str) -> tuple[dict[str, list[Any]], int]:
        columns: dict[str, list[Any]] = {"id": [], "input_text": [], "label": []}
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                for key in columns:
                    columns[key].append(rec[key])
        return columns, len(columns["id"])

    def count_samples(self, path: str) -> int:
        with open(path, "rb") as f:
            return sum(1 for _ in f)


class IdDataset(Dataset):
    def batch_encode(self, batch):
        return {"id": np.asarray(batch["id"], dtype=np.int64), "label": np.asarray(batch["label"], dtype=np.int64)}


class IdCollator(DataCollator):
    def collate_batch(self, batch):
        return {k: np.asarray(v) for k, v in batch.items()}


class FailingReader(IdReader):
    """Raises ``exc_type`` on the file whose name contains ``bad``."""

    def __init__(self, bad: str, exc_type: type[Exception] = KeyError, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad, self.exc_type = bad, exc_type

    def read_file(self, path: str):
        if self.bad in os.path.basename(path):
            raise self.exc_type(f"broken chunk {os.path.basename(path)}")
        return super().read_file(path)


class FailingDataset(IdDataset):
    """``batch_encode`` fails for the samples whose id is in ``bad_ids``."""

    def __init__(self, bad_ids: set[int]) -> None:
        self.bad_ids = set(bad_ids)

    def batch_encode(self, batch):
        bad = self.bad_ids.intersection(batch["id"])
        if bad:
            raise ValueError(f"cannot encode ids {sorted(bad)}")
        return super().batch_encode(batch)


class UnpicklableError(Exception):
    def __init__(self, a, b):  # two required args: pickling round-trip fails
        super().__init__(f"{a}/{b}")
        self.lock = threading.Lock()


class UnpicklableErrorReader(IdReader):
    """Fails on the second chunk (the first is read by the consumer while processes start)."""

    def read_file(self, path: str):
        if path.endswith("001.jsonl"):
            raise UnpicklableError("x", "y")
        return super().read_file(path)


class KillSelfReader(IdReader):
    """Kills its own process on the file whose name contains ``bad`` (a crashing native library)."""

    def __init__(self, bad: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad = bad

    def read_file(self, path: str):
        if self.bad in os.path.basename(path):
            os.kill(os.getpid(), 9)
        return super().read_file(path)


class GatedReader(IdReader):
    """Thread-worker reader that blocks on every file but the first until ``release`` is set.

    Records how many reads have started, to check the in-flight bound.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.started = 0

    def read_file(self, path: str):
        with self.lock:
            self.started += 1
        if not path.endswith("000.jsonl"):
            if not self.release.wait(30):
                raise TimeoutError("test never released the reader")
        return super().read_file(path)


def ids_of(loader_or_iter) -> list[int]:
    out: list[int] = []
    for batch in loader_or_iter:
        out.extend(np.asarray(batch["id"]).tolist())
    return out


class StuckReader(IdReader):
    """Never finishes any chunk but the first (a hung network mount)."""

    def read_file(self, path: str):
        if not path.endswith("000.jsonl"):
            threading.Event().wait(120)
        return super().read_file(path)


class ExitingReader(IdReader):
    """Raises ``exc_type`` (``SystemExit``, ``KeyboardInterrupt``: not ``Exception``) on the file named ``bad``."""

    def __init__(self, bad: str, exc_type: type[BaseException] = SystemExit, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad, self.exc_type = bad, exc_type

    def read_file(self, path: str):
        if self.bad in os.path.basename(path):
            raise self.exc_type(3)
        return super().read_file(path)


class LockColumnDataset(IdDataset):
    """Puts a lock (which cannot be pickled) in a column: a result that cannot leave a worker process."""

    def batch_encode(self, batch):
        out = super().batch_encode(batch)
        out["guard"] = [threading.Lock() for _ in batch["id"]]
        return out


class MiscountingReader(IdReader):
    """Says one sample more than it returns for the file named ``bad`` (a ``SampleCountError``)."""

    def __init__(self, bad: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad = bad

    def read_file(self, path: str):
        columns, n = super().read_file(path)
        return columns, n + 1 if self.bad in os.path.basename(path) else n


class NotedErrorReader(IdReader):
    """Raises a ``ValueError`` with a note of its own on the file named ``bad``."""

    def __init__(self, bad: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad = bad

    def read_file(self, path: str):
        if self.bad in os.path.basename(path):
            exc = ValueError("bad bytes")
            exc.add_note("reader note: offset 17")
            raise exc
        return super().read_file(path)


class BlobDataset(IdDataset):
    """Adds a large float column (``width`` floats per sample), so each chunk's result is megabytes."""

    def __init__(self, width: int = 40_000) -> None:
        self.width = width

    def batch_encode(self, batch):
        out = super().batch_encode(batch)
        out["blob"] = np.ones((len(batch["id"]), self.width)) * np.asarray(batch["id"], dtype=np.float64)[:, None]
        return out


class DynamicPadDataset(Dataset):
    """Pads to the longest text *of the batch it is given* (dynamic padding) and tags each sample with the
    smallest id of that call, so a test can check that one call made exactly one yielded batch."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def batch_encode(self, batch):
        if len(batch["id"]) > self.batch_size:
            raise AssertionError(f"batch_encode got {len(batch['id'])} samples, more than one batch")
        tokens = [[int(w) for w in t.split()] for t in batch["input_text"]]
        width = max(len(t) for t in tokens)
        return {
            "id": list(batch["id"]),
            "input_ids": [t + [0] * (width - len(t)) for t in tokens],
            "call": [min(batch["id"])] * len(tokens),
        }
