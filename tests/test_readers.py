"""Tests of the built-in readers in ``pyloader_core.formats`` and their registry."""

from __future__ import annotations

import gzip
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.reader import DataReader, check_columns
from pyloader_core.formats import (
    READERS,
    ArrowDataReader,
    CsvDataReader,
    JsonLineDataReader,
    NumpyDataReader,
    ParquetDataReader,
    TextLineDataReader,
    TFRecordDataReader,
    WebDatasetReader,
    get_reader,
)
from pyloader_core.formats import jsonl as jsonl_module
from pyloader_core.skips import SkipLog, skip_policy

# ---------------------------------------------------------------------------- helpers


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def roundtrip(reader: DataReader, path: str) -> tuple[dict[str, Any], int]:
    """read_file + the checks every reader must pass on good input."""
    columns, n = reader.read_file(path)
    assert check_columns(columns, n, path, "read_file") == n
    assert reader.count_samples(path) == n
    return columns, n


def assert_format_error(reader: DataReader, path: str, record: int | None, *words: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        reader.read_file(path)
    err = info.value
    text = str(err)
    assert path in text
    assert err.path == path
    assert err.record == record
    if record is not None:
        assert f"record {record}" in text
    for word in words:
        assert word in text, (word, text)
    return err


def read_skipping(reader: DataReader, path: str) -> tuple[dict[str, Any], int, SkipLog]:
    with skip_policy(log := SkipLog()):
        columns, n = reader.read_file(path)
    check_columns(columns, n, path, "read_file")
    assert all(item.path == path for item in log.items)
    return columns, n, log


# ---------------------------------------------------------------------------- JSON Lines

JSONL_RECORDS = [
    {"text": "hello", "label": 1, "score": 0.5},
    {"text": "wörld ✓", "label": 0, "score": None},
    {"text": "", "label": 2, "score": [1, 2]},
]


def jsonl_text(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def test_jsonl_defaults_and_positional_api() -> None:
    default = JsonLineDataReader()
    assert (default.batch_size, default.shuffle, default.random_seed) == (4, False, 42)
    reader = JsonLineDataReader(8, True, 7)
    assert (reader.batch_size, reader.shuffle, reader.random_seed) == (8, True, 7)
    with pytest.raises(ConfigError):
        JsonLineDataReader(0)


def test_jsonl_roundtrip_with_blank_lines(tmp_path: Path) -> None:
    text = "\n" + jsonl_text(JSONL_RECORDS[:2]) + "   \n\t\n" + jsonl_text(JSONL_RECORDS[2:]) + "\n"
    path = write(tmp_path / "a.jsonl", text)
    columns, n = roundtrip(JsonLineDataReader(), path)
    assert n == 3
    assert list(columns) == ["text", "label", "score"]
    assert columns["text"] == ["hello", "wörld ✓", ""]
    assert columns["label"] == [1, 0, 2]
    assert columns["score"] == [0.5, None, [1, 2]]
    assert all(type(v) is list for v in columns.values())


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.sampled_from(['{"a": 1}', '  {"a": 2}', "", "   ", "\t", '{"a": 3}\r', '\t{"a": 4}']), max_size=12),
    bom=st.booleans(),
    final_newline=st.booleans(),
    block=st.integers(3, 9),  # the BOM lies in the first block (blocks are 1 MiB)
)
def test_jsonl_count_matches_read_at_any_block_boundary(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], bom: bool, final_newline: bool, block: int
) -> None:
    # count_samples finds newlines per block in numpy and falls back to an exact pass when a line
    # starts with whitespace: whatever the blocks, it must agree with what read_file delivers.
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    path = write(tmp_path_factory.mktemp("count") / "a.jsonl", (b"\xef\xbb\xbf" if bom else b"") + text.encode())
    from pyloader_core.storage.compression import iter_block_views, iter_blocks

    original = jsonl_module.iter_blocks, jsonl_module.iter_block_views
    jsonl_module.iter_blocks = lambda p: iter_blocks(p, block)
    jsonl_module.iter_block_views = lambda p: iter_block_views(p, block)
    try:
        counted = JsonLineDataReader().count_samples(path)
    finally:
        jsonl_module.iter_blocks, jsonl_module.iter_block_views = original
    assert counted == JsonLineDataReader().read_file(path)[1] == sum(1 for line in lines if line.strip())


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_block_views_are_the_file_read_into_one_kept_buffer(tmp_path: Path, suffix: str) -> None:
    import gzip

    from pyloader_core.storage.compression import iter_block_views

    data = b"".join(b'{"i": %d}\n' % i for i in range(500))
    path = tmp_path / f"a{suffix}"
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif suffix.endswith(".zst"):
        zstandard = pytest.importorskip("zstandard", reason="zstandard not installed")
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    with iter_block_views(str(path), 1000) as blocks:
        parts, bases = [], set()
        for block in blocks:
            parts.append(bytes(block))
            bases.add(id(block.obj))  # every view is of the same buffer
            with iter_block_views(str(path), 1000) as inner:  # a scan inside a scan: its own buffer
                assert id(next(inner).obj) not in bases
    assert b"".join(parts) == data and len(parts) > 1 and len(bases) == 1
    with iter_block_views(str(path), 1000) as again:
        assert id(next(again).obj) in bases  # kept for the next scan in this thread


