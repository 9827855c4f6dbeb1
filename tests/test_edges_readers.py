"""Readers at the edges: stray CSV quotes, huge CSV fields, JSON with and without orjson, truncated .npy."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyloader_core import DataLoader
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import CsvDataReader, JsonLineDataReader, NumpyDataReader
from pyloader_core.formats import csv as csv_module
from pyloader_core.formats import jsonl as jsonl_module
from pyloader_core.formats import numpy as numpy_module
from pyloader_core.skips import SkipLog, skip_policy


def read_skipping(reader: Any, path: str) -> tuple[dict[str, Any], int, SkipLog]:
    with skip_policy(log := SkipLog()):
        columns, n = reader.read_file(path)
    assert all(item.path == path for item in log.items)
    return columns, n, log


# ---------------------------------------------------------------------------- CSV: stray quotes


def csv_rows(n: int = 150) -> list[str]:
    """A header and ``n`` rows ``i,t<i>,<i>``; row ``i`` is on line ``i + 1``."""
    return ["id,text,n"] + [f"{i},t{i},{i}" for i in range(1, n + 1)]


def write_csv(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("case", "broken"),
    [
        ("runs_to_the_end", {21: '21,"stray,21'}),  # no other quote: csv reads on to EOF
        ("runs_into_a_quoted_field", {21: '21,"stray,21', 60: '60,"quoted",60'}),
        ("two_stray_quotes", {21: '21,"stray,21', 90: '90,"stray,90'}),
    ],
)
def test_csv_stray_quote_costs_only_its_row(tmp_path: Path, case: str, broken: dict[int, str]) -> None:
    rows = csv_rows()
    for i, text in broken.items():
        rows[i] = text
    path = write_csv(tmp_path / f"{case}.csv", rows)
    reader = CsvDataReader(converters={"id": int})
    columns, n, log = read_skipping(reader, path)
    stray = sorted(i for i, text in broken.items() if '"stray' in text)
    assert [item.record for item in log.items] == [i + 1 for i in stray]  # line numbers of the bad rows
    assert all("malformed CSV" in item.reason for item in log.items)
    assert columns["id"] == [i for i in range(1, 151) if i not in stray]
    assert n == 150 - len(stray)
    assert n + len(log.items) == reader.count_samples(path) == 150  # every counted row delivered or skipped
    if 60 in broken:
        assert columns["text"][columns["id"].index(60)] == "quoted"
    with pytest.raises(DataFormatError) as info:  # and under the default policy: an error naming the line
        reader.read_file(path)
    assert info.value.path == path and info.value.record == stray[0] + 1


def test_csv_multiline_row_with_the_wrong_field_count_is_reparsed_line_by_line(tmp_path: Path) -> None:
    rows = csv_rows(10)
    rows[3] = '3,"stray,3'  # pairs with the stray quote of row 6: lines 4-7 parse as one row of 4 fields
    rows[6] = '6,t6",6,x'
    path = write_csv(tmp_path / "a.csv", rows)
    reader = CsvDataReader()
    columns, n, log = read_skipping(reader, path)
    assert [item.record for item in log.items] == [4, 7]  # row 3, then row 6 (its own 4 fields)
    assert "spans lines 4-7" in log.items[0].reason and "4 fields, the header has 3" in log.items[0].reason
    assert columns["id"].tolist() == [1, 2, 4, 5, 7, 8, 9, 10]  # inferred int64
    assert n + len(log.items) == reader.count_samples(path) == 10


def test_csv_loader_skip_counts_the_stray_quote_once(tmp_path: Path) -> None:
    rows = csv_rows()
    rows[21] = '21,"stray,21'
    path = write_csv(tmp_path / "a.csv", rows)
    loader = DataLoader(CsvDataReader(batch_size=16, converters={"id": int}), None, None, path, on_error="skip")
    ids = [i for batch in loader for i in np.asarray(batch["id"]).tolist()]
    assert sorted(ids) == [i for i in range(1, 151) if i != 21]
    stats = loader.stats()
    assert stats["skipped_count"] == 1
    assert [s["record"] for s in stats["skipped"]] == [22]


# ---------------------------------------------------------------------------- CSV: field size limit


@pytest.mark.parametrize("compressed", [False, True])
def test_csv_field_longer_than_csvs_default_limit(tmp_path: Path, compressed: bool) -> None:
    default = csv.field_size_limit()
    big = "x" * 300_000  # > 131,072
    text = f'a,b\n1,"{big}\nmore"\n2,{big}\n3,small\n'
    if compressed:
        path = str(tmp_path / "a.csv.gz")
        Path(path).write_bytes(gzip.compress(text.encode()))
    else:
        path = write_csv(tmp_path / "a.csv", [text.rstrip("\n")])
    columns, n = CsvDataReader().read_file(path)
    assert n == 3 and columns["b"] == [big + "\nmore", big, "small"]
    assert CsvDataReader().count_samples(path) == 3
    assert csv.field_size_limit() == default  # put back afterwards


def test_csv_field_limit_is_the_chunk_size_and_never_leaks(tmp_path: Path) -> None:
    small = write_csv(tmp_path / "s.csv", ["a", "1"])
    assert csv_module.chunk_chars(small) == os.path.getsize(small) + 1
    assert csv_module.chunk_chars(str(tmp_path / "s.csv.gz")) == sys.maxsize  # decoded size unknown
    before = csv.field_size_limit(1000)  # a user's own, lower limit
    try:
        with csv_module.field_limit(500_000):  # a read of a big chunk is in progress...
            assert csv.field_size_limit() == 500_000
            CsvDataReader().read_file(small)  # ...while another one starts and ends
            assert csv.field_size_limit() == 500_000  # not dropped under the first read's feet
        assert csv.field_size_limit() == 1000  # the user's limit again, once both are done
        big = write_csv(tmp_path / "b.csv", ["a", "y" * 5000])
        assert CsvDataReader().read_file(big)[0]["a"] == ["y" * 5000]
        assert csv.field_size_limit() == 1000
    finally:
        csv.field_size_limit(before)


# ---------------------------------------------------------------------------- JSON: same with or without orjson

EDGE_LINES = [
    b'{"v": 18446744073709551615}',  # 1: 2**64 - 1, orjson's largest
    b'{"v": 18446744073709551616}',  # 2: 2**64: orjson makes it a float
    b'{"v": -9223372036854775809}',  # 3: below -2**63
    b'{"v": 123456789012345678901234567890, "w": [1, {"x": -98765432109876543210}]}',  # 4: nested
    b'{"v": NaN}',  # 5
    b'{"v": Infinity}',  # 6
    b'{"v": -Infinity}',  # 7
    b'{"v": 1e400}',  # 8: out of range: json makes it inf
    b'{"v": "\\ud800"}',  # 9: lone high surrogate: bad
    b'{"v": "x\\udc00"}',  # 10: lone low surrogate: bad
    b'{"v": "\\ud83d\\ude00"}',  # 11: a pair: one character
    b'{"v": "\\\\ud800"}',  # 12: an escaped backslash, not a surrogate
    b'{"v": 0.30000000000000004441}',  # 13: long float
    b'{"v": "\xff"}',  # 14: invalid UTF-8: bad
    b'{"v": -0.0}',  # 15
    b'{"v": 1, "v": 2}',  # 16: duplicate key: the last wins
]


def _canon(value: Any) -> Any:
    """A value with types kept (``1 == 1.0`` and ``nan != nan`` would hide differences)."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, dict):
        return ("dict", [(k, _canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_canon(v) for v in value])
    return (type(value).__name__, value)


def _read_edges(path: str) -> tuple[Any, list[tuple[int | None, str]]]:
    columns, _, log = read_skipping(JsonLineDataReader(fields=["v"]), path)
    return _canon(columns["v"]), [(item.record, item.reason) for item in log.items]


def test_jsonl_same_values_with_and_without_orjson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orjson")
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"\n".join(EDGE_LINES) + b"\n")
    assert JsonLineDataReader()._bytes_direct  # orjson in use
    fast = _read_edges(str(path))
    monkeypatch.setattr(jsonl_module, "_orjson", None)
    assert not JsonLineDataReader()._bytes_direct  # stdlib json only
    plain = _read_edges(str(path))
    assert fast == plain
    values, skipped = plain
    assert [r for r, _ in skipped] == [9, 10, 14]
    assert "lone surrogate \\ud800" in skipped[0][1] and "lone surrogate \\udc00" in skipped[1][1]
    assert "utf-8" in skipped[2][1]
    expected = [
        2**64 - 1,
        2**64,
        -(2**63) - 1,
        123456789012345678901234567890,
        float("nan"),
        float("inf"),
        float("-inf"),
        float("inf"),
        "\U0001f600",
        "\\ud800",
        0.30000000000000004,
        -0.0,
        2,
    ]
    assert values == _canon(expected)


