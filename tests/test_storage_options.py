"""``storage_options``: fsspec's file-system arguments reach the listing and every read, in threads and
in process workers (fork and spawn); ``memory://`` with process workers is a ConfigError saying why."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from helpers import IdCollator, IdDataset, ids_of, write_id_chunks

from pyloader_core import ConfigError, DataLoader, JsonLineDataReader, LoaderOptions, list_files
from pyloader_core.storage import fs as storage_fs

TOKEN = "sesame"


class GuardedFileSystem(LocalFileSystem):
    """Local files behind ``guarded://``, refused unless the file system gets ``token=TOKEN``."""

    protocol = ("guarded",)
    root_marker = "/"

    def __init__(self, token: str | None = None, **kwargs):
        if token != TOKEN:
            raise PermissionError(f"guarded:// needs token={TOKEN!r}, got {token!r} (pid {os.getpid()})")
        super().__init__(**kwargs)

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        if path.startswith("guarded://"):
            path = path[len("guarded://") :]
        return super()._strip_protocol(path)

    def unstrip_protocol(self, name: str) -> str:
        return "guarded://" + self._strip_protocol(name)


class RecordingMemoryFileSystem(MemoryFileSystem):
    """An in-memory file system (its own store) that records the options of every instance used."""

    protocol = "recmem"
    store: dict = {}
    pseudo_dirs = [""]
    seen: list = []

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        if path.startswith("recmem://"):
            path = path[len("recmem://") :]
        return super()._strip_protocol(path)

    def find(self, path, *args, **kwargs):
        self.seen.append(("list", dict(self.storage_options)))
        return super().find(path, *args, **kwargs)

    def _open(self, path, mode="rb", **kwargs):
        self.seen.append(("open", dict(self.storage_options)))
        return super()._open(path, mode=mode, **kwargs)


# Registered on import, so that a spawned worker (which imports this module to unpickle the reader)
# knows the protocols too.
fsspec.register_implementation("guarded", GuardedFileSystem, clobber=True)
fsspec.register_implementation("recmem", RecordingMemoryFileSystem, clobber=True)


class GuardedReader(JsonLineDataReader):
    """A reader class of this module: unpickling it in a spawned worker imports this module."""


SIZES = [7, 5, 9, 4]


@pytest.fixture
def guarded(tmp_path: Path):
    write_id_chunks(tmp_path / "data", SIZES)
    yield f"guarded://{tmp_path / 'data'}/"
    storage_fs.use_storage_options([f"guarded://{tmp_path / 'data'}/"], None)
    fsspec.AbstractFileSystem.clear_instance_cache()


def _loader(url, **options):
    return DataLoader(GuardedReader(batch_size=4), IdDataset(), IdCollator(), url, **options)


def test_options_field_is_validated_copied_and_hidden_from_repr():
    opts = {"key": "k", "secret": "hush", "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}
    o = LoaderOptions(storage_options=opts)
    opts["client_kwargs"]["endpoint_url"] = "changed"
    assert o.storage_options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:1"
    assert "hush" not in repr(o)
    for bad in (["key"], {1: "x"}, {"f": object()}):
        with pytest.raises(ConfigError, match="storage_options"):
            LoaderOptions(storage_options=bad)
    assert LoaderOptions().storage_options is None


def test_without_options_the_guarded_fs_refuses(guarded):
    with pytest.raises(PermissionError, match="needs token"):
        list_files(guarded)


def test_list_files_uses_and_registers_them(guarded):
    files = list_files(guarded, {"token": TOKEN})
    assert len(files) == len(SIZES) and all(f.startswith("guarded://") for f in files)
    # registered for the prefix: any later call under it gets them, without being told
    assert storage_fs.storage_options_for(files[0]) == {"token": TOKEN}
    assert storage_fs.storage_options_for("recmem://elsewhere/a.jsonl") == {}


@pytest.mark.parametrize(
    "options",
    [
        {"num_workers": 0},
        {"num_workers": 2, "worker_type": "thread"},
        {"num_workers": 2, "worker_type": "process", "start_method": "fork"},
        {"num_workers": 2, "worker_type": "process", "start_method": "spawn"},
    ],
    ids=["inline", "threads", "fork", "spawn"],
)
def test_reads_reach_every_worker(guarded, options):
    with _loader(guarded, storage_options={"token": TOKEN}, shuffle=True, **options) as loader:
        ids = ids_of(loader)
    assert Counter(ids) == Counter(range(sum(SIZES)))


def test_per_protocol_form(guarded):
    per = {"guarded": {"token": TOKEN}, "https": {"headers": {"x": "y"}}}
    with _loader(guarded, storage_options=per, num_workers=2, worker_type="process", start_method="spawn") as loader:
        assert sorted(ids_of(loader)) == list(range(sum(SIZES)))
    assert storage_fs.storage_options_for(guarded + "chunk000.jsonl") == {"token": TOKEN}


def test_listing_and_reading_get_the_options():
    RecordingMemoryFileSystem.store.clear()
    RecordingMemoryFileSystem.seen.clear()
    fs = fsspec.filesystem("recmem", region="x")
    for c, n in enumerate([3, 4]):
        rows = "".join(json.dumps({"id": c * 10 + i, "label": 0}) + "\n" for i in range(n))
        fs.pipe(f"/ds/part{c}.jsonl", rows.encode())
    RecordingMemoryFileSystem.seen.clear()
    opts = {"region": "eu-test-1", "anon": False}
    with DataLoader(
        JsonLineDataReader(batch_size=2), IdDataset(), IdCollator(), "recmem://ds/",
        storage_options=opts, num_workers=2,
    ) as loader:
        ids = ids_of(loader)
    assert sorted(ids) == [0, 1, 2, 10, 11, 12, 13]
    kinds = {k for k, _ in RecordingMemoryFileSystem.seen}
    assert kinds == {"list", "open"}
    assert all(o == opts for _, o in RecordingMemoryFileSystem.seen), RecordingMemoryFileSystem.seen
    storage_fs.use_storage_options(["recmem://ds/"], None)


@pytest.fixture
def mem_data():
    fs = fsspec.filesystem("memory")
    fs.pipe("/so-test/a.jsonl", b'{"id": 0, "label": 0}\n{"id": 1, "label": 1}\n')
    yield "memory://so-test/"
    fs.rm("/so-test", recursive=True)


@pytest.mark.parametrize("extra", [{"num_workers": 2}, {"num_workers": "auto"}, {"num_workers": 1, "start_method": "fork"}])
def test_memory_with_process_workers_is_a_config_error(mem_data, extra):
    with pytest.raises(ConfigError, match=r"memory://.*worker processes cannot read it.*worker_type='thread'"):
        DataLoader(JsonLineDataReader(batch_size=2), IdDataset(), IdCollator(), mem_data, worker_type="process", **extra)


@pytest.mark.parametrize("extra", [{"num_workers": 2, "worker_type": "thread"}, {"num_workers": 0, "worker_type": "process"}])
def test_memory_with_threads_or_inline_works(mem_data, extra):
    with DataLoader(JsonLineDataReader(batch_size=2), IdDataset(), IdCollator(), mem_data, **extra) as loader:
        assert sorted(ids_of(loader)) == [0, 1]