def test_jsonl_crlf_bom_and_no_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}')
    columns, n = roundtrip(JsonLineDataReader(), path)
    assert (columns, n) == ({"a": [1, 2]}, 2)


def test_jsonl_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", "\n  \n")
    assert roundtrip(JsonLineDataReader(), path) == ({}, 0)
    assert roundtrip(JsonLineDataReader(fields=["a", "b"]), path) == ({"a": [], "b": []}, 0)


def test_jsonl_fields_restrict_and_order(tmp_path: Path) -> None:
    records = [{"a": 1, "b": 2, "c": 3}, {"c": 6, "b": 5, "a": 4, "extra": True}]
    path = write(tmp_path / "a.jsonl", jsonl_text(records))
    columns, n = roundtrip(JsonLineDataReader(fields=["c", "a"]), path)
    assert n == 2
    assert list(columns) == ["c", "a"]
    assert columns == {"c": [3, 6], "a": [1, 4]}


@pytest.mark.parametrize("fields", ["abc", ["a", "a"], [1]])
def test_jsonl_bad_fields_option(fields: Any) -> None:
    with pytest.raises(ConfigError):
        JsonLineDataReader(fields=fields)


def test_jsonl_rejects_non_ascii_compatible_encoding() -> None:
    with pytest.raises(ConfigError, match="utf-16"):
        JsonLineDataReader(encoding="utf-16")
    with pytest.raises(ConfigError):
        JsonLineDataReader(encoding="no-such-codec")


BAD_JSONL = {
    "invalid_json": (b'{"a": 1}\n{"a": \n', 2, "invalid JSON"),
    "not_object": (b'{"a": 1}\n\n[1, 2]\n', 3, "expected a JSON object"),
    "invalid_utf8": (b'{"a": 1}\n{"a": "\xff\xfe"}\n', 2, "utf-8"),
    "missing_key": (b'{"a": 1, "b": 2}\n{"a": 1, "b": 2}\n{"a": 3}\n', 3, "missing ['b']"),
    "extra_key": (b'{"a": 1}\n{"a": 1, "z": 0}\n', 2, "unexpected ['z']"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_jsonl_bad_line_raises_with_path_and_line(tmp_path: Path, case: str) -> None:
    data, line, word = BAD_JSONL[case]
    path = write(tmp_path / f"{case}.jsonl", data)
    assert_format_error(JsonLineDataReader(), path, line, word)


def test_jsonl_missing_field_with_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"a": 1, "b": 2}\n{"b": 3, "c": 1}\n')
    assert_format_error(JsonLineDataReader(fields=["a", "b"]), path, 2, "lacks field(s) ['a']")


def test_jsonl_skip_policy_keeps_good_records(tmp_path: Path) -> None:
    lines = [
        b"not json",  # 1: bad; the first *valid* record fixes the schema
        b'{"a": 1, "b": "x"}',  # 2
        b"",  # 3: blank
        b'{"a": 2}',  # 4: drift
        b'"scalar"',  # 5: not an object
        b'{"a": 3, "b": "\xff"}',  # 6: invalid utf-8
        b'{"b": "y", "a": 4}',  # 7: same keys, other order: fine
    ]
    path = write(tmp_path / "a.jsonl", b"\n".join(lines) + b"\n")
    columns, n, log = read_skipping(JsonLineDataReader(), path)
    assert (columns, n) == ({"a": [1, 4], "b": ["x", "y"]}, 2)
    assert [item.record for item in log.items] == [1, 4, 5, 6]
    assert all("DataFormatError" in item.reason for item in log.items)
    assert JsonLineDataReader().count_samples(path) == 6  # non-blank lines, bad ones included


def test_jsonl_json_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl_module, "_orjson", None)
    reader = JsonLineDataReader()
    assert not reader._bytes_direct
    path = write(tmp_path / "a.jsonl", jsonl_text(JSONL_RECORDS))
    columns, n = roundtrip(reader, path)
    assert n == 3 and columns["text"] == ["hello", "wörld ✓", ""]
    bad = write(tmp_path / "b.jsonl", b'{"a": 1}\n{"a": "\xff"}\n{"a": }\n')
    _, n, log = read_skipping(reader, bad)
    assert n == 1
    assert [(i.record, "utf-8" in i.reason, "invalid JSON" in i.reason) for i in log.items] == [
        (2, True, False),
        (3, False, True),
    ]