def test_jsonl_big_ints_exact_in_every_position(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ints = [int(x) * 10**30 + int(y) for x, y in rng.integers(-(2**62), 2**62, size=(200, 2))]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"a": i, "b": [i, {"c": -i}], "s": str(i)}) + "\n" for i in ints))
    columns, n = JsonLineDataReader().read_file(str(path))
    assert n == 200 and columns["a"] == ints and [b[1]["c"] for b in columns["b"]] == [-i for i in ints]
    assert all(type(v) is int for v in columns["a"])


def test_jsonl_nan_and_surrogates_with_a_non_utf8_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.jsonl"
    text = '{"t": "café", "v": NaN, "n": 36893488147419103232}\n{"t": "\\udfff", "v": 1, "n": 1}\n'
    path.write_bytes(text.encode("latin-1"))
    for orjson in (jsonl_module._orjson, None):
        monkeypatch.setattr(jsonl_module, "_orjson", orjson)
        columns, n, log = read_skipping(JsonLineDataReader(encoding="latin-1"), str(path))
        assert n == 1 and columns["t"] == ["café"] and math.isnan(columns["v"][0]) and columns["n"] == [2**65]
        assert [item.record for item in log.items] == [2]


# ---------------------------------------------------------------------------- NumPy: truncated files


@pytest.fixture
def npy(tmp_path: Path) -> tuple[str, np.ndarray]:
    data = np.arange(200_000, dtype=np.float64).reshape(50_000, 4)
    path = str(tmp_path / "a.npy")
    np.save(path, data)
    return path, data


