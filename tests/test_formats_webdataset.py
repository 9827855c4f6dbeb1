"""The WebDataset reader: tar shards grouped by key, decoding, bad samples, counts, loader, inspect, split."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import numpy as np
import pytest

from pyloader_core import DataLoader
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import FORMATS, detect_format, get_reader
from pyloader_core.formats.webdataset import split_member_name
from pyloader_core.tools.cli import main
from pyloader_core.tools.split import split

N_FILES, PER_FILE = 3, 12


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _npy(i: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.full(3, i, dtype=np.int32))
    return buf.getvalue()


def _sample_members(i: int) -> list[tuple[str, bytes]]:
    key = f"shard/{i:06d}"
    return [
        (f"{key}.jpg", bytes([i % 256]) * 49 + b"\xff"),
        (f"{key}.cls", f"{i}\n".encode()),
        (f"{key}.txt", f"caption {i}".encode()),
        (f"{key}.json", json.dumps({"i": i}).encode()),
        (f"{key}.seg.PNG", b"png%d" % i),
        (f"{key}.npy", _npy(i)),
    ]


def _shard(path, ids, mode="w", extra=()) -> str:
    with tarfile.open(path, mode) as tar:
        _add(tar, "README", b"no extension: skipped")
        for i in ids:
            for name, data in _sample_members(i):
                _add(tar, name, data)
        for name, data in extra:
            _add(tar, name, data)
    return str(path)


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "shards"
    root.mkdir()
    for f in range(N_FILES):
        _shard(root / f"train-{f:06d}.tar", range(f * PER_FILE, (f + 1) * PER_FILE))
    return root


def test_member_names():
    assert split_member_name("shard/000123.seg.PNG") == ("shard/000123", "seg.png")
    assert split_member_name("a.b/c.d") == ("a.b/c", "d")
    assert split_member_name("README") is None and split_member_name("dir/.hidden") is None
    assert split_member_name("__meta__.json") is None


def test_read_file_bytes_and_count(shards):
    path = str(shards / "train-000001.tar")
    reader = get_reader("webdataset")
    cols, n = reader.read_file(path)
    assert n == PER_FILE == reader.count_samples(path)
    assert list(cols) == ["__key__", "jpg", "cls", "txt", "json", "seg.png", "npy"]
    assert cols["__key__"][0] == f"shard/{PER_FILE:06d}" and cols["cls"][0] == f"{PER_FILE}\n".encode()
    assert all(isinstance(v, bytes) for c in ("jpg", "txt", "json", "npy") for v in cols[c])


def test_decode(shards):
    cols, n = get_reader("wds", decode=True, columns=["cls", "txt", "json", "npy", "jpg"]).read_file(
        str(shards / "train-000000.tar")
    )
    assert list(cols) == ["__key__", "cls", "txt", "json", "npy", "jpg"]
    assert cols["cls"] == list(range(PER_FILE)) and cols["txt"][1] == "caption 1"
    assert cols["json"][2] == {"i": 2} and cols["npy"][3].tolist() == [3, 3, 3]
    assert cols["jpg"][0] == b"\0" * 49 + b"\xff"  # unknown extensions stay bytes


def test_gzip_shard(tmp_path):
    path = _shard(tmp_path / "s.tar.gz", range(5), mode="w:gz")
    assert detect_format(path) == "webdataset"
    reader = get_reader("webdataset")
    assert reader.read_file(path)[1] == 5 == reader.count_samples(path)


def test_missing_column_names_the_key(tmp_path):
    path = _shard(tmp_path / "m.tar", range(2), extra=[("shard/000009.jpg", b"x")])
    with pytest.raises(DataFormatError, match=r"m\.tar, record 3: sample 'shard/000009': missing column\(s\) \['cls'"):
        get_reader("webdataset").read_file(path)
    loader = DataLoader("webdataset", None, None, path, num_epoch=1, on_error="skip")
    assert [k for b in loader for k in b["__key__"]] == ["shard/000000", "shard/000001"]
    cols, n = get_reader("webdataset", columns=["jpg"]).read_file(path)  # only jpg asked for: all three fit
    assert n == 3


def test_split_keys_and_bad_decode(tmp_path):
    path = _shard(tmp_path / "k.tar", range(2), extra=_sample_members(0)[:1])
    with pytest.raises(DataFormatError, match="'shard/000000': its members are not consecutive"):
        get_reader("webdataset", columns=["jpg"]).read_file(path)
    bad = _shard(tmp_path / "b.tar", [], extra=[("k1.cls", b"seven")])
    with pytest.raises(DataFormatError, match=r"sample 'k1': column 'cls' does not decode"):
        get_reader("webdataset", decode=True).read_file(bad)


def test_not_a_tar_and_truncated(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x01" * 2000)
    with pytest.raises(DataFormatError, match=r"junk\.tar"):
        get_reader("webdataset").read_file(str(junk))
    whole = (tmp_path / "w.tar")
    _shard(whole, range(3))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:1700])
    with pytest.raises(DataFormatError, match=r"cut\.tar: (corrupt or )?truncated tar"):
        get_reader("webdataset").read_file(str(cut))


WORKERS = [dict(num_workers=2), dict(num_workers=2, worker_type="process")]


@pytest.mark.parametrize("mode", WORKERS, ids=["threads", "processes"])
def test_loader_yields_every_sample_once(shards, mode):
    reader = get_reader("webdataset", batch_size=5, decode=True)
    loader = DataLoader(reader, None, None, str(shards), num_epoch=1, shuffle=True, **mode)
    seen = []
    for batch in loader:
        for key, cls, jpg in zip(batch["__key__"], batch["cls"], batch["jpg"], strict=True):
            # the default collator makes numpy bytes arrays (which drop trailing NULs): the payloads end in 0xff
            assert key == f"shard/{cls:06d}" and jpg == bytes([cls % 256]) * 49 + b"\xff"
            seen.append(int(cls))
    assert sorted(seen) == list(range(N_FILES * PER_FILE))
    assert len(loader) == -(-N_FILES * PER_FILE // 5)


def test_inspect_first_record(shards, capsys):
    assert main(["inspect", str(shards), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["formats"] == {"webdataset": N_FILES} and report["samples"] == N_FILES * PER_FILE
    assert report["schema"]["__key__"] == "str" and report["schema"]["jpg"] == "bytes"
    assert report["first_record"]["__key__"] == "shard/000000"
    assert FORMATS["webdataset"].first_record(str(shards / "train-000002.tar"))[1]["cls"] == b"24\n"


@pytest.mark.parametrize("opts", [{}, dict(shuffle=True, seed=5, compression="gzip")], ids=["plain", "shuffled-gzip"])
def test_split_round_trip(shards, tmp_path, opts):
    out = tmp_path / "out"
    result = split([str(shards)], str(out), samples_per_chunk=10, **opts)
    assert result.format == "webdataset" and result.samples == N_FILES * PER_FILE
    reader = get_reader("webdataset", decode=True)
    keys = []
    for chunk in result.chunks:
        path = str(out / chunk.name)
        assert chunk.name.endswith(".tar.gz" if opts else ".tar")
        cols, n = reader.read_file(path)
        assert n == chunk.samples == reader.count_samples(path)
        assert all(k == f"shard/{c:06d}" for k, c in zip(cols["__key__"], cols["cls"], strict=True))
        keys.extend(cols["__key__"])
    assert sorted(keys) == [f"shard/{i:06d}" for i in range(N_FILES * PER_FILE)]
    assert (keys == sorted(keys)) == (not opts)
    if not opts:  # the chunks are tars that GNU tar lists without complaint
        proc = subprocess.run(["tar", "tf", str(out / result.chunks[0].name)], capture_output=True, text=True)
        if proc.returncode != 127:
            assert proc.returncode == 0 and not proc.stderr and len(proc.stdout.split()) == 10 * 6
