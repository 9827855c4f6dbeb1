"""``batch_encode`` sees exactly one batch, as in the original PyLoader: per-batch dynamic padding works
with threads, processes, shuffling and shuffle windows, and batches still span chunks when counts are known."""

from __future__ import annotations

import pytest
from helpers import DynamicPadDataset, IdReader, write_id_chunks

from pyloader_core import DataLoader

MODES = [
    dict(num_workers=0),
    dict(num_workers=2),
    dict(num_workers=2, worker_type="process"),
    dict(num_workers=2, worker_type="process", start_method="spawn"),
]
IDS = ["inline", "threads", "fork", "spawn"]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
@pytest.mark.parametrize("layout", [dict(), dict(shuffle=True), dict(shuffle=True, shuffle_buffer=3)],
                         ids=["ordered", "shuffled", "window"])
def test_each_batch_is_one_batch_encode_call_padded_to_its_own_longest(tmp_path, mode, layout):
    data = write_id_chunks(tmp_path / "d", [13 + c for c in range(7)])
    loader = DataLoader(IdReader(batch_size=5), DynamicPadDataset(5), None, data, **layout, **mode)
    batches = list(loader)
    ids = [i for b in batches for i in b["id"].tolist()]
    assert sorted(ids) == list(range(112))
    for b in batches:
        assert len(set(b["call"].tolist())) == 1 and b["call"][0] == b["id"].min()  # one call, this batch
        lengths = (b["input_ids"] != 0).sum(axis=1)
        assert b["input_ids"].shape[1] == lengths.max()  # padded to this batch's longest, not the chunk's
    # IdReader counts its files (count_samples): batches span chunks and windows, all full but the last.
    assert [len(b["id"]) for b in batches] == [5] * 22 + [2]


def test_without_counts_each_chunk_ends_with_its_own_batch(tmp_path):
    class Uncounted(IdReader):
        def count_samples(self, path):
            return None

    data = write_id_chunks(tmp_path / "d", [13, 14, 15])
    sizes = [len(b["id"]) for b in DataLoader(Uncounted(batch_size=5), DynamicPadDataset(5), None, data)]
    assert sizes == [5, 5, 3, 5, 5, 4, 5, 5, 5]  # as the original PyLoader: batches never span files


def test_resume_inside_a_joined_batch_region_gives_the_same_batches(tmp_path):
    data = write_id_chunks(tmp_path / "d", [13 + c for c in range(7)])
    make = lambda: DataLoader(IdReader(batch_size=5), DynamicPadDataset(5), None, data, shuffle=True,
                              shuffle_buffer=2, num_workers=2)
    full = [b["id"].tolist() for b in make()]
    for stop in (1, 2, 3, 5, 8, 13):
        loader = make()
        it = iter(loader)
        head = [next(it)["id"].tolist() for _ in range(stop)]
        state = loader.state_dict()
        it.close()
        again = make()
        again.load_state_dict(state)
        rest = [b["id"].tolist() for b in again]
        assert head + rest == full, stop
    assert {len(b) for b in full[:-1]} == {5}  # joined across windows: full batches but the last
