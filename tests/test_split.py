"""Tests of :mod:`pyloader_core.tools.split`: streaming, rolling over, formats, compression, shuffle, index."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pyloader_core import (
    CsvDataReader,
    DataLoader,
    JsonLineDataReader,
    NoFilesError,
    ParquetDataReader,
    TextLineDataReader,
    list_files,
)
from pyloader_core.errors import ConfigError, DataFormatError
from pyloader_core.formats import FORMATS
from pyloader_core.formats import base as formats_base
from pyloader_core.index import INDEX_NAME, ChunkEntry, load_index
from pyloader_core.tools import split as split_module
from pyloader_core.tools.split import split
from pyloader_core.tools.split.staging import widen_names


def write_jsonl(path: Path, n: int, start: int = 0, width: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": i, "text": "w" * (i % width), "label": i % 2}) + "\n" for i in range(start, start + n)
        )
    return path


def read_ids(out: Path, reader=None) -> list[int]:
    reader = reader or JsonLineDataReader()
    ids: list[int] = []
    for p in list_files(out):
        cols, _ = reader.read_file(p)
        ids.extend(int(x) for x in cols["id"])
    return ids


def check_index(out: Path, reader) -> None:
    """index.json lists exactly the chunks, with the reader's counts, sizes and checksums."""
    index = load_index(str(out), strict=True)
    assert index is not None
    files = list_files(out)
    assert sorted(index.chunks) == sorted(os.path.relpath(f, out) for f in files)
    for f in files:
        entry = index.entry_for(f)
        assert entry is not None
        assert entry.samples == reader.count_samples(f) == reader.read_file(f)[1]
        assert entry.bytes == os.path.getsize(f)
        assert entry.sha256 == hashlib.sha256(Path(f).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ jsonl and rolling


def test_jsonl_by_samples_keeps_order_and_writes_index(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 1000)
    result = split(str(src), tmp_path / "out", samples_per_chunk=300)
    assert [c.samples for c in result.chunks] == [300, 300, 300, 100]
    assert [c.name for c in result.chunks] == [f"part-0000{i}.jsonl" for i in range(4)]
    assert result.samples == 1000 and result.format == "jsonl"
    assert read_ids(tmp_path / "out") == list(range(1000))
    check_index(tmp_path / "out", JsonLineDataReader())
    assert result.index_path == str(tmp_path / "out" / INDEX_NAME)


def test_jsonl_by_chunk_size_rolls_over_before_the_limit(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 2000)
    result = split(str(src), tmp_path / "out", chunk_size="8K")
    assert len(result.chunks) > 5
    for f in list_files(tmp_path / "out"):
        assert os.path.getsize(f) <= 8192
    assert read_ids(tmp_path / "out") == list(range(2000))
    assert result.record_bytes == src.stat().st_size


def test_both_limits_apply_whichever_first(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 500)
    result = split(str(src), tmp_path / "out", chunk_size="1MB", samples_per_chunk=200)
    assert [c.samples for c in result.chunks] == [200, 200, 100]


def test_record_larger_than_chunk_size_gets_its_own_chunk(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 0}\n{"id": 1, "big": "' + "x" * 5000 + '"}\n{"id": 2}\n')
    result = split(str(src), tmp_path / "out", chunk_size="1K")
    assert [c.samples for c in result.chunks] == [1, 1, 1]


def test_blank_lines_bom_and_missing_final_newline(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"id": 0}\n\n   \n{"id": 1}\r\n{"id": 2}')
    result = split(str(src), tmp_path / "out", samples_per_chunk=2)
    assert result.samples == 3
    assert read_ids(tmp_path / "out") == [0, 1, 2]
    assert (tmp_path / "out" / "part-00001.jsonl").read_bytes() == b'{"id": 2}\n'


def test_several_inputs_dirs_and_globs_are_concatenated_in_order(tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", 10)
    write_jsonl(tmp_path / "in" / "b.jsonl", 10, start=10)
    write_jsonl(tmp_path / "c.jsonl", 5, start=20)
    result = split([str(tmp_path / "in"), str(tmp_path / "c*.jsonl")], tmp_path / "out", samples_per_chunk=7)
    assert result.samples == 25
    assert read_ids(tmp_path / "out") == list(range(25))


def test_empty_input_writes_an_empty_index(tmp_path):
    (tmp_path / "in.jsonl").write_text("\n\n")
    result = split(str(tmp_path / "in.jsonl"), tmp_path / "out")
    assert result.chunks == [] and result.samples == 0
    assert load_index(str(tmp_path / "out"), strict=True).chunks == {}


# ------------------------------------------------------------------------------ compression


@pytest.mark.parametrize(("compression", "suffix"), [("gzip", ".gz"), ("zstd", ".zst")])
def test_compressed_chunks_are_readable_deterministic_and_indexed(tmp_path, compression, suffix):
    if compression == "zstd":
        pytest.importorskip("zstandard")
    src = write_jsonl(tmp_path / "in.jsonl", 3000)
    a = split(str(src), tmp_path / "a", samples_per_chunk=1000, compression=compression)
    b = split(str(src), tmp_path / "b", samples_per_chunk=1000, compression=compression)
    assert all(c.name.endswith(".jsonl" + suffix) for c in a.chunks)
    assert read_ids(tmp_path / "a") == list(range(3000))
    assert [c.sha256 for c in a.chunks] == [c.sha256 for c in b.chunks]  # no timestamps inside
    assert a.output_bytes < a.record_bytes
    check_index(tmp_path / "a", JsonLineDataReader())


def test_compressed_input_is_read(tmp_path):
    raw = write_jsonl(tmp_path / "in.jsonl", 100).read_bytes()
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(raw))
    os.unlink(tmp_path / "in.jsonl")
    result = split(str(tmp_path / "in.jsonl.gz"), tmp_path / "out", samples_per_chunk=40)
    assert result.format == "jsonl" and result.samples == 100
    assert read_ids(tmp_path / "out") == list(range(100))


# ------------------------------------------------------------------------------ csv, txt, parquet


def test_csv_keeps_the_header_in_every_chunk_and_quoted_newlines(tmp_path):
    src = tmp_path / "in.csv"
    rows = [["id", "text", "label"]] + [
        [str(i), f'line one\nline two, "{i}"' if i % 3 == 0 else f"t{i}", str(i % 2)] for i in range(50)
    ]
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerows(rows[:20])
        f.write("\r\n")  # a blank line between rows is dropped
        w.writerows(rows[20:])
    result = split(str(src), tmp_path / "out", samples_per_chunk=15)
    assert [c.samples for c in result.chunks] == [15, 15, 15, 5]
    reader = CsvDataReader(converters={"id": int})
    got: list[list[str]] = []
    for f in list_files(tmp_path / "out"):
        assert Path(f).read_text(encoding="utf-8").startswith("id,text,label")
        cols, n = reader.read_file(f)
        got.extend([str(cols["id"][i]), cols["text"][i], str(cols["label"][i])] for i in range(n))
    assert got == rows[1:]
    check_index(tmp_path / "out", reader)


def test_csv_inputs_must_share_the_header(tmp_path):
    (tmp_path / "a.csv").write_text("id,x\n1,2\n")
    (tmp_path / "b.csv").write_text("id,y\n1,2\n")
    with pytest.raises(DataFormatError, match="header"):
        split([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], tmp_path / "out")
    (tmp_path / "c.csv").write_text("id,x\r\n3,4\r\n")  # same header, other line ending
    result = split([str(tmp_path / "a.csv"), str(tmp_path / "c.csv")], tmp_path / "out2")
    assert result.samples == 2


def test_csv_unterminated_quote_is_a_format_error_and_leaves_no_chunks(tmp_path):
    (tmp_path / "a.csv").write_text('id,x\n1,"open\n2,3\n')
    with pytest.raises(DataFormatError, match="unterminated"):
        split(str(tmp_path / "a.csv"), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # staged beside it, and removed
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]


def test_txt_keeps_blank_lines_as_samples(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"\xef\xbb\xbfalpha\n\nbeta\r\ngamma")
    result = split(str(src), tmp_path / "out", samples_per_chunk=2)
    assert result.samples == 4
    lines: list[str] = []
    for f in list_files(tmp_path / "out"):
        lines.extend(TextLineDataReader().read_file(f)[0]["text"])
    assert lines == ["alpha", "", "beta", "gamma"]
    check_index(tmp_path / "out", TextLineDataReader())


def _parquet(path: Path, n: int, start: int = 0, row_group_size: int = 100) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ids = np.arange(start, start + n, dtype=np.int64)
    table = pa.table({"id": ids, "text": [f"t{i}" for i in ids], "score": ids.astype(np.float32) / 7})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("shuffle", [False, True])
def test_parquet_split_by_samples(tmp_path, shuffle):
    _parquet(tmp_path / "a.parquet", 700)
    _parquet(tmp_path / "b.parquet", 300, start=700)
    result = split(
        [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")],
        tmp_path / "out",
        samples_per_chunk=256,
        shuffle=shuffle,
        compression="zstd",
    )
    assert [c.samples for c in result.chunks] == [256, 256, 256, 232]
    ids = read_ids(tmp_path / "out", ParquetDataReader())
    assert sorted(ids) == list(range(1000))
    assert (ids != list(range(1000))) == shuffle
    check_index(tmp_path / "out", ParquetDataReader())
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(list_files(tmp_path / "out")[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_parquet_by_chunk_size_and_schema_mismatch(tmp_path):
    _parquet(tmp_path / "a.parquet", 2000)
    result = split(str(tmp_path / "a.parquet"), tmp_path / "out", chunk_size="16K")
    assert len(result.chunks) > 2 and result.samples == 2000
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"other": [1, 2]}), tmp_path / "b.parquet")
    with pytest.raises(DataFormatError, match="schema differs"):
        split([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], tmp_path / "out2")


def test_not_parquet_is_a_format_error(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "a.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataFormatError, match="Parquet"):
        split(str(tmp_path / "a.parquet"), tmp_path / "out")


# ------------------------------------------------------------------------------ shuffle


def test_shuffle_is_a_seeded_permutation(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 5000)
    a = split(str(src), tmp_path / "a", samples_per_chunk=1000, shuffle=True, seed=7, max_memory="1MB")
    split(str(src), tmp_path / "b", samples_per_chunk=1000, shuffle=True, seed=7, max_memory="1MB")
    split(str(src), tmp_path / "c", samples_per_chunk=1000, shuffle=True, seed=8, max_memory="1MB")
    ids_a, ids_b, ids_c = read_ids(tmp_path / "a"), read_ids(tmp_path / "b"), read_ids(tmp_path / "c")
    assert sorted(ids_a) == list(range(5000))
    assert ids_a == ids_b
    assert ids_a != ids_c
    assert a.buckets >= 2
    first = ids_a[:1000]  # the first chunk draws from the whole input, not from its start
    assert min(first) < 250 and max(first) > 4750
    assert abs(np.mean(first) - 2500) < 300
    check_index(tmp_path / "a", JsonLineDataReader())
    assert not [n for n in os.listdir(tmp_path / "a") if n.startswith(".pyloader-split")]  # buckets removed


def test_oversized_buckets_are_scattered_again(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", 20000, width=60)  # ~1.3 MB
    monkeypatch.setattr(split_module, "_input_size", lambda paths: 1)  # a bad guess: 2 buckets
    result = split(str(src), tmp_path / "out", shuffle=True, max_memory="1MB", samples_per_chunk=5000)
    assert result.buckets > 2  # the two buckets did not fit and were split again
    ids = read_ids(tmp_path / "out")
    assert sorted(ids) == list(range(20000)) and ids != list(range(20000))


def test_shuffle_buckets_can_live_in_tmp_dir(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 100)
    (tmp_path / "tmp").mkdir()
    result = split(str(src), tmp_path / "out", shuffle=True, tmp_dir=str(tmp_path / "tmp"))
    assert result.samples == 100 and os.listdir(tmp_path / "tmp") == []


def test_shuffled_csv_keeps_header_and_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n" + "".join(f'{i},"a\nb{i}"\n' for i in range(300)))
    split(str(src), tmp_path / "out", shuffle=True, samples_per_chunk=100)
    ids = read_ids(tmp_path / "out", CsvDataReader(converters={"id": int}))
    assert sorted(ids) == list(range(300)) and ids != list(range(300))


# ------------------------------------------------------------------------------ options and errors


def test_format_detection_and_override(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", 3)
    (tmp_path / "b.csv").write_text("x\n1\n")
    with pytest.raises(ConfigError, match="mix formats"):
        split([str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")], tmp_path / "out")
    (tmp_path / "c.log").write_text("one\ntwo\n")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        split(str(tmp_path / "c.log"), tmp_path / "out")
    assert split(str(tmp_path / "c.log"), tmp_path / "out", fmt="txt").samples == 2
    with pytest.raises(ConfigError, match="unknown format"):
        split(str(tmp_path / "c.log"), tmp_path / "out3", fmt="xml")
    np.save(tmp_path / "d.npy", np.zeros(3))
    with pytest.raises(ConfigError, match="split reads"):
        split(str(tmp_path / "d.npy"), tmp_path / "out4")


def test_jsonl_that_is_not_json_is_a_format_error(tmp_path):
    (tmp_path / "a.jsonl").write_text("id,text\n1,2\n")
    with pytest.raises(DataFormatError, match="not JSON lines"):
        split(str(tmp_path / "a.jsonl"), tmp_path / "out")
    (tmp_path / "b.jsonl").write_text("[1, 2]\n")
    with pytest.raises(DataFormatError, match="not an object"):
        split(str(tmp_path / "b.jsonl"), tmp_path / "out")


def test_failed_split_removes_its_partial_chunks(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", 100)
    (tmp_path / "b.jsonl").write_text("garbage\n")
    with pytest.raises(DataFormatError):
        split([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], tmp_path / "out", samples_per_chunk=10)
    assert sorted(os.listdir(tmp_path)) == ["a.jsonl", "b.jsonl"]  # no output, no staging left
    (tmp_path / "out").mkdir()  # an existing directory is staged into, and left as it was
    with pytest.raises(DataFormatError):
        split([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], tmp_path / "out", samples_per_chunk=10)
    assert os.listdir(tmp_path / "out") == []


def test_output_directory_rules(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 30)
    split(str(src), tmp_path / "out", samples_per_chunk=10)
    with pytest.raises(ConfigError, match="not empty"):
        split(str(src), tmp_path / "out")
    result = split(str(src), tmp_path / "out", samples_per_chunk=20, overwrite=True)
    assert sorted(os.listdir(tmp_path / "out")) == [INDEX_NAME, "part-00000.jsonl", "part-00001.jsonl"]
    assert result.samples == 30
    (tmp_path / "out" / "mine.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match="not empty"):
        split(str(src), tmp_path / "out", overwrite=True)  # never deletes files it did not write
    with pytest.raises(ConfigError, match="inside the output directory"):
        split(str(tmp_path / "out" / "mine.jsonl"), tmp_path / "out", overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        split(str(src), tmp_path / "file")
    with pytest.raises(NoFilesError):
        split(str(tmp_path / "missing.jsonl"), tmp_path / "out5")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_size": "12XB"}, "bad size"),
        ({"chunk_size": "0"}, "at least 1 byte"),
        ({"samples_per_chunk": 0}, "positive int"),
        ({"max_memory": "100K"}, "at least 1MB"),
        ({"compression": "lzma"}, "unknown compression"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    src = write_jsonl(tmp_path / "in.jsonl", 3)
    with pytest.raises(ConfigError, match=match):
        split(str(src), tmp_path / "out", **kwargs)


def test_loader_reads_split_output_and_skips_the_index(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", 400)
    split(str(src), tmp_path / "out", samples_per_chunk=64, shuffle=True, compression="gzip")
    loader = DataLoader(JsonLineDataReader(batch_size=50), None, None, str(tmp_path / "out"), num_workers=2)
    assert all(INDEX_NAME not in f for f in loader.files)
    ids = [i for batch in loader for i in np.asarray(batch["id"]).tolist()]
    assert sorted(ids) == list(range(400))


def test_remote_input(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/split-in/a.jsonl", write_jsonl(tmp_path / "a.jsonl", 50).read_bytes())
    try:
        result = split("memory://split-in/a.jsonl", tmp_path / "out", samples_per_chunk=20)
    finally:
        fs.rm("/split-in", recursive=True)
    assert result.samples == 50 and read_ids(tmp_path / "out") == list(range(50))
    with pytest.raises(ConfigError, match="must be local"):
        split(str(tmp_path / "a.jsonl"), "memory://elsewhere/")


def test_many_chunks_keep_sorting(tmp_path):
    """Past 10**digits chunks the names are widened so that they still sort in order."""
    few = [ChunkEntry(f"part-{i}.txt", 1, 1, "", "txt") for i in range(10)]
    assert widen_names(str(tmp_path), few, digits=1) == few  # 0..9 fit one digit
    many = [ChunkEntry(f"part-{i}.txt", 1, 1, "", "txt") for i in range(11)]
    for c in many:
        (tmp_path / c.name).write_text(c.name)
    renamed = widen_names(str(tmp_path), many, digits=1)
    assert [c.name for c in renamed] == [f"part-{i:02d}.txt" for i in range(11)]
    assert sorted(c.name for c in renamed) == [c.name for c in renamed]
    assert (tmp_path / "part-03.txt").read_text() == "part-3.txt"
    assert not (tmp_path / "part-3.txt").exists()


def test_split_reads_through_a_bytes_buffer_only_a_block_at_a_time(tmp_path):
    """The line source yields blocks of at most ~1 MiB, whatever the file size."""
    src = write_jsonl(tmp_path / "in.jsonl", 30000, width=80)
    source = FORMATS["jsonl"].split_source(1 << 20)
    sizes = [sum(map(len, block)) for block in source.blocks([str(src)])]
    assert sum(sizes) == src.stat().st_size
    assert max(sizes) <= formats_base._BLOCK_BYTES + 200
