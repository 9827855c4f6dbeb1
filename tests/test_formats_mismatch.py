"""A reader that does not fit the files fails on the first chunk (issue 14)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from pyloader_core import DataLoader
from pyloader_core.errors import DataFormatError
from pyloader_core.formats import CsvDataReader, JsonLineDataReader, NumpyDataReader, TextLineDataReader
from pyloader_core.formats.base import check_reader_fits


def test_csv_reader_on_jsonl_gz_names_file_and_both_formats(tmp_path):
    path = str(tmp_path / "a.jsonl.gz")
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"x": 1}) + "\n")
    with pytest.raises(DataFormatError) as info:
        CsvDataReader().read_file(path)
    text = str(info.value)
    assert info.value.path == path
    assert "a.jsonl.gz looks like jsonl, but this is the csv reader" in text
    assert "JsonLineDataReader" in text and "'jsonl'" in text


@pytest.mark.parametrize(
    ("reader", "name", "said"),
    [(JsonLineDataReader(), "a.csv.zst", "csv"), (NumpyDataReader(), "b.parquet", "parquet"), (CsvDataReader(), "c.npy", "numpy")],
)
def test_every_built_in_reader_is_judged(reader, name, said):
    with pytest.raises(DataFormatError, match=f"looks like {said}"):
        check_reader_fits(reader, f"/data/{name}")


def test_fitting_unknown_suffixes_and_text_are_not_refused(tmp_path):
    check_reader_fits(CsvDataReader(), "d/a.csv.gz")
    check_reader_fits(JsonLineDataReader(), "d/a.json")
    check_reader_fits(CsvDataReader(), "d/a.dat")  # a suffix no format claims: not judged
    path = tmp_path / "rows.dat"
    path.write_text("a,b\n1,2\n")
    assert CsvDataReader().read_file(str(path))[1] == 1
    jl = tmp_path / "lines.jsonl"
    jl.write_text('{"x": 1}\n')
    assert TextLineDataReader().read_file(str(jl))[1] == 1  # the text reader reads any line file


def test_subclass_of_a_built_in_is_judged_as_it():
    class MyCsv(CsvDataReader):
        pass

    with pytest.raises(DataFormatError, match="csv reader \\(MyCsv\\)"):
        check_reader_fits(MyCsv(), "x/a.jsonl")


def test_loader_fails_on_the_first_chunk(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    np.save(root / "a.npy", np.arange(4))
    with pytest.raises(DataFormatError, match="a.npy looks like numpy, but this is the csv reader"):
        list(DataLoader(CsvDataReader(batch_size=2), None, None, str(root)))


@pytest.mark.parametrize("reader_name", ["tfrecord", "arrow", "webdataset"])
def test_the_new_readers_are_judged_too(tmp_path, reader_name):
    from pyloader_core import get_reader

    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n")
    with pytest.raises(DataFormatError, match="looks like jsonl") as info:
        get_reader(reader_name).read_file(str(path))
    assert str(path) in str(info.value)
