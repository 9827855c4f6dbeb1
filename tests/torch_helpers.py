"""Helpers of the ``tests/test_torch_*.py`` tests: chunk files with sample ids, and stream collectors.

Kept in a module (not in a test file) so that torch ``spawn`` workers can import what they unpickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch.utils.data import DataLoader as TorchDataLoader

from pyloader_core import JsonLineDataReader
from pyloader_torch import TorchChunkDataset

#: Uneven chunk sizes (200 samples): chunk and batch boundaries never line up.
SIZES = (37, 50, 23, 61, 29)


def write_chunks(directory: Path | str, sizes: Sequence[int], *, start_id: int = 0) -> list[int]:
    """Write one JSON-lines file per entry of ``sizes``; each record has a unique ``id``. Returns the ids."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids: list[int] = []
    i = start_id
    for f, n in enumerate(sizes):
        with open(directory / f"part-{f:04d}.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(n):
                fh.write(json.dumps({"id": i, "x": [(i % 7) / 7.0, (i % 3) / 3.0], "label": i % 2}) + "\n")
                ids.append(i)
                i += 1
    return ids


class UncountableReader(JsonLineDataReader):
    """A JSON-lines reader that cannot count samples without reading (like many custom readers)."""

    def count_samples(self, path: str) -> int | None:
        return None


def make_ds(
    data_dir: Any, batch_size: int = 8, reader: type[JsonLineDataReader] = JsonLineDataReader, **options: Any
) -> TorchChunkDataset:
    """A dataset of ``id``/``x``/``label`` batches (pass-through encoding)."""
    return TorchChunkDataset(reader(batch_size=batch_size), None, None, data_dir, **options)


def torch_loader(ds: TorchChunkDataset, num_workers: int, **kwargs: Any) -> TorchDataLoader:
    return TorchDataLoader(ds, batch_size=None, num_workers=num_workers, **kwargs)


def batch_ids(batches: Iterable[dict[str, Any]]) -> list[list[int]]:
    """The ``id`` list of every batch, checking each batch is a dict of tensors."""
    out = []
    for batch in batches:
        assert isinstance(batch, dict)
        assert all(isinstance(v, torch.Tensor) for v in batch.values()), {k: type(v) for k, v in batch.items()}
        out.append(batch["id"].tolist())
    return out


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def pyloader_threads() -> list[str]:
    """Names of PyLoader's worker threads still alive in this process."""
    return [t.name for t in threading.enumerate() if t.name.startswith("pyloader-")]


@contextlib.contextmanager
def as_torch_worker(worker: int, num_workers: int) -> Iterator[None]:
    """Make ``get_worker_info()`` inside pyloader_torch report torch worker ``worker`` of ``num_workers``."""
    info = mock.Mock(id=worker, num_workers=num_workers, seed=0)
    with mock.patch("pyloader_torch.dataset.get_worker_info", return_value=info):
        yield


def simulate(ds: TorchChunkDataset, num_workers: int) -> list[list[int]]:
    """One epoch of ``ds`` as a torch DataLoader with ``num_workers`` would yield it, all in this process.

    Worker ``w`` iterates its own share; batches are interleaved round-robin as torch does. (Each
    worker claims the epoch from the shared table, exactly like real workers.)
    """
    if num_workers == 0:
        return batch_ids(ds)
    per_worker = []
    for w in range(num_workers):
        with as_torch_worker(w, num_workers):
            per_worker.append(batch_ids(iter(ds)))
    out: list[list[int]] = []
    for step in range(max(map(len, per_worker), default=0)):
        out.extend(p[step] for p in per_worker if step < len(p))
    return out


def env_with_repo() -> dict[str, str]:
    """The environment for a subprocess that must import this checkout's packages."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
