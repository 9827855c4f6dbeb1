"""The loader's stream: seed-compatible API, batching, determinism across worker counts and types."""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Dict, List

import numpy as np
import pytest
from helpers import GatedReader, IdCollator, IdDataset, IdReader, ids_of, write_id_chunks

from pyloader_core import (
    ConfigError,
    DataCollator,
    DataLoader,
    DataReader,
    Dataset,
    JsonLineDataReader,
    NumpyDataCollator,
    SampleCountError,
    TextDataset,
)

SIZES = [13 + c for c in range(7)]
TOTAL = sum(SIZES)


def make(data, batch_size=8, **kw):
    return DataLoader(IdReader(batch_size=batch_size), IdDataset(), IdCollator(), data, **kw)


# -- the original README's quick-usage snippet, with only the import line changed -------------------


class TheDataReader(DataReader):
    def __init__(self, batch_size=4, shuffle=False, random_seed=42):
        super(TheDataReader, self).__init__(batch_size, shuffle=shuffle, random_seed=random_seed)

    def read_file(self, path):
        dict_samples: Dict[str, List] = {"id": [], "input_text": [], "label": []}
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                for k in dict_samples:
                    dict_samples[k].append(rec[k])
        return dict_samples, len(dict_samples["id"])


class TheDataset(Dataset):
    def batch_encode(self, batch_data: Dict[str, List]) -> Dict[str, List]:
        return {"id": batch_data["id"], "n_words": [len(t.split()) for t in batch_data["input_text"]]}


class TheDataCollator(DataCollator):
    def collate_batch(self, batch) -> Dict[str, Any]:
        return {k: np.array(v) for k, v in batch.items()}


def test_seed_readme_snippet_runs_unmodified(id_chunks):
    datareader = TheDataReader(batch_size=16, shuffle=True)
    dataset = TheDataset()
    datacollator = TheDataCollator()
    train_loader = DataLoader(datareader, dataset, datacollator, str(id_chunks), num_epoch=5, max_queue_size=10, shuffle=True)
    per_epoch = collections.defaultdict(list)
    for batch_step, inputs in enumerate(train_loader):
        for k, v in inputs.items():
            assert isinstance(v, np.ndarray) and len(v) <= 16
        per_epoch[train_loader.get_epoch()].extend(inputs["id"].tolist())
    assert sorted(per_epoch) == [1, 2, 3, 4, 5]  # get_epoch() is 1-based, as in the original
    for ids in per_epoch.values():
        assert sorted(ids) == list(range(TOTAL))
    assert per_epoch[1] != per_epoch[2]  # reshuffled every epoch


def test_get_batch_and_get_epoch(id_chunks):
    loader = DataLoader(JsonLineDataReader(batch_size=50), None, NumpyDataCollator(), id_chunks, num_epoch=2)
    assert loader.get_epoch() == 0
    seen = []
    while True:
        try:
            batch = loader.get_batch()
        except StopIteration:
            break
        seen.append((loader.get_epoch(), len(batch["id"])))
    loader.close()
    assert [n for _, n in seen] == [50, 50, 12, 50, 50, 12]
    assert [e for e, _ in seen] == [1, 1, 1, 2, 2, 2]


def test_builtin_text_pipeline(tmp_path, id_chunks):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["<pad>", "<unk>"] + [str(i) for i in range(1, 30)]))
    loader = DataLoader(JsonLineDataReader(batch_size=10), TextDataset(str(vocab), max_seq_len=6), NumpyDataCollator(), id_chunks)
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (10, 6) and batch["input_ids"].dtype == np.int64
    assert batch["attention_mask"].sum(axis=1).tolist() == [min(6, 3 + k % 5) for k in range(10)]
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    assert batch["input_ids"].max() < 31  # unknown words (>29) map to <unk>=1
    assert batch["label"].dtype == np.int64
    loader.close()


