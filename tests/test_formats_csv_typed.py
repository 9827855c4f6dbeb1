"""Typed CSV (issue 14): ints, floats, bools and strings inferred per column, the same with and without pyarrow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyloader_core.formats.csv as csv_module
from pyloader_core import DataLoader
from pyloader_core.collator import NumpyDataCollator
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import CsvDataReader
from pyloader_core.reader import check_columns
from pyloader_core.skips import SkipLog, skip_policy

pytest.importorskip("pyarrow.csv")

PATHS = ["arrow", "stdlib"]


@pytest.fixture(params=PATHS)
def engine(request, monkeypatch):
    """Both parsing paths: pyarrow's, and the standard library's with pyarrow away."""
    if request.param == "stdlib":
        monkeypatch.setattr(csv_module, "arrow_modules", lambda: None)
    return request.param


def digits_csv(path: Path, rows: int = 60, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """A digits-like CSV: 8x8 pixel ints (0..16) and an int label."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 17, size=(rows, 64))
    labels = rng.integers(0, 10, size=rows)
    header = ",".join([f"pixel{i}" for i in range(64)] + ["label"])
    lines = [header] + [",".join(map(str, [*p, lab])) for p, lab in zip(pixels, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return str(path), pixels, labels


def read(reader: CsvDataReader, path: str):
    columns, n = reader.read_file(path)
    assert check_columns(columns, n, path, "read_file") == n == reader.count_samples(path)
    return columns, n


def test_digits_come_out_numeric_without_converters(tmp_path, engine):
    path, pixels, labels = digits_csv(tmp_path / "digits.csv")
    reader = CsvDataReader()
    columns, n = read(reader, path)
    assert n == 60 and len(columns) == 65
    for i in range(64):
        col = columns[f"pixel{i}"]
        assert isinstance(col, np.ndarray) and col.dtype == np.int64
        assert (col == pixels[:, i]).all()
    assert columns["label"].dtype == np.int64 and (columns["label"] == labels).all()
    assert set(reader.column_types.values()) == {"int64"}


def test_floats_bools_strings_and_empty_cells(tmp_path, engine):
    path = tmp_path / "m.csv"
    path.write_text(
        "i,f,b,s,gap_int,gap_float,gap_bool,blank,spaced,big\n"
        "1,1.5,true,x,1,1e3,true,, 1,99999999999999999999\n"
        "+2,-inf,False,2,,nan,,,2,1\n"
        "-3,7,TRUE,3.5,3,.5,false,,3,2\n"
    )
    columns, n = read(CsvDataReader(), str(path))
    assert n == 3
    assert columns["i"].dtype == np.int64 and columns["i"].tolist() == [1, 2, -3]
    assert columns["f"].dtype == np.float64 and columns["f"].tolist() == [1.5, -np.inf, 7.0]
    assert columns["b"].dtype == np.bool_ and columns["b"].tolist() == [True, False, True]
    assert columns["s"] == ["x", "2", "3.5"]  # mixed: strings
    gap = columns["gap_int"]  # ints with an empty cell: float64, NaN there
    assert gap.dtype == np.float64 and gap[0] == 1 and np.isnan(gap[1]) and gap[2] == 3
    assert columns["gap_float"].dtype == np.float64 and np.isnan(columns["gap_float"][1])
    assert columns["gap_bool"] == ["true", "", "false"]  # bools with an empty cell stay strings
    assert columns["blank"] == ["", "", ""]
    assert columns["spaced"] == [" 1", "2", "3"]  # cells are not stripped
    assert columns["big"].dtype == np.float64  # beyond int64


def test_quoted_fields_and_bom(tmp_path, engine):
    path = tmp_path / "q.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,score\r\n1,"a, b",0.5\r\n\r\n2,"two\nlines",1\n')
    columns, n = read(CsvDataReader(), str(path))
    assert n == 2 and list(columns) == ["id", "text", "score"]
    assert columns["id"].tolist() == [1, 2] and columns["score"].tolist() == [0.5, 1.0]
    assert columns["text"] == ["a, b", "two\nlines"]


def test_converters_override_and_opt_out(tmp_path, engine):
    path, pixels, labels = digits_csv(tmp_path / "d.csv", rows=5)
    reader = CsvDataReader(converters={"label": str, "pixel0": float})
    columns, _ = read(reader, path)
    assert columns["label"] == [str(v) for v in labels]
    assert columns["pixel0"] == [float(v) for v in pixels[:, 0]]
    assert "label" not in reader.column_types and columns["pixel1"].dtype == np.int64
    strings, _ = read(CsvDataReader(infer_types=False), path)
    assert strings["label"] == [str(v) for v in labels]


@pytest.mark.parametrize(
    ("later", "word"),
    [("x,abc\n", "'abc' is not int64"), ("x,1.5\n", "converters={'n': float}"), ("x,\n", "empty cell")],
)
def test_drift_across_chunks_names_file_line_and_column(tmp_path, engine, later, word):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("s,n\nx,1\ny,2\n")
    second.write_text("s,n\nx,3\n\n" + later)
    reader = CsvDataReader()
    read(reader, str(first))
    with pytest.raises(DataFormatError) as info:
        reader.read_file(str(second))
    err = info.value
    assert err.path == str(second) and err.record == 4
    assert "column 'n'" in str(err) and word in str(err) and str(first) in str(err)
    with skip_policy(log := SkipLog()):  # under on_error="skip" the row is skipped, the rest kept
        columns, n = reader.read_file(str(second))
    assert n == 1 and columns["n"].tolist() == [3] and [i.record for i in log.items] == [4]


def test_later_chunks_keep_the_first_chunks_types(tmp_path, engine):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("f,s\n1.5,x\n2,y\n")
    second.write_text("f,s\n3,4\n,5\n")  # ints in a float column, numbers in a string column
    reader = CsvDataReader()
    read(reader, str(first))
    columns, _ = read(reader, str(second))
    assert columns["f"].dtype == np.float64 and columns["f"][0] == 3 and np.isnan(columns["f"][1])
    assert columns["s"] == ["4", "5"]


def test_pyarrow_and_stdlib_paths_agree(tmp_path, monkeypatch):
    files = []
    digits, _, _ = digits_csv(tmp_path / "d.csv")
    files.append(digits)
    mixed = tmp_path / "m.csv"
    mixed.write_text("a,b,c,d,e\n1,2.5,x,true,\n-3,,y,False,\n007,1e-3,,TRUE,\n")
    files.append(str(mixed))

    def run():
        out = []
        for f in files:
            columns, n = CsvDataReader().read_file(f)
            out.append({k: (getattr(v, "dtype", "list"), np.asarray(v).tolist()) for k, v in columns.items()})
        return out

    with_arrow = run()
    monkeypatch.setattr(csv_module, "arrow_modules", lambda: None)
    without = run()
    assert repr(with_arrow) == repr(without)  # repr: NaN compares equal to itself there


def test_loader_with_two_process_workers_yields_numeric_arrays(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for c in range(3):
        digits_csv(root / f"part-{c}.csv", rows=20, seed=c)
    loader = DataLoader(
        CsvDataReader(batch_size=8), None, NumpyDataCollator(), str(root), num_workers=2, worker_type="process"
    )
    total = 0
    for batch in loader:
        assert batch["label"].dtype == np.int64 and batch["pixel63"].dtype == np.int64
        total += len(batch["label"])
    assert total == 60


def test_every_process_worker_holds_chunks_to_the_types_of_the_first_file(tmp_path):
    # File 0 has a float column, file 1 the same column with ints only: a worker that read file 1
    # first would type it int64 on its own; the types are fixed in the training process instead.
    from pyloader_core import DataLoader, NumpyDataCollator

    data = tmp_path / "d"
    data.mkdir()
    (data / "a.csv").write_text("x,y\n" + "".join(f"{i}.5,{i}\n" for i in range(8)))
    (data / "b.csv").write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(8)))
    loader = DataLoader(CsvDataReader(batch_size=4), None, NumpyDataCollator(), str(data), num_workers=2,
                        worker_type="process")
    batches = list(loader)
    assert {b["x"].dtype.kind for b in batches} == {"f"} and {b["y"].dtype.kind for b in batches} == {"i"}
    assert sorted(v for b in batches for v in b["y"].tolist()) == sorted(list(range(8)) * 2)
