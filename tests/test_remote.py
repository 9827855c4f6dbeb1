"""Remote chunks: fsspec's memory file system, a real HTTP server on loopback, and the local cache."""

from __future__ import annotations

import functools
import gzip
import http.server
import importlib
import io
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import IdCollator, IdDataset, ids_of, write_id_chunks

from pyloader_core import (
    CsvDataReader,
    DataLoader,
    JsonLineDataReader,
    NoFilesError,
    NumpyDataReader,
    ParquetDataReader,
    TextLineDataReader,
    list_files,
    storage,
)
from pyloader_core.index import load_index, lookup_counts, verify_checksums
from pyloader_core.tools.indexing import build_index, write_index


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


HAVE_FSSPEC = _importable("fsspec")
HAVE_AIOHTTP = _importable("aiohttp")
needs_fsspec = pytest.mark.skipif(not HAVE_FSSPEC, reason="fsspec is missing (pip install 'pyloader-chunks[remote]')")
# HTTP goes through fsspec's HTTPFileSystem, which needs aiohttp.
needs_http = pytest.mark.skipif(
    not (HAVE_FSSPEC and HAVE_AIOHTTP), reason="HTTP needs fsspec and aiohttp (pip install 'pyloader-chunks[remote]')"
)

SIZES = [11, 7, 15]


def test_is_url():
    assert storage.is_url("s3://b/k") and storage.is_url("memory://x") and storage.is_url("file:///tmp/x")
    assert not storage.is_url("data/x.jsonl") and not storage.is_url(Path("x"))
    assert storage.is_http("HTTPS://example.org/x") and not storage.is_http("s3://b/k")


def test_local_paths_never_import_fsspec(tmp_path):
    d = write_id_chunks(tmp_path / "d", [3])
    code = (
        "import sys; from pyloader_core import list_files, JsonLineDataReader; from pyloader_core import storage\n"
        f"files = list_files({str(d)!r}); JsonLineDataReader().read_file(files[0]); storage.file_size(files[0])\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_missing_fsspec_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ImportError, match=r"pip install 'pyloader-chunks\[remote\]'"):
        list_files("memory://anything/")
    with pytest.raises(ImportError, match=r"pip install 'pyloader-chunks\[remote\]'"):
        JsonLineDataReader().read_file("s3://bucket/a.jsonl")


# ------------------------------------------------------------------------------ memory://


@pytest.fixture
def mem(tmp_path):
    """Chunks (and metadata that must be skipped) in fsspec's memory file system."""
    if not HAVE_FSSPEC:
        pytest.skip("fsspec is not installed")
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/t{os.getpid()}-{id(tmp_path)}"
    local = write_id_chunks(tmp_path / "src", SIZES)
    for f in sorted(local.iterdir()):
        fs.pipe_file(f"{root}/data/{f.name}", f.read_bytes())
    fs.pipe_file(f"{root}/data/sub/chunk999.jsonl", b"")  # nested, empty
    for meta in ("index.json", ".hidden", "_SUCCESS", "_tmp/x.jsonl", ".git/y.jsonl"):
        fs.pipe_file(f"{root}/data/{meta}", b"not data")
    yield fs, f"memory://{root}/data"
    fs.rm(root, recursive=True)


def test_memory_listing_skips_metadata(mem):
    _, url = mem
    files = list_files(url)
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names == ["chunk000.jsonl", "chunk001.jsonl", "chunk002.jsonl", "chunk999.jsonl"]
    assert all(f.startswith("memory://") for f in files)
    assert [f.rsplit("/", 1)[-1] for f in list_files(url + "/*.jsonl")] == names[:3]
    assert list_files(files[0]) == [files[0]]
    with pytest.raises(NoFilesError, match="does not exist"):
        list_files(url + "/missing.jsonl")
    with pytest.raises(NoFilesError, match="no data files"):
        list_files(url + "/*.csv")


def test_memory_loader_yields_every_sample_once(mem):
    _, url = mem
    for shuffle in (False, True):
        loader = DataLoader(
            JsonLineDataReader(batch_size=5), IdDataset(), IdCollator(), url, num_workers=2, shuffle=shuffle
        )
        ids = ids_of(loader)
        assert sorted(ids) == list(range(sum(SIZES)))
    assert len(DataLoader(JsonLineDataReader(batch_size=5), None, None, url)) == -(-sum(SIZES) // 5)


def _put(fs, path: str, data: bytes) -> None:
    fs.pipe_file(path, data)


def test_every_reader_reads_memory_urls(mem, tmp_path):
    fs, url = mem
    root = url[len("memory://") :]
    rows = [{"id": i, "t": f"x{i}"} for i in range(6)]
    jsonl = "".join(json.dumps(r) + "\n" for r in rows).encode()
    _put(fs, f"{root}/r/a.jsonl.gz", gzip.compress(jsonl))
    _put(fs, f"{root}/r/a.csv", b"id,t\n" + b"".join(f"{r['id']},{r['t']}\n".encode() for r in rows))
    _put(fs, f"{root}/r/a.txt", b"one\ntwo\n")
    buf = io.BytesIO()
    np.save(buf, np.arange(12).reshape(6, 2))
    _put(fs, f"{root}/r/a.npy", buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(6), y=np.ones(6))
    _put(fs, f"{root}/r/a.npz", buf.getvalue())
    r = f"{url}/r"
    assert JsonLineDataReader().read_file(f"{r}/a.jsonl.gz")[0]["id"] == list(range(6))
    assert JsonLineDataReader().count_samples(f"{r}/a.jsonl.gz") == 6
    assert CsvDataReader(converters={"id": int}).read_file(f"{r}/a.csv")[0]["id"] == list(range(6))
    assert TextLineDataReader().read_file(f"{r}/a.txt") == ({"text": ["one", "two"]}, 2)
    cols, n = NumpyDataReader(key="v").read_file(f"{r}/a.npy")
    assert n == 6 and cols["v"][5].tolist() == [10, 11]
    assert NumpyDataReader().count_samples(f"{r}/a.npy") == 6
    cols, n = NumpyDataReader().read_file(f"{r}/a.npz")
    assert n == 6 and sorted(cols) == ["x", "y"]
    assert NumpyDataReader().count_samples(f"{r}/a.npz") == 6
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(6))}), buf)
    _put(fs, f"{root}/r/a.parquet", buf.getvalue())
    assert ParquetDataReader().read_file(f"{r}/a.parquet")[0]["id"].tolist() == list(range(6))
    assert ParquetDataReader().count_samples(f"{r}/a.parquet") == 6


