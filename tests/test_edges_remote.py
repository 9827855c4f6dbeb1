"""Remote reads at the edges: bodies shorter than their Content-Length, chunks that differ from index.json."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import IdCollator, IdDataset, ids_of, write_id_chunks

from pyloader_core import DataLoader, JsonLineDataReader, NumpyDataReader, storage
from pyloader_core import index as index_module
from pyloader_core.errors import PyLoaderError
from pyloader_core.index import ChecksumError, verify_checksums
from pyloader_core.storage.checks import CheckedRaw
from pyloader_core.tools.indexing import build_index, write_index

SIZES = [1000, 7]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; a GET of a path in ``server.short`` sends only half the body it announces."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.gets[self.path] += 1  # type: ignore[attr-defined]
        if self.path not in self.server.short:  # type: ignore[attr-defined]
            return super().do_GET()
        body = Path(self.directory, self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True  # the connection drops mid-body


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 for ``tmp_path / "www"``; yields ``(base_url, dir, server)``."""
    from collections import Counter

    www = write_id_chunks(tmp_path / "www", SIZES)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    srv.gets = Counter()  # type: ignore[attr-defined]
    srv.short = set()  # type: ignore[attr-defined]
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", www, srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


@pytest.fixture(autouse=True)
def clean_state(monkeypatch, tmp_path):
    """No cache, verification on, and no index.json remembered from another test."""
    monkeypatch.delenv(storage.CACHE_DIR_ENV, raising=False)
    monkeypatch.delenv(storage.CACHE_BYTES_ENV, raising=False)
    monkeypatch.delenv(storage.VERIFY_ENV, raising=False)
    index_module._LISTED.clear()
    yield
    storage.configure_cache(None)
    index_module._LISTED.clear()


def _cached(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) if directory.exists() else []


# ---------------------------------------------------------------------------- short bodies


def test_short_body_is_an_error_naming_the_url_when_streaming(server):
    base, _, srv = server
    url = f"{base}/chunk000.jsonl"
    srv.short.add("/chunk000.jsonl")
    for read in (JsonLineDataReader().read_file, JsonLineDataReader().count_samples, storage.read_bytes):
        with pytest.raises(storage.IncompleteReadError, match="body truncated") as info:
            read(url)
        assert url in str(info.value) and info.value.path == url
        assert "Content-Length" in str(info.value)
    srv.short.clear()
    columns, n = JsonLineDataReader().read_file(url)
    assert n == 1000 and columns["id"] == list(range(1000))  # the full body reads as before


def test_short_body_through_aiohttp_is_the_librarys_incomplete_read_error(server):
    """fsspec's HTTP client (aiohttp) raises ClientPayloadError on a cut body: it becomes IncompleteReadError."""
    aiohttp = pytest.importorskip("aiohttp")
    base, _, srv = server
    url = f"{base}/chunk000.jsonl"
    srv.short.add("/chunk000.jsonl")
    with pytest.raises(storage.IncompleteReadError, match="body truncated") as info:
        storage.read_bytes(url, use_cache=False)
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)
    assert info.value.path == url and "Content-Length" in str(info.value)


