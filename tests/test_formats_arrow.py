"""The Arrow IPC reader: the file and the stream forms, a ``save_to_disk``-style directory, counts, loader, inspect."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from pyloader_core import DataLoader
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import FORMATS, detect_format, get_reader
from pyloader_core.tools.cli import main

pa = pytest.importorskip("pyarrow", reason="the Arrow reader needs pyarrow")
import pyarrow.ipc as ipc  # noqa: E402

N_FILES, PER_FILE = 3, 25


def _table(lo: int, hi: int):
    ids = np.arange(lo, hi)
    return pa.table(
        {
            "id": ids,
            "x": pa.array([None if i % 7 == 3 else i / 2 for i in ids], pa.float64()),
            "flag": ids % 2 == 0,
            "text": [f"t{i}" for i in ids],
            "tokens": [[int(i)] * (int(i) % 3) for i in ids],
            "maybe": pa.array([None if i % 5 == 0 else int(i) for i in ids], pa.int64()),
        }
    )


def _write(path, table, form: str, chunk: int = 10):
    writer = ipc.new_file if form == "file" else ipc.new_stream
    with writer(str(path), table.schema) as w:
        w.write_table(table, max_chunksize=chunk)


def _save_to_disk_like(root, per_shard: int, shards: int):
    """The layout ``datasets.Dataset.save_to_disk`` writes: stream-form shards, their JSON beside them."""
    root.mkdir()
    files = []
    for s in range(shards):
        table = _table(s * per_shard, (s + 1) * per_shard)
        meta = {"info": {"features": {"id": {"dtype": "int64", "_type": "Value"}}}}
        table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
        name = f"data-{s:05d}-of-{shards:05d}.arrow"
        with pa.OSFile(str(root / name), "wb") as sink, pa.RecordBatchStreamWriter(sink, table.schema) as w:
            w.write_table(table, max_chunksize=8)
        files.append({"filename": name})
    (root / "state.json").write_text(json.dumps({"_data_files": files, "_fingerprint": "x", "_split": None}))
    (root / "dataset_info.json").write_text(json.dumps({"features": {}}))
    return root


@pytest.mark.parametrize("form", ["file", "stream"])
def test_read_file_and_count(tmp_path, form):
    path = tmp_path / "a.arrow"
    _write(path, _table(0, PER_FILE), form)
    reader = get_reader("arrow")
    cols, n = reader.read_file(str(path))
    assert n == PER_FILE == reader.count_samples(str(path))
    assert cols["id"].dtype == np.int64 and cols["id"].tolist() == list(range(PER_FILE))
    assert np.isnan(cols["x"][3]) and cols["x"][4] == 2.0
    assert cols["flag"].dtype == bool and cols["flag"][:2].tolist() == [True, False]
    assert cols["text"][:2] == ["t0", "t1"] and cols["tokens"][:3] == [[], [1], [2, 2]]
    assert cols["maybe"][:2] == [None, 1]  # an int column with nulls: a list with None
    cols, _ = get_reader("arrow", columns=["text", "id"]).read_file(str(path))
    assert list(cols) == ["text", "id"]
    with pytest.raises(DataFormatError, match=r"a\.arrow: column\(s\) \['nope'\] not in the file"):
        get_reader("arrow", columns=["nope"]).read_file(str(path))


def test_gzip_and_empty(tmp_path):
    plain = tmp_path / "a.arrow"
    _write(plain, _table(0, 9), "file")
    gz = tmp_path / "a.arrow.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert detect_format(str(gz)) == "arrow"
    reader = get_reader("arrow")
    assert reader.read_file(str(gz))[1] == 9 == reader.count_samples(str(gz))
    empty = tmp_path / "e.arrow"
    _write(empty, _table(0, 0), "stream")
    cols, n = reader.read_file(str(empty))
    assert n == 0 == reader.count_samples(str(empty)) and len(cols["id"]) == 0


def test_not_arrow(tmp_path):
    for name, data in [("junk.arrow", b"not arrow at all" * 8), ("empty.arrow", b""), ("cut.arrow", None)]:
        path = tmp_path / name
        if data is None:
            _write(path, _table(0, 30), "file")
            data = path.read_bytes()[:-40]
        path.write_bytes(data)
        with pytest.raises(DataFormatError, match=name.replace(".", r"\.")):
            get_reader("arrow").read_file(str(path))


def test_save_to_disk_directory(tmp_path):
    root = _save_to_disk_like(tmp_path / "ds", per_shard=20, shards=3)
    loader = DataLoader("arrow", None, None, str(root / "*.arrow"), num_epoch=1, batch_size=6)
    ids = [int(i) for b in loader for i in b["id"]]
    assert sorted(ids) == list(range(60))
    first = root / "data-00000-of-00003.arrow"
    assert first.read_bytes()[:6] != b"ARROW1"  # really the stream form
    assert get_reader("arrow").count_samples(str(first)) == 20


WORKERS = [dict(num_workers=2), dict(num_workers=2, worker_type="process")]


@pytest.mark.parametrize("mode", WORKERS, ids=["threads", "processes"])
def test_loader_yields_every_sample_once(tmp_path, mode):
    root = tmp_path / "d"
    root.mkdir()
    for f in range(N_FILES):
        _write(root / f"c{f}.arrow", _table(f * PER_FILE, (f + 1) * PER_FILE), "file" if f % 2 else "stream")
    reader = get_reader("arrow", batch_size=8)
    loader = DataLoader(reader, None, None, str(root), num_epoch=1, shuffle=True, **mode)
    ids = [int(i) for batch in loader for i in batch["id"]]
    assert sorted(ids) == list(range(N_FILES * PER_FILE))
    assert len(loader) == -(-N_FILES * PER_FILE // 8)


def test_inspect_first_record(tmp_path, capsys):
    root = tmp_path / "d"
    root.mkdir()
    for f in range(N_FILES):
        _write(root / f"c{f}.arrow", _table(f * PER_FILE, (f + 1) * PER_FILE), "stream")
    assert main(["inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["formats"] == {"arrow": N_FILES} and report["samples"] == N_FILES * PER_FILE
    assert report["schema"]["id"] == "int64" and report["first_record"]["text"] == "t0"
    assert FORMATS["arrow"].first_record(str(root / "c1.arrow"))[1]["id"] == PER_FILE


def test_split_is_not_offered():
    # split's Arrow path writes Parquet chunks from a Parquet schema: arrow inputs are not split (yet)
    assert FORMATS["arrow"].split_source is None