def test_jsonl_latin1_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"t": "café"}\n'.encode("latin-1"))
    assert roundtrip(JsonLineDataReader(encoding="latin-1"), path) == ({"t": ["café"]}, 1)
    with pytest.raises(DataFormatError, match="utf-8"):
        JsonLineDataReader().read_file(path)


def test_jsonl_gzip(tmp_path: Path) -> None:
    path = str(tmp_path / "a.jsonl.gz")
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(jsonl_text(JSONL_RECORDS) + "\n")
    columns, n = roundtrip(JsonLineDataReader(), path)
    assert n == 3 and columns["label"] == [1, 0, 2]


def test_jsonl_corrupt_gzip(tmp_path: Path) -> None:
    data = gzip.compress(jsonl_text(JSONL_RECORDS * 50).encode())
    truncated = write(tmp_path / "t.jsonl.gz", data[: len(data) // 2])
    err = assert_format_error(JsonLineDataReader(), truncated, None, "compressed")
    assert err.record is None
    not_gzip = write(tmp_path / "n.jsonl.gz", jsonl_text(JSONL_RECORDS))
    with pytest.raises(DataFormatError, match=r"n\.jsonl\.gz"):
        JsonLineDataReader().count_samples(not_gzip)


def test_jsonl_zstd(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    path = write(tmp_path / "a.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl_text(JSONL_RECORDS).encode()))
    columns, n = roundtrip(JsonLineDataReader(), path)
    assert n == 3 and columns["text"][1] == "wörld ✓"


def test_zstd_multiple_frames_and_truncation(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    comp = zstandard.ZstdCompressor()
    first = comp.compress("".join(f"line {i}\n" for i in range(5000)).encode())
    path = write(tmp_path / "a.txt.zst", first + comp.compress(b"extra\nlast"))
    columns, n = roundtrip(TextLineDataReader(), path)
    assert n == 5002 and columns["text"][-3:] == ["line 4999", "extra", "last"]
    truncated = write(tmp_path / "t.txt.zst", first[: len(first) // 2])
    assert_format_error(TextLineDataReader(), truncated, None, "truncated")


def test_zstd_missing_module_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` fail
    path = write(tmp_path / "a.jsonl.zst", b"irrelevant")
    with pytest.raises(ImportError, match="pip install zstandard") as info:
        JsonLineDataReader().read_file(path)
    assert path in str(info.value)
    with pytest.raises(ImportError, match="zstandard"):
        TextLineDataReader().count_samples(path)


# ---------------------------------------------------------------------------- CSV


def test_csv_roundtrip_quotes_blank_lines_converters(tmp_path: Path) -> None:
    text = 'id,text,score\r\n1,plain,0.5\r\n\r\n2,"with, comma",1.5\n3,"two\nlines ""quoted""",-2\n4,,0\n'
    path = write(tmp_path / "a.csv", text)
    columns, n = roundtrip(CsvDataReader(), path)
    assert n == 4
    assert list(columns) == ["id", "text", "score"]
    assert columns["id"].dtype == np.int64 and columns["id"].tolist() == [1, 2, 3, 4]  # inferred
    assert columns["score"].dtype == np.float64 and columns["score"].tolist() == [0.5, 1.5, -2.0, 0.0]
    assert columns["text"] == ["plain", "with, comma", 'two\nlines "quoted"', ""]
    strings, _ = roundtrip(CsvDataReader(infer_types=False), path)
    assert strings["id"] == ["1", "2", "3", "4"]
    converted, n2 = roundtrip(CsvDataReader(converters={"id": int, "score": float}), path)
    assert n2 == 4
    assert converted["id"] == [1, 2, 3, 4]
    assert converted["score"] == [0.5, 1.5, -2.0, 0.0]
    assert converted["text"] == columns["text"]


def test_csv_delimiter_and_gzip(tmp_path: Path) -> None:
    path = str(tmp_path / "a.tsv.gz")
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write("a\tb\nx,y\t1\n")
    columns, n = roundtrip(CsvDataReader(delimiter="\t"), path)
    assert n == 1 and columns["a"] == ["x,y"] and columns["b"].tolist() == [1]


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    reader = CsvDataReader()
    assert roundtrip(reader, write(tmp_path / "e.csv", "")) == ({}, 0)
    assert roundtrip(reader, write(tmp_path / "h.csv", "\na,b\n\n")) == ({"a": [], "b": []}, 0)


def test_csv_options_validated() -> None:
    with pytest.raises(ConfigError):
        CsvDataReader(delimiter=",,")
    with pytest.raises(ConfigError):
        CsvDataReader(converters={"a": 3})  # type: ignore[dict-item]


BAD_CSV: dict[str, tuple[bytes, dict[str, Any], int, str]] = {
    "too_few_fields": (b"a,b\n1,2\n3\n", {}, 3, "1 fields, the header has 2"),
    "too_many_fields": (b"a,b\n1,2,3\n", {}, 2, "3 fields"),
    "converter_failure": (b"a,b\n1,f\n2,y\n\n3,zz\n", {"a": int, "b": lambda s: int(s, 16)}, 3, "cannot convert 'y'"),
    "bad_quoting": (b'a,b\n1,"x"y\n', {}, 2, "malformed CSV"),
    "invalid_utf8": (b"a,b\n1,2\n3,\xff\n", {}, 3, "utf-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_csv_bad_row_raises_with_path_and_line(tmp_path: Path, case: str) -> None:
    data, converters, line, word = BAD_CSV[case]
    path = write(tmp_path / f"{case}.csv", data)
    assert_format_error(CsvDataReader(converters=converters), path, line, word)


def test_csv_file_level_errors(tmp_path: Path) -> None:
    dup = write(tmp_path / "d.csv", "a,a\n1,2\n")
    assert_format_error(CsvDataReader(), dup, None, "repeats")
    conv = write(tmp_path / "c.csv", "a,b\n1,2\n")
    assert_format_error(CsvDataReader(converters={"zz": int}), conv, None, "['zz']")


def test_csv_skip_policy_line_numbers_after_multiline_field(tmp_path: Path) -> None:
    text = (
        "n,t\n"  # 1
        '1,"a\nb\nc"\n'  # 2-4
        "2\n"  # 5: too few fields
        "x,ok\n"  # 6: converter failure
        "\n"  # 7: blank
        '3,"d\ne"\n'  # 8-9
        "4,too,many\n"  # 10
        "5,last\n"  # 11
    )
    path = write(tmp_path / "a.csv", text)
    reader = CsvDataReader(converters={"n": int})
    columns, n, log = read_skipping(reader, path)
    assert columns == {"n": [1, 3, 5], "t": ["a\nb\nc", "d\ne", "last"]}
    assert n == 3
    assert [item.record for item in log.items] == [5, 6, 10]
    assert reader.count_samples(path) == 6  # data rows, bad ones included


def test_csv_skip_invalid_utf8_inside_multiline_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", b'a\n"x\n\xff"\nok\n')
    columns, n, log = read_skipping(CsvDataReader(), path)
    assert (columns, n) == ({"a": ["ok"]}, 1)
    assert [(i.record, "line 3" in i.reason) for i in log.items] == [(2, True)]


# ---------------------------------------------------------------------------- Parquet

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - pyarrow is an optional dependency
    pa = pq = None

needs_pyarrow = pytest.mark.skipif(pa is None, reason="pyarrow is not installed")


def make_parquet(path: Path, n: int = 10, row_group_size: int = 4) -> str:
    table = pa.table(
        {
            "i": pa.array(range(n), type=pa.int32()),
            "f": pa.array([None if k == 3 else k / 2 for k in range(n)], type=pa.float64()),
            "b": pa.array([k % 2 == 0 for k in range(n)]),
            "s": pa.array([f"s{k}" for k in range(n)]),
            "l": pa.array([[k] * (k % 3) for k in range(n)]),
            "in": pa.array([None if k == n - 1 else k for k in range(n)], type=pa.int64()),
        }
    )
    pq.write_table(table, str(path), row_group_size=row_group_size)
    return str(path)


@needs_pyarrow
def test_parquet_roundtrip_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_parquet(tmp_path / "a.parquet", n=10, row_group_size=4)
    groups: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: Any, i: int, *args: Any, **kwargs: Any) -> Any:
        groups.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("whole-file read"))
    columns, n = roundtrip(ParquetDataReader(), path)
    assert groups == [0, 1, 2]
    assert n == 10
    assert list(columns) == ["i", "f", "b", "s", "l", "in"]
    assert isinstance(columns["i"], np.ndarray) and columns["i"].dtype == np.int32
    np.testing.assert_array_equal(columns["i"], np.arange(10))
    assert columns["f"].dtype == np.float64 and np.isnan(columns["f"][3])
    np.testing.assert_array_equal(np.delete(columns["f"], 3), np.delete(np.arange(10) / 2, 3))
    assert columns["b"].dtype == np.bool_ and columns["b"].tolist() == [k % 2 == 0 for k in range(10)]
    assert columns["s"] == [f"s{k}" for k in range(10)]
    assert columns["l"] == [[k] * (k % 3) for k in range(10)]
    assert columns["in"] == [*range(9), None]  # int column with a null: a list


@needs_pyarrow
def test_parquet_columns_option(tmp_path: Path) -> None:
    path = make_parquet(tmp_path / "a.parquet")
    columns, n = roundtrip(ParquetDataReader(columns=["s", "i"]), path)
    assert list(columns) == ["s", "i"] and n == 10
    assert_format_error(ParquetDataReader(columns=["i", "nope"]), path, None, "['nope']")
    with pytest.raises(ConfigError):
        ParquetDataReader(columns="i")


@needs_pyarrow
def test_parquet_empty_table(tmp_path: Path) -> None:
    path = str(tmp_path / "e.parquet")
    pq.write_table(pa.table({"x": pa.array([], type=pa.float32()), "s": pa.array([], type=pa.string())}), path)
    columns, n = roundtrip(ParquetDataReader(), path)
    assert n == 0 and columns["x"].dtype == np.float32 and columns["s"] == []


@needs_pyarrow
def test_parquet_corrupt_files(tmp_path: Path) -> None:
    good = Path(make_parquet(tmp_path / "g.parquet", n=200, row_group_size=50)).read_bytes()
    bad_footer = {
        "text.parquet": b"hello, not parquet",
        "truncated.parquet": good[: len(good) // 2],
        "footer.parquet": good[:-30] + b"\xff" * 22 + good[-8:],
        "length.parquet": good[:-8] + (10**6).to_bytes(4, "little") + b"PAR1",
    }
    reader = ParquetDataReader()
    for name, data in bad_footer.items():
        path = write(tmp_path / name, data)
        assert_format_error(reader, path, None, "not a valid Parquet file")
        with pytest.raises(DataFormatError, match=re.escape(name)):
            reader.count_samples(path)
    # a damaged data page: the metadata still reads, the data does not
    pages = write(tmp_path / "pages.parquet", good[:100] + b"\xff" * 200 + good[300:])
    assert reader.count_samples(pages) == 200
    assert_format_error(reader, pages, None, "corrupt Parquet data")


@needs_pyarrow
def test_parquet_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ParquetDataReader().read_file(str(tmp_path / "missing.parquet"))


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = ParquetDataReader()  # constructing never needs pyarrow
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'pyloader-chunks\[parquet\]'"):
        reader.read_file(str(tmp_path / "a.parquet"))


# ---------------------------------------------------------------------------- NumPy


def test_numpy_npy_read_or_memory_mapped(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.float32).reshape(6, 4)
    path = str(tmp_path / "a.npy")
    np.save(path, data)
    columns, n = roundtrip(NumpyDataReader(key="x", mmap=True), path)
    assert n == 6 and list(columns) == ["x"]
    assert isinstance(columns["x"], np.memmap)
    assert not columns["x"].flags.writeable
    np.testing.assert_array_equal(columns["x"], data)
    loaded, _ = roundtrip(NumpyDataReader(), path)  # the default: plain reads, no map
    assert not isinstance(loaded["data"], np.memmap)
    np.testing.assert_array_equal(loaded["data"], data)
    fortran = str(tmp_path / "f.npy")
    np.save(fortran, np.asfortranarray(data))
    loaded, _ = NumpyDataReader().read_file(fortran)
    assert loaded["data"].flags.f_contiguous
    np.testing.assert_array_equal(loaded["data"], data)


def test_numpy_npz_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "a.npz")
    np.savez_compressed(path, x=np.ones((5, 2)), y=np.arange(5), s=np.array(list("abcde")))
    columns, n = roundtrip(NumpyDataReader(), path)
    assert n == 5 and set(columns) == {"x", "y", "s"}
    np.testing.assert_array_equal(columns["y"], np.arange(5))
    assert columns["s"].tolist() == list("abcde")
    empty = str(tmp_path / "e.npz")
    np.savez(empty)
    assert roundtrip(NumpyDataReader(), empty) == ({}, 0)


def test_numpy_format_told_by_content(tmp_path: Path) -> None:
    path = str(tmp_path / "a.bin")
    with open(path, "wb") as f:
        np.save(f, np.arange(3))
    columns, n = roundtrip(NumpyDataReader(), path)
    assert n == 3 and columns["data"].tolist() == [0, 1, 2]


def test_numpy_count_samples_reads_header_only(tmp_path: Path) -> None:
    path = str(tmp_path / "big.npy")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 16)})
    assert NumpyDataReader().count_samples(path) == 10**9  # data part absent: never read
    with pytest.raises(DataFormatError, match=r"big\.npy"):
        NumpyDataReader().read_file(path)


def test_numpy_refuses_pickles(tmp_path: Path) -> None:
    obj = np.array([{"a": 1}, None], dtype=object)
    npy = str(tmp_path / "o.npy")
    np.save(npy, obj, allow_pickle=True)
    npz = str(tmp_path / "o.npz")
    np.savez(npz, ok=np.arange(2), bad=obj)
    for mmap in (True, False):
        assert_format_error(NumpyDataReader(mmap=mmap), npy, None, "pickled content", "refused")
    assert_format_error(NumpyDataReader(), npz, None, "'bad'", "pickled content")
    with pytest.raises(DataFormatError, match="pickled"):
        NumpyDataReader().count_samples(npz)


def test_numpy_rejects_scalars_and_mismatched_lengths(tmp_path: Path) -> None:
    scalar = str(tmp_path / "s.npy")
    np.save(scalar, np.float64(3.0))
    assert_format_error(NumpyDataReader(), scalar, None, "0-d")
    npz_scalar = str(tmp_path / "s.npz")
    np.savez(npz_scalar, x=np.arange(3), s=np.int64(1))
    assert_format_error(NumpyDataReader(), npz_scalar, None, "'s'", "0-d")
    mismatch = str(tmp_path / "m.npz")
    np.savez(mismatch, x=np.arange(3), y=np.arange(4))
    assert_format_error(NumpyDataReader(), mismatch, None, "'x': 3", "'y': 4")
    with pytest.raises(DataFormatError, match=r"m\.npz"):
        NumpyDataReader().count_samples(mismatch)


def test_numpy_not_numpy_data(tmp_path: Path) -> None:
    text = write(tmp_path / "t.npy", "just text")
    assert_format_error(NumpyDataReader(), text, None, "not a .npy or .npz")
    zipped = str(tmp_path / "z.npz")
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("readme.txt", "hi")
    assert_format_error(NumpyDataReader(), zipped, None, "readme.txt")
    broken = write(tmp_path / "b.npz", b"PK\x03\x04 garbage")
    assert_format_error(NumpyDataReader(), broken, None, ".npz")
    good = tmp_path / "g.npy"
    np.save(good, np.arange(1000))
    truncated = write(tmp_path / "tr.npy", good.read_bytes()[:200])
    for mmap in (True, False):
        assert_format_error(NumpyDataReader(mmap=mmap), truncated, None)


# ---------------------------------------------------------------------------- text lines


def test_text_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbfone\r\n\n  \ntwo  \nthree")
    columns, n = roundtrip(TextLineDataReader(), path)
    assert (columns, n) == ({"text": ["one", "", "  ", "two  ", "three"]}, 5)
    columns, n = roundtrip(TextLineDataReader(key="line", skip_blank=True), path)
    assert (columns, n) == ({"line": ["one", "two  ", "three"]}, 3)
    assert roundtrip(TextLineDataReader(), write(tmp_path / "e.txt", "")) == ({"text": []}, 0)


def test_text_gzip_and_encoding(tmp_path: Path) -> None:
    path = str(tmp_path / "a.txt.gz")
    with gzip.open(path, "wb") as f:
        f.write("ça\nva\n".encode("cp1252"))
    columns, n = roundtrip(TextLineDataReader(encoding="cp1252"), path)
    assert (columns, n) == ({"text": ["ça", "va"]}, 2)


def test_text_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"ok\n\xc3\x28\nfine\n\xff\n")
    assert_format_error(TextLineDataReader(), path, 2, "utf-8")
    columns, n, log = read_skipping(TextLineDataReader(), path)
    assert (columns, n) == ({"text": ["ok", "fine"]}, 2)
    assert [item.record for item in log.items] == [2, 4]
    assert [item.location() for item in log.items] == [f"{path}:2", f"{path}:4"]


# ---------------------------------------------------------------------------- registry and common behaviour


def test_get_reader_by_name_alias_class_instance() -> None:
    expected = {
        "jsonl": JsonLineDataReader,
        "json": JsonLineDataReader,
        "JSONLines": JsonLineDataReader,
        "csv": CsvDataReader,
        "Parquet": ParquetDataReader,
        "numpy": NumpyDataReader,
        "npy": NumpyDataReader,
        "NPZ": NumpyDataReader,
        "text": TextLineDataReader,
        "txt": TextLineDataReader,
        "tfrecord": TFRecordDataReader,
        "tfrecords": TFRecordDataReader,
        "arrow": ArrowDataReader,
        "ipc": ArrowDataReader,
        "feather": ArrowDataReader,
        "webdataset": WebDatasetReader,
        "wds": WebDatasetReader,
        "tar": WebDatasetReader,
    }
    for name, cls in expected.items():
        assert type(get_reader(name)) is cls, name
    assert set(READERS) == {name.lower() for name in expected}
    reader = get_reader("csv", batch_size=3, converters={"a": int})
    assert reader.batch_size == 3 and reader.converters == {"a": int}  # type: ignore[attr-defined]
    by_class = get_reader(NumpyDataReader, key="x")
    assert isinstance(by_class, NumpyDataReader) and by_class.key == "x"
    instance = TextLineDataReader()
    assert get_reader(instance) is instance


def test_get_reader_errors() -> None:
    with pytest.raises(ConfigError) as info:
        get_reader("avro")
    assert "'avro'" in str(info.value)
    for name in READERS:
        assert name in str(info.value)
    with pytest.raises(ConfigError):
        get_reader(TextLineDataReader(), key="x")
    with pytest.raises(ConfigError):
        get_reader(dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        get_reader(42)  # type: ignore[arg-type]


READER_CLASSES: list[type[DataReader]] = [
    ArrowDataReader,
    CsvDataReader,
    JsonLineDataReader,
    NumpyDataReader,
    ParquetDataReader,
    TFRecordDataReader,
    TextLineDataReader,
    WebDatasetReader,
]


def test_registry_covers_every_reader() -> None:
    assert set(READERS.values()) == set(READER_CLASSES)
    assert all(name == name.lower() for name in READERS)


@pytest.mark.parametrize("cls", READER_CLASSES, ids=lambda c: c.__name__)
def test_readers_defaults_and_pickle(cls: type[DataReader]) -> None:
    reader = cls(5, True, 9)  # type: ignore[call-arg]
    assert (reader.batch_size, reader.shuffle, reader.random_seed) == (5, True, 9)
    if cls is not JsonLineDataReader:
        assert cls().batch_size == 16
    clone = pickle.loads(pickle.dumps(reader))  # readers travel to worker processes
    assert type(clone) is cls and vars(clone) == vars(reader)
    assert cls.__doc__ and "Example::" in cls.__doc__


def test_numpy_collator_keeps_binary_values_whole() -> None:
    from pyloader_core import NumpyDataCollator

    payloads = [b"\x89PNG\x00\x00", b"", b"abc\x00"]  # trailing NULs: numpy's "S" dtype would drop them
    out = NumpyDataCollator().collate_batch({"img": payloads})["img"]
    assert out.dtype == object and list(out) == payloads
