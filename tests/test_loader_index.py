"""The loader with an index.json beside the chunks, checksum verification and the progress bar."""

from __future__ import annotations

import io
import logging

import pytest
from helpers import IdDataset, IdReader, ids_of, write_id_chunks

from pyloader_core import DataLoader, list_files
from pyloader_core.index import ChecksumError
from pyloader_core.tools.indexing import build_index, write_index

SIZES = [6, 9, 4, 11]


class NoCountReader(IdReader):
    """Counts only by reading: every read is recorded, to prove the index spares them."""

    reads = 0

    def count_samples(self, path):
        return None

    def read_file(self, path):
        NoCountReader.reads += 1
        return super().read_file(path)


@pytest.fixture
def indexed(tmp_path):
    data = write_id_chunks(tmp_path / "d", SIZES)
    write_index(data, build_index(list_files(data), "jsonl", data))
    return data


def test_index_gives_exact_len_without_reading(indexed):
    NoCountReader.reads = 0
    loader = DataLoader(NoCountReader(batch_size=4), IdDataset(), None, indexed, num_epoch=2)
    assert len(loader) == 2 * -(-sum(SIZES) // 4)
    assert NoCountReader.reads == 0
    assert len(ids_of(loader)) == 2 * sum(SIZES)


def test_index_plans_rank_shards_without_a_counting_pass(indexed):
    NoCountReader.reads = 0
    shards = []
    for rank in range(2):
        loader = DataLoader(NoCountReader(batch_size=4), IdDataset(), None, indexed, rank=rank, world_size=2, shuffle=True)
        loader.plan(0)
        shards.append(loader)
    assert NoCountReader.reads == 0
    ids = [ids_of(ld) for ld in shards]
    assert len(ids[0]) == len(ids[1]) == sum(SIZES) // 2 and not set(ids[0]) & set(ids[1])


def test_stale_index_is_ignored_with_a_warning(indexed, caplog):
    with open(indexed / "chunk001.jsonl", "a") as f:
        f.write('{"id": 999, "input_text": "1", "label": 0}\n')
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, indexed)
    with caplog.at_level(logging.WARNING):
        assert loader.sample_counts() == [6, 10, 4, 11]  # counted again, not taken from the index
    assert any("stale" in r.getMessage() for r in caplog.records)


def test_index_is_never_read_as_data(indexed):
    assert all(not p.endswith("index.json") for p in DataLoader(IdReader(), None, None, indexed).files)


def test_verify_detects_a_flipped_byte(indexed):
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, indexed)
    loader.verify()  # all good
    path = indexed / "chunk002.jsonl"
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="chunk002.jsonl"):
        loader.verify()


def test_progress_bar_counts_every_sample(indexed, monkeypatch):
    pytest.importorskip("tqdm", reason="progress=True needs tqdm")
    import pyloader_core.runtime.progress as progress

    out = io.StringIO()
    bars = []
    real = progress.ProgressBar

    def capture(total, desc="pyloader", **kw):
        bar = real(total, desc, file=out, mininterval=0, **kw)
        bars.append((total, bar))
        return bar

    monkeypatch.setattr("pyloader_core.runtime.engine.ProgressBar", capture)
    loader = DataLoader(IdReader(batch_size=4), IdDataset(), None, indexed, num_epoch=2, progress=True)
    n = len(ids_of(loader))
    (total, bar), = bars
    assert total == 2 * 8 * 4  # batches x batch size: the bar's end
    assert bar.samples == n == 2 * sum(SIZES) and bar.batches == len(loader)
    assert "epoch=2" in bar.postfix and "samples" in out.getvalue()


def test_progress_without_tqdm_fails_in_the_constructor(indexed, monkeypatch):
    import pyloader_core.runtime.progress as progress

    def missing():
        raise ImportError("progress=True needs tqdm: pip install 'pyloader-chunks[progress]'")

    monkeypatch.setattr(progress, "_tqdm", missing)
    with pytest.raises(ImportError, match="tqdm"):
        DataLoader(IdReader(), None, None, indexed, progress=True)