def test_short_body_fails_the_loader_or_is_counted_under_skip(server):
    base, _, srv = server
    urls = [f"{base}/chunk000.jsonl", f"{base}/chunk001.jsonl"]
    loader = DataLoader(JsonLineDataReader(batch_size=50), IdDataset(), IdCollator(), urls, num_workers=2)
    skipping = DataLoader(
        JsonLineDataReader(batch_size=50), IdDataset(), IdCollator(), urls, num_workers=2, on_error="skip"
    )
    assert len(loader) == len(skipping) == -(-sum(SIZES) // 50)  # counted while the bodies were whole
    srv.short.add("/chunk000.jsonl")
    with pytest.raises(storage.IncompleteReadError, match="chunk000.jsonl"):
        list(loader)
    assert sorted(ids_of(skipping)) == list(range(1000, 1007))  # none of the half-read chunk's records
    stats = skipping.stats()
    # The chunk is reported skipped. How many records that counts is the runtime's call: the plan of
    # a list of URLs carries no per-file count here, and then a failed chunk counts as one.
    assert stats["skipped_count"] >= 1
    assert [s["path"] for s in stats["skipped"]] == [urls[0]]
    assert "body truncated" in stats["skipped"][0]["reason"]


def test_short_body_never_enters_the_cache(server, tmp_path):
    base, _, srv = server
    url = f"{base}/chunk000.jsonl"
    cache = tmp_path / "cache"
    storage.configure_cache(cache, "10MB")
    srv.short.add("/chunk000.jsonl")
    with pytest.raises(storage.IncompleteReadError, match="chunk000.jsonl"):
        JsonLineDataReader().read_file(url)
    assert _cached(cache) == [] and not any(cache.iterdir())  # no copy, no temporary file
    srv.short.clear()
    assert JsonLineDataReader().read_file(url)[1] == 1000
    assert len(_cached(cache)) == 1


def test_short_body_of_a_random_access_read(server):
    base, www, srv = server
    np.save(www / "a.npy", np.arange(10_000))
    srv.short.add("/a.npy")
    with pytest.raises(storage.IncompleteReadError, match="a.npy"):
        NumpyDataReader().read_file(f"{base}/a.npy")


def test_incomplete_read_error_is_an_oserror_that_pickles():
    err = storage.IncompleteReadError("http://h/x: body truncated: 1 of 2 bytes (Content-Length)", "http://h/x")
    assert isinstance(err, OSError) and isinstance(err, PyLoaderError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is storage.IncompleteReadError and back.path == "http://h/x" and str(back) == str(err)


# ---------------------------------------------------------------------------- index.json checksums


def _index(www: Path) -> None:
    files = [str(p) for p in sorted(www.glob("chunk*.jsonl"))]
    write_index(str(www), build_index(files, None, str(www)))


def _corrupt_same_size(path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = data.index(b'"label": 0')
    data[i + 9 : i + 10] = b"1"  # one digit: same size, other bytes
    path.write_bytes(bytes(data))


def test_chunk_that_differs_from_index_json_is_refused_while_read(server, tmp_path):
    base, www, srv = server
    _index(www)
    url = f"{base}/chunk000.jsonl"
    assert JsonLineDataReader().read_file(url)[1] == 1000  # matches: read as before
    _corrupt_same_size(www / "chunk000.jsonl")
    with pytest.raises(ChecksumError, match="SHA-256 differs") as info:
        JsonLineDataReader().read_file(url)
    assert info.value.path == url and url in str(info.value)
    with pytest.raises(ChecksumError):
        JsonLineDataReader().count_samples(url)
    cache = tmp_path / "cache"
    storage.configure_cache(cache, "10MB")
    with pytest.raises(ChecksumError):
        JsonLineDataReader().read_file(url)
    assert _cached(cache) == []  # the bad copy was not kept
    assert verify_checksums([url]) == [url]  # verify() still reports, it does not raise
    (www / "chunk001.jsonl").write_bytes((www / "chunk001.jsonl").read_bytes() + b"\n")  # another size
    with pytest.raises(ChecksumError, match="index.json lists"):
        JsonLineDataReader().read_file(f"{base}/chunk001.jsonl")


def test_rebuilt_index_is_picked_up_and_verification_can_be_turned_off(server, monkeypatch):
    base, www, _ = server
    _index(www)
    url = f"{base}/chunk000.jsonl"
    JsonLineDataReader().read_file(url)  # the index is now remembered by this process
    _corrupt_same_size(www / "chunk000.jsonl")
    monkeypatch.setenv(storage.VERIFY_ENV, "0")
    assert JsonLineDataReader().read_file(url)[1] == 1000  # off: only lengths are checked
    monkeypatch.delenv(storage.VERIFY_ENV)
    with pytest.raises(ChecksumError):
        JsonLineDataReader().read_file(url)
    _index(www)  # rebuilt for the changed chunk
    assert JsonLineDataReader().read_file(url)[1] == 1000  # the remembered index is re-read on a mismatch


def test_memory_urls_are_checked_against_their_index(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/edges{os.getpid()}-{id(tmp_path)}"
    local = write_id_chunks(tmp_path / "src", [20, 5])
    try:
        for f in sorted(local.iterdir()):
            fs.pipe_file(f"{root}/d/{f.name}", f.read_bytes())
        url = f"memory://{root}/d"
        files = [f"{url}/chunk000.jsonl", f"{url}/chunk001.jsonl"]
        write_index(url, build_index(files, None, url))
        assert JsonLineDataReader().read_file(files[0])[1] == 20
        data = bytearray(fs.cat_file(f"{root}/d/chunk000.jsonl"))
        data[-3] = ord("1") if data[-3] != ord("1") else ord("0")
        fs.pipe_file(f"{root}/d/chunk000.jsonl", bytes(data))
        with pytest.raises(ChecksumError, match="chunk000.jsonl"):
            JsonLineDataReader().read_file(files[0])
        assert JsonLineDataReader().read_file(files[1])[1] == 5
        assert verify_checksums(files) == [files[0]]
        write_index(url, build_index(files, None, url))  # rebuilding reads the changed chunk: allowed
        assert JsonLineDataReader().read_file(files[0])[1] == 20
    finally:
        fs.rm(root, recursive=True)


def test_index_json_itself_and_unlisted_files_are_read_unchecked(server):
    base, www, _ = server
    (www / "extra.jsonl").write_text('{"id": 1, "input_text": "2", "label": 0}\n')
    _index(www)  # lists chunk000 and chunk001 only
    assert JsonLineDataReader().read_file(f"{base}/extra.jsonl")[1] == 1
    assert storage.read_bytes(f"{base}/index.json", use_cache=False).startswith(b"{")
    digest = hashlib.sha256((www / "chunk001.jsonl").read_bytes()).hexdigest()
    assert storage.file_sha256(f"{base}/chunk001.jsonl") == digest
    entry = index_module.listed_entry(f"{base}/chunk001.jsonl")
    assert entry is not None and entry.sha256 == digest
    assert index_module.listed_entry(f"{base}/extra.jsonl") is None
    with storage.unverified():
        assert storage.cached_path(f"{base}/chunk001.jsonl") is None


def test_checked_stream_reads_every_byte_once():
    """The check wraps the stream: the bytes come through unchanged, in one pass."""
    payload = os.urandom(3 << 20)

    class Body(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}
        reads = 0

        def readinto(self, b):
            Body.reads += 1
            return super().readinto(b)

    entry = index_module.ChunkEntry("x.bin", 1, len(payload), hashlib.sha256(payload).hexdigest(), "")
    stream = io.BufferedReader(CheckedRaw(Body(payload), "http://127.0.0.1:9/x.bin", entry), 1 << 20)
    assert stream.read() == payload
    assert Body.reads <= len(payload) // (1 << 20) + 2  # 1 MiB blocks, and the end
    bad = index_module.ChunkEntry("x.bin", 1, len(payload), "0" * 64, "")
    with pytest.raises(ChecksumError, match="http://127.0.0.1:9/x.bin"):
        io.BufferedReader(CheckedRaw(Body(payload), "http://127.0.0.1:9/x.bin", bad)).read()