def test_n_sample_mismatch_names_the_file(id_chunks):
    class Liar(IdReader):
        def read_file(self, path):
            cols, n = super().read_file(path)
            return cols, n + 1

    with pytest.raises(SampleCountError, match=r"chunk000\.jsonl.*'id' with 13 values but n_sample=14"):
        next(iter(DataLoader(Liar(batch_size=4), None, None, id_chunks, num_workers=0)))


# -- batching ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("drop_last", [False, True])
def test_full_batches_across_chunks_only_last_short(id_chunks, drop_last):
    loader = make(id_chunks, batch_size=10, num_epoch=2, drop_last=drop_last)
    sizes = [len(b["id"]) for b in loader]
    per_epoch = TOTAL // 10 + (0 if drop_last else 1)
    expected = ([10] * (TOTAL // 10) + ([] if drop_last else [TOTAL % 10])) * 2
    assert sizes == expected
    assert len(loader) == 2 * per_epoch == len(sizes)


def test_len_needs_counts(id_chunks):
    class NoCount(IdReader):
        def count_samples(self, path):
            return None

    loader = DataLoader(NoCount(batch_size=4), None, None, id_chunks)
    with pytest.raises(TypeError, match="count_samples"):
        len(loader)


def test_batch_size_option_overrides_reader(id_chunks):
    loader = DataLoader(IdReader(batch_size=8), IdDataset(), None, id_chunks, batch_size=32)
    assert len(next(iter(loader))["id"]) == 32
    loader.close()


# -- determinism ---------------------------------------------------------------------------------------

CONFIGS = [
    dict(num_workers=0),
    dict(num_workers=1),
    dict(num_workers=3),
    dict(num_workers=2, worker_type="process"),
]


@pytest.mark.parametrize("shuffle_buffer", [0, 3])
def test_same_stream_whatever_the_workers(id_chunks, shuffle_buffer):
    streams = []
    for cfg in CONFIGS:
        loader = make(id_chunks, num_epoch=2, shuffle=True, random_seed=5, shuffle_buffer=shuffle_buffer, max_queue_size=2, **cfg)
        streams.append(ids_of(loader))
    assert all(s == streams[0] for s in streams[1:])
    first, second = streams[0][:TOTAL], streams[0][TOTAL:]
    assert sorted(first) == sorted(second) == list(range(TOTAL))
    assert first != second


def test_no_shuffle_is_file_then_line_order(id_chunks):
    assert ids_of(make(id_chunks, num_workers=3)) == list(range(TOTAL))


def test_reader_shuffle_flag_shuffles_within_chunks_only(id_chunks):
    ids = ids_of(DataLoader(IdReader(batch_size=8, shuffle=True), IdDataset(), None, id_chunks))
    assert ids != list(range(TOTAL))
    bounds = np.cumsum([0] + SIZES)
    for a, b in zip(bounds[:-1], bounds[1:]):
        assert sorted(ids[a:b]) == list(range(a, b))  # file order kept, samples shuffled inside


def test_seed_changes_stream(id_chunks):
    a = ids_of(make(id_chunks, shuffle=True, random_seed=1))
    b = ids_of(make(id_chunks, shuffle=True, random_seed=2))
    assert a != b and sorted(a) == sorted(b)


def test_shuffle_buffer_mixes_chunks(id_chunks):
    ids = ids_of(make(id_chunks, batch_size=TOTAL, shuffle=True, shuffle_buffer=7))
    first_window = ids[:20]
    chunk_of = np.searchsorted(np.cumsum(SIZES), first_window, side="right")
    assert len(set(chunk_of.tolist())) > 2  # samples from several chunks side by side


def test_iterating_again_runs_the_next_epoch(id_chunks):
    loader = make(id_chunks, shuffle=True)
    first, second = ids_of(loader), ids_of(loader)
    assert sorted(first) == sorted(second) == list(range(TOTAL))
    assert first != second  # a new order: each pass is the next epoch
    reference = make(id_chunks, shuffle=True)
    assert first == ids_of(reference.iter_epochs([0])) and second == ids_of(reference.iter_epochs([1]))
    loader.set_epoch(0)
    assert ids_of(loader) == first  # set_epoch replays an epoch on purpose


# -- async behaviour --------------------------------------------------------------------------------


def test_first_batch_does_not_wait_for_other_chunks_and_in_flight_is_bounded(tmp_path):
    data = write_id_chunks(tmp_path / "d", [20] * 10)
    reader = GatedReader(batch_size=5)
    loader = DataLoader(reader, IdDataset(), None, data, num_workers=4, max_queue_size=3)
    it = iter(loader)
    try:
        first = next(it)  # the other chunks are blocked: this proves no waiting for the queue to fill
        assert first["id"].tolist() == [0, 1, 2, 3, 4]
        with reader.lock:
            assert reader.started <= 3 + 1  # at most max_queue_size submitted (+1 refill after chunk 0)
        reader.release.set()
        rest = ids_of(it)
        assert first["id"].tolist() + rest == list(range(200))
    finally:
        reader.release.set()
        it.close()


def test_stats_count_everything(id_chunks):
    loader = make(id_chunks, num_workers=2)
    n = len(ids_of(loader))
    s = loader.stats()
    assert s["samples"] == n == TOTAL
    assert s["batches"] == -(-TOTAL // 8)
    assert s["units"] == 7
    assert s["bytes_read"] == sum(p.stat().st_size for p in id_chunks.iterdir())
    assert s["wait_s"] >= 0 and sum(s["worker_busy_s"].values()) > 0
    assert s["skipped_count"] == 0


def test_bad_options_are_config_errors(id_chunks):
    with pytest.raises(ConfigError, match="max_queue_size"):
        make(id_chunks, max_queue_size=0)
    with pytest.raises(ConfigError, match="worker_type"):
        make(id_chunks, worker_type="fiber")
    with pytest.raises(ConfigError, match="rank must be < world_size"):
        make(id_chunks, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="valid options"):
        make(id_chunks, num_wrokers=2)
    with pytest.raises(ConfigError, match="datareader"):
        DataLoader(object(), None, None, id_chunks)
    with pytest.raises(ConfigError, match="num_epoch must be an int >= 1, got 0"):
        make(id_chunks, num_epoch=0)  # used to yield nothing, silently


def test_reader_by_name(id_chunks):
    loader = DataLoader("jsonl", None, None, id_chunks, batch_size=7)
    assert len(next(iter(loader))["id"]) == 7
    loader.close()


def test_world_size_gives_disjoint_equal_shards(id_chunks):
    per_rank = [ids_of(make(id_chunks, rank=r, world_size=3, shuffle=True)) for r in range(3)]
    flat = [i for ids in per_rank for i in ids]
    assert len(flat) == len(set(flat)) == TOTAL - TOTAL % 3
    assert len({len(ids) for ids in per_rank}) == 1


def test_threads_are_named_and_counted(id_chunks):
    loader = make(id_chunks, num_workers=2)
    it = iter(loader)
    next(it)
    names = [t.name for t in threading.enumerate() if t.name.startswith("pyloader-")]
    assert len(names) == 2 and it.workers_alive() == 2
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("pyloader-")]


def test_stream_does_not_depend_on_cached_counts(tmp_path):
    data = write_id_chunks(tmp_path / "d", [5, 0, 9, 3, 7])
    plain = ids_of(make(data, shuffle=True, shuffle_buffer=2))
    counted = make(data, shuffle=True, shuffle_buffer=2)
    assert len(counted) == 3  # caches the sample counts
    assert ids_of(counted) == plain


def test_process_pool_first_chunk_is_read_by_the_consumer(id_chunks):
    """Spawned workers need a while to start; the first chunk must not wait for them."""
    loader = make(id_chunks, num_workers=2, worker_type="process", start_method="spawn")
    assert ids_of(loader) == list(range(TOTAL))
    busy = loader.stats()["worker_busy_s"]
    assert -1 in busy and set(busy) - {-1}  # the consumer read one chunk, the workers the rest