def test_memory_index_build_lookup_verify(mem):
    fs, url = mem
    files = list_files(url)
    write_index(url, build_index(files, None, url))
    assert fs.exists(url[len("memory://") :] + "/index.json")
    assert lookup_counts(files) == [*SIZES, 0]
    index = load_index(url, strict=True)
    assert index is not None and index.total_samples == sum(SIZES)
    assert verify_checksums(files) == []
    fs.pipe_file(files[1][len("memory://") :], b'{"id": 1, "input_text": "2", "label": 0}\n')
    assert lookup_counts(files) is None  # stale: the size changed
    assert verify_checksums(files) == [files[1]]
    assert storage.file_size(files[0]) == fs.size(files[0][len("memory://") :])
    assert storage.exists(files[0]) and not storage.exists(url + "/nope")


def test_file_url_goes_through_fsspec(tmp_path):
    if not HAVE_FSSPEC:
        pytest.skip("fsspec is not installed")
    d = write_id_chunks(tmp_path / "d", [4, 5])
    files = list_files(f"file://{d}")
    assert [f.rsplit("/", 1)[-1] for f in files] == ["chunk000.jsonl", "chunk001.jsonl"]
    assert ids_of(DataLoader(JsonLineDataReader(batch_size=3), IdDataset(), IdCollator(), files)) == list(range(9))