@pytest.mark.parametrize("mmap", [False, True])
def test_npy_shorter_than_its_header_says_is_refused_before_reading(npy: tuple[str, np.ndarray], mmap: bool) -> None:
    path, data = npy
    full = os.path.getsize(path)
    os.truncate(path, full - 1000)
    with pytest.raises(DataFormatError, match="truncated") as info:
        NumpyDataReader(mmap=mmap).read_file(path)
    assert info.value.path == path and path in str(info.value)
    assert f"promises {data.nbytes} bytes" in str(info.value)


def test_npy_truncated_while_read_is_a_format_error(
    npy: tuple[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file shrinks after the size check, between two reads of its data: a short read, no crash."""
    path, _ = npy
    real_open = open

    class Shrinking:
        def __init__(self, f: Any) -> None:
            self._f = f
            self.calls = 0

        def readinto(self, buffer: Any) -> int:
            self.calls += 1
            if self.calls == 2:
                os.truncate(path, os.path.getsize(path) // 2)
            return self._f.readinto(memoryview(buffer)[:65536])

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

        def __enter__(self) -> Shrinking:
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(file, mode, *args, **kwargs)
        return Shrinking(f) if file == path else f

    monkeypatch.setattr(numpy_module, "open", fake_open, raising=False)
    with pytest.raises(DataFormatError, match="ended after") as info:
        NumpyDataReader().read_file(path)
    assert info.value.path == path


_TRUNCATE_AFTER_READ = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from pyloader_core.formats import NumpyDataReader
    path, mmap = sys.argv[1], sys.argv[2] == "1"
    cols, n = NumpyDataReader(mmap=mmap).read_file(path)
    os.truncate(path, 4096)  # the chunk is rewritten in place while the loader still holds it
    print(float(cols["data"][-1].sum()))
    """
)


@pytest.mark.parametrize("mmap", [False, True])
def test_npy_truncated_after_read(npy: tuple[str, np.ndarray], mmap: bool) -> None:
    """Read into memory (the default) the data survives; a memory map dies of SIGBUS (why it is opt-in)."""
    path, data = npy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _TRUNCATE_AFTER_READ, path, "1" if mmap else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if mmap:
        assert proc.returncode == -signal.SIGBUS, (proc.returncode, proc.stderr)
    else:
        assert proc.returncode == 0, proc.stderr
        assert float(proc.stdout) == float(data[-1].sum())
