"""Tests of :mod:`pyloader_core.index`: building, writing, loading, count lookup, checksums."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import IdReader, write_id_chunks

from pyloader_core import (
    CsvDataReader,
    DataLoader,
    JsonLineDataReader,
    TextLineDataReader,
    list_files,
)
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.index import (
    INDEX_NAME,
    ChecksumError,
    Index,
    check_checksums,
    load_index,
    lookup_counts,
    relative_name,
    verify_checksums,
)
from pyloader_core.formats import detect_format, format_of_reader
from pyloader_core.tools.indexing import build_index, write_index


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("dir/part-0.JSONL.GZ", "jsonl"),
        ("a.ndjson.zst", "jsonl"),
        ("a.json", "jsonl"),
        ("a.csv.gz", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.txt.zstd", "txt"),
        ("a.npy", "numpy"),
        ("a.npz", "numpy"),
        ("s3://b/k/a.jsonl", "jsonl"),
        ("a.md", None),
        ("a.gz", None),
    ],
)
def test_detect_format(name, fmt):
    assert detect_format(name) == fmt


def test_format_of_reader():
    assert format_of_reader(JsonLineDataReader()) == "jsonl"
    assert format_of_reader(TextLineDataReader()) == "txt"
    assert format_of_reader(IdReader()) == "IdReader"


@pytest.fixture
def mixed(tmp_path):
    """One chunk of each format, with awkward content, in nested directories."""
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n   \n{"x": 3}\n')  # blank lines are not samples
    with open(d / "b.csv", "w", newline="") as f:
        csv.writer(f).writerows([["x", "t"], [1, "two\nlines"], [2, "y"]])
    (d / "sub" / "c.txt").write_text("one\n\nthree\n")  # blank lines are samples
    np.save(d / "sub" / "d.npy", np.zeros((4, 2)))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": list(range(5))}), d / "sub" / "e.parquet")
    except ImportError:
        pass
    return d


def test_build_write_load_roundtrip(mixed):
    files = list_files(mixed)
    data = build_index(files, None, str(mixed))
    path = write_index(str(mixed), data)
    assert path == str(mixed / INDEX_NAME)
    assert INDEX_NAME not in [os.path.basename(f) for f in list_files(mixed)]  # never listed as data
    index = load_index(str(mixed), strict=True)
    assert index is not None
    expected = {"a.jsonl": (3, "jsonl"), "b.csv": (2, "csv"), "sub/c.txt": (3, "txt"), "sub/d.npy": (4, "numpy")}
    if (mixed / "sub" / "e.parquet").exists():
        expected["sub/e.parquet"] = (5, "parquet")
    assert {n: (e.samples, e.format) for n, e in index.chunks.items()} == expected
    for name, entry in index.chunks.items():
        p = mixed / name
        assert entry.bytes == p.stat().st_size
        assert entry.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
        assert index.path_of(name) == str(p)
    assert index.total_samples == sum(s for s, _ in expected.values())
    raw = json.loads((mixed / INDEX_NAME).read_text())
    assert raw["pyloader_index"] == 1 and raw["total_samples"] == index.total_samples
    assert len((mixed / INDEX_NAME).read_text().splitlines()) == len(expected) + 8  # one chunk per line
    assert [n for n in os.listdir(mixed) if n.startswith(".")] == []  # the atomic write left no temp file


def test_build_with_a_reader_or_a_format(mixed):
    files = [str(mixed / "a.jsonl")]
    by_reader = build_index(files, JsonLineDataReader(), str(mixed))
    by_name = build_index(files, "jsonl", str(mixed))
    assert by_reader["chunks"] == by_name["chunks"]
    counted_by_user = build_index(files, IdReaderNoCount(), str(mixed))  # no count_samples: read in full
    assert counted_by_user["chunks"][0]["samples"] == 3
    assert counted_by_user["chunks"][0]["format"] == "IdReaderNoCount"


class IdReaderNoCount(JsonLineDataReader):
    def count_samples(self, path):
        return None


def test_build_errors(mixed, tmp_path):
    with pytest.raises(ConfigError, match="not under"):
        build_index([str(mixed / "a.jsonl")], None, str(mixed / "sub"))
    (mixed / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        build_index([str(mixed / "notes.md")], None, str(mixed))
    with pytest.raises(DataFormatError):
        write_index(str(mixed), {"chunks": "nope"})


def test_default_root_is_the_common_directory(mixed):
    data = build_index([str(mixed / "sub" / "c.txt"), str(mixed / "a.jsonl")])
    assert sorted(c["name"] for c in data["chunks"]) == ["a.jsonl", "sub/c.txt"]


def test_relative_name(tmp_path):
    assert relative_name(str(tmp_path / "a" / "b.jsonl"), str(tmp_path)) == "a/b.jsonl"
    assert relative_name(str(tmp_path / "b.jsonl"), str(tmp_path / "a")) is None
    assert relative_name(str(tmp_path), str(tmp_path)) is None
    assert relative_name("s3://b/x.jsonl", str(tmp_path)) is None


# ------------------------------------------------------------------------------ lookup_counts


def test_lookup_counts_matches_the_loader_counting(tmp_path):
    d = write_id_chunks(tmp_path / "data", [13, 7, 20])
    files = list_files(d)
    assert lookup_counts(files) is None  # no index yet
    write_index(str(d), build_index(files, None, str(d)))
    loader = DataLoader(JsonLineDataReader(), None, None, str(d))
    assert lookup_counts(files, loader.datareader) == loader.sample_counts() == [13, 7, 20]
    assert lookup_counts(files, IdReader()) == [13, 7, 20]  # a user's reader trusts the index


def test_lookup_counts_stale_entry_warns_and_gives_none(tmp_path, caplog):
    d = write_id_chunks(tmp_path / "data", [5, 5])
    files = list_files(d)
    write_index(str(d), build_index(files, None, str(d)))
    with open(files[1], "a") as f:
        f.write('{"id": 99, "input_text": "1", "label": 0}\n')
    with caplog.at_level(logging.WARNING, logger="pyloader_core.index"):
        assert lookup_counts(files) is None
    assert "stale" in caplog.text and "chunk001.jsonl" in caplog.text and "pyloader index" in caplog.text
    os.unlink(files[1])
    assert lookup_counts(files[:1]) == [5]


def test_lookup_counts_needs_every_file(tmp_path):
    d = write_id_chunks(tmp_path / "data", [5, 6])
    files = list_files(d)
    write_index(str(d), build_index(files[:1], None, str(d)))
    assert lookup_counts(files) is None
    assert lookup_counts(files[:1]) == [5]
    assert lookup_counts([]) is None


def test_lookup_counts_finds_the_index_in_a_parent_up_to_the_common_root(tmp_path):
    root = tmp_path / "data"
    write_id_chunks(root / "a", [3, 4])
    write_id_chunks(root / "b", [5])
    files = list_files(root)
    write_index(str(root), build_index(files, None, str(root)))
    assert lookup_counts(files) == [3, 4, 5]
    # only a/: the common root is a/, so the index in data/ is not searched
    assert lookup_counts(list_files(root / "a")) is None
    # a nearer index wins
    write_index(str(root / "b"), build_index(list_files(root / "b"), None, str(root / "b")))
    assert lookup_counts(files) == [3, 4, 5]


def test_lookup_counts_refuses_readers_that_count_differently(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("x\n\ny\n")
    (d / "b.csv").write_text("h\n1\n")
    files = list_files(d)
    write_index(str(d), build_index(files, None, str(d)))
    txt, csv_file = [f for f in files if f.endswith(".txt")], [f for f in files if f.endswith(".csv")]
    assert lookup_counts(txt, TextLineDataReader()) == [3]
    assert lookup_counts(txt, TextLineDataReader(skip_blank=True)) is None
    assert lookup_counts(txt, JsonLineDataReader()) is None
    assert lookup_counts(csv_file, CsvDataReader()) == [1]
    assert lookup_counts(csv_file, CsvDataReader(delimiter=";")) is None


def test_malformed_index_is_ignored_with_a_warning_or_raises_when_strict(tmp_path, caplog):
    d = write_id_chunks(tmp_path / "data", [2])
    (d / INDEX_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="pyloader_core.index"):
        assert load_index(str(d)) is None
        assert lookup_counts(list_files(d)) is None
    assert "not valid JSON" in caplog.text
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_index(str(d), strict=True)
    (d / INDEX_NAME).write_text(json.dumps({"pyloader_index": 99, "chunks": []}))
    with pytest.raises(DataFormatError, match="version"):
        load_index(str(d), strict=True)
    (d / INDEX_NAME).write_text(json.dumps({"pyloader_index": 1, "chunks": [{"name": "x"}]}))
    with pytest.raises(DataFormatError, match="malformed"):
        load_index(str(d), strict=True)
    assert load_index(str(tmp_path / "nowhere")) is None


def test_load_index_of_a_list_of_files(tmp_path):
    d = write_id_chunks(tmp_path / "data", [2, 3])
    files = list_files(d)
    write_index(str(d), build_index(files, None, str(d)))
    index = load_index(files)
    assert isinstance(index, Index) and index.total_samples == 5
    assert load_index([]) is None


# ------------------------------------------------------------------------------ checksums


def test_verify_checksums(tmp_path):
    d = write_id_chunks(tmp_path / "data", [4, 4, 4])
    files = list_files(d)
    write_index(str(d), build_index(files, None, str(d)))
    assert verify_checksums(files) == []
    check_checksums(files)
    data = bytearray(Path(files[0]).read_bytes())
    data[5] ^= 0x01  # same size, different content: only the checksum tells
    Path(files[0]).write_bytes(bytes(data))
    with open(files[2], "a") as f:
        f.write("\n")
    (d / "new.jsonl").write_text('{"id": 1}\n')
    all_files = list_files(d)
    assert verify_checksums(all_files) == [files[0], files[2], str(d / "new.jsonl")]
    with pytest.raises(ChecksumError, match="3 of 4"):
        check_checksums(all_files)
    assert lookup_counts(files[:1]) == [4]  # the size check alone does not see the flipped byte
    assert verify_checksums([]) == []


def test_index_written_with_the_old_text_format_name_still_loads(tmp_path):
    """Older index.json files name the text format "text": it is an alias of "txt", and counts are used."""
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    size = (tmp_path / "a.txt").stat().st_size
    chunk = {"name": "a.txt", "samples": 3, "bytes": size, "sha256": "", "format": "text"}
    (tmp_path / INDEX_NAME).write_text(json.dumps({"pyloader_index": 1, "chunks": [chunk]}))
    index = load_index(str(tmp_path), strict=True)
    assert index is not None and index.chunks["a.txt"].format == "txt"
    assert lookup_counts([str(tmp_path / "a.txt")], TextLineDataReader()) == [3]