# ------------------------------------------------------------------------------ HTTP


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.gets[self.path] += 1  # type: ignore[attr-defined]
        super().do_GET()


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields ``(base_url, dir, server)``."""
    www = tmp_path / "www"
    write_id_chunks(www, SIZES)
    (www / "index.html.bak").write_text("x")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    server.gets = Counter()  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", www, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _urls(base: str) -> list[str]:
    return [f"{base}/chunk{i:03d}.jsonl" for i in range(len(SIZES))]


@needs_http
def test_http_loader_yields_every_sample_once(http_root):
    base, _, _ = http_root
    urls = _urls(base)
    assert list_files(urls) == urls
    loader = DataLoader(JsonLineDataReader(batch_size=4), IdDataset(), IdCollator(), urls, num_workers=2, shuffle=True)
    assert sorted(ids_of(loader)) == list(range(sum(SIZES)))
    assert storage.file_size(urls[0]) == (http_root[1] / "chunk000.jsonl").stat().st_size


@needs_http
def test_http_loader_with_process_workers(http_root):
    base, _, _ = http_root
    loader = DataLoader(
        JsonLineDataReader(batch_size=4), IdDataset(), IdCollator(), _urls(base), num_workers=2, worker_type="process"
    )
    assert ids_of(loader) == list(range(sum(SIZES)))


@needs_http
def test_http_directory_listing_and_missing_urls(http_root):
    base, www, _ = http_root
    (www / "index.json").write_text("{}")
    (www / ".hidden.jsonl").write_text("{}")
    (www / "sub").mkdir()
    assert list_files(base + "/") == [u for u in _urls(base)] + [f"{base}/index.html.bak"]
    with pytest.raises(NoFilesError, match="does not exist"):
        list_files(base + "/missing.jsonl")
    with pytest.raises(FileNotFoundError):
        JsonLineDataReader().read_file(base + "/missing.jsonl")
    assert not storage.exists(base + "/missing.jsonl") and storage.exists(_urls(base)[0])


@needs_http
def test_http_compressed_parquet_numpy_and_index(http_root):
    base, www, _ = http_root
    (www / "z.jsonl.gz").write_bytes(gzip.compress((www / "chunk000.jsonl").read_bytes()))
    np.save(www / "a.npy", np.arange(10))
    assert JsonLineDataReader().count_samples(base + "/z.jsonl.gz") == SIZES[0]
    cols, n = NumpyDataReader().read_file(base + "/a.npy")
    assert n == 10 and cols["data"].tolist() == list(range(10))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": [1, 2, 3]}), www / "a.parquet")
        assert ParquetDataReader().read_file(base + "/a.parquet")[0]["id"].tolist() == [1, 2, 3]
    except ImportError:
        pass
    files = [str(p) for p in sorted(www.glob("chunk*.jsonl"))]
    write_index(str(www), build_index(files, None, str(www)))
    assert lookup_counts(_urls(base)) == SIZES  # index.json served beside the chunks
    assert verify_checksums(_urls(base)) == []


# ------------------------------------------------------------------------------ the cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.CACHE_DIR_ENV, raising=False)
    monkeypatch.delenv(storage.CACHE_BYTES_ENV, raising=False)
    yield tmp_path / "cache"
    storage.configure_cache(None)


def _cached(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


@needs_http
def test_cache_serves_repeat_reads_and_evicts_least_recently_used(http_root, cache):
    base, www, server = http_root
    urls = _urls(base)
    sizes = [(www / u.rsplit("/", 1)[1]).stat().st_size for u in urls]
    limit = sizes[0] + sizes[2] + 10  # room for chunk000 and chunk002, not for all three
    storage.configure_cache(cache, limit)
    assert storage.cache_settings() == (str(cache), limit)
    reader = JsonLineDataReader()
    first = reader.read_file(urls[0])
    assert reader.read_file(urls[0]) == first
    assert server.gets["/chunk000.jsonl"] == 1  # the second read came from the cache
    reader.read_file(urls[1])
    assert len(_cached(cache)) == 2
    reader.read_file(urls[0])  # chunk000 is now the most recently used
    reader.read_file(urls[2])  # no room for three: chunk001 goes
    assert sum(p.stat().st_size for p in _cached(cache)) <= limit
    reader.read_file(urls[0])
    assert server.gets["/chunk000.jsonl"] == 1
    reader.read_file(urls[1])
    assert server.gets["/chunk001.jsonl"] == 2


@needs_http
def test_cache_skips_files_over_the_limit_and_notices_changes(http_root, cache):
    base, www, server = http_root
    url = _urls(base)[2]
    storage.configure_cache(cache, "100")  # smaller than any chunk: stream, never cache
    JsonLineDataReader().read_file(url)
    JsonLineDataReader().read_file(url)
    assert server.gets["/chunk002.jsonl"] == 2 and _cached(cache) == []
    storage.configure_cache(cache, "1MB")
    n = JsonLineDataReader().count_samples(url)
    with open(www / "chunk002.jsonl", "a") as f:
        f.write('{"id": 100, "input_text": "1", "label": 0}\n')
    assert JsonLineDataReader().count_samples(url) == n + 1  # a changed file is fetched again


@needs_http
def test_cache_is_used_by_process_workers_and_numpy_memory_maps(http_root, cache):
    base, www, _ = http_root
    storage.configure_cache(cache, "10MB")
    assert os.environ[storage.CACHE_DIR_ENV] == str(cache)  # inherited by spawned workers
    loader = DataLoader(
        JsonLineDataReader(batch_size=4), IdDataset(), IdCollator(), _urls(base), num_workers=1, worker_type="process"
    )
    assert ids_of(loader) == list(range(sum(SIZES)))
    assert len(_cached(cache)) == len(SIZES)
    np.save(www / "m.npy", np.arange(8))
    cols, _ = NumpyDataReader(mmap=True).read_file(base + "/m.npy")
    assert isinstance(cols["data"], np.memmap)  # the cached copy is mapped, on request
    cols, _ = NumpyDataReader().read_file(base + "/m.npy")
    assert not isinstance(cols["data"], np.memmap) and cols["data"].tolist() == list(range(8))


def test_configure_cache_validates_and_turns_off(cache, monkeypatch):
    storage.configure_cache(cache)
    assert storage.cache_settings() == (str(cache), storage.DEFAULT_CACHE_BYTES)
    storage.configure_cache(None)
    assert storage.cache_settings() is None
    with pytest.raises(ValueError, match="bad size"):
        storage.configure_cache(cache, "lots")
    monkeypatch.setenv(storage.CACHE_DIR_ENV, str(cache))
    monkeypatch.setenv(storage.CACHE_BYTES_ENV, "2GB")
    assert storage.cache_settings() == (str(cache), 2 << 30)
    assert storage.cached_path("local/file.jsonl") is None


def test_write_bytes_and_join(tmp_path):
    storage.write_bytes(str(tmp_path / "a.json"), b"{}")
    assert (tmp_path / "a.json").read_bytes() == b"{}"
    assert storage.join("s3://b/data/", "sub/x.jsonl") == "s3://b/data/sub/x.jsonl"
    assert storage.join(str(tmp_path), "sub/x") == str(tmp_path / "sub" / "x")
    with pytest.raises(OSError, match="HTTP"):
        storage.write_bytes("http://127.0.0.1:1/x", b"")
