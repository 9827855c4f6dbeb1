"""What crosses from workers: numeric lists as arrays (exactly), results in anonymous shared memory."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from helpers import IdReader

from pyloader_core import DataCollator, DataLoader, Dataset
from pyloader_core.runtime import transport
from pyloader_core.runtime.arrays import numeric_lists_to_arrays
from pyloader_core.runtime.channel import ChannelClosed, pair


def test_rectangular_numbers_become_arrays_and_nothing_else_does():
    out = numeric_lists_to_arrays({
        "ids": [[1, 2, 3], [4, 5, 6]],
        "score": [0.5, 1.5],
        "flag": [True, False],
        "text": ["a", "b"],
        "ragged": [[1, 2], [3]],
        "mixed": [1, 2.5],
        "bools_then_ints": [True, 2],
        "huge": [2**70, 1],
        "none": [None, 1],
        "empty": [],
    })
    assert out["ids"].dtype == np.int64 and out["ids"].shape == (2, 3)
    assert out["score"].dtype == np.float64 and out["flag"].dtype == np.bool_
    for key in ("text", "ragged", "mixed", "bools_then_ints", "huge", "none", "empty"):
        assert isinstance(out[key], list), key  # left exactly as batch_encode made them


class ListTextDataset(Dataset):
    def batch_encode(self, batch):
        return {"id": list(batch["id"]), "pair": [[i, i + 1] for i in batch["id"]], "text": list(batch["input_text"])}


class SeeingCollator(DataCollator):
    def __init__(self, keep_lists: bool = False) -> None:
        self.keep_lists = keep_lists

    def collate_batch(self, batch):
        return {k: type(v).__name__ for k, v in batch.items()} | {"id_values": np.asarray(batch["id"])}


@pytest.mark.parametrize("mode", [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, worker_type="process")])
def test_collate_batch_sees_arrays_unless_the_collator_keeps_lists(id_chunks, mode):
    for keep, expected in ((False, "ndarray"), (True, "list")):
        loader = DataLoader(IdReader(batch_size=5), ListTextDataset(), SeeingCollator(keep), id_chunks, **mode)
        batches = list(loader)
        assert {b["id"] for b in batches} == {b["pair"] for b in batches} == {expected}
        assert {b["text"] for b in batches} == {"list"}  # strings stay lists either way
        assert sorted(i for b in batches for i in b["id_values"].tolist()) == list(range(112))


def test_transport_round_trip_is_a_writable_view_and_small_results_travel_inline():
    obj = {"a": np.arange(200_000).reshape(2000, 100), "s": ["x", "y"]}
    packed, fd = transport.pack(obj)
    assert packed.inline is None and fd is not None and packed.buffers
    back = transport.unpack(packed, fd)
    assert np.array_equal(back["a"], obj["a"]) and back["s"] == ["x", "y"]
    back["a"][0, 0] = -1  # the consumer may modify its batch in place
    with pytest.raises(OSError):
        os.fstat(fd)  # unpack closed the descriptor: the mapping alone keeps the memory
    small, none = transport.pack({"x": [1, 2]})
    assert none is None and transport.unpack(small, None) == {"x": [1, 2]}


def test_unpicklable_part_names_column_and_type():
    assert transport.unpicklable_part({"ok": [1], "bad": [1, threading.Lock()]}) == (
        "column 'bad' holds a _thread.lock, which cannot be pickled"
    )
    assert transport.unpicklable_part({"ok": [1]}) is None


def test_channel_carries_descriptors_and_reports_the_other_side_gone():
    mine, theirs = pair()
    r, w = os.pipe()
    mine.send({"hello": 1}, (w,))
    os.close(w)
    from pyloader_core.runtime.channel import Channel

    other = Channel(theirs)
    message, fds = other.recv()
    assert message == {"hello": 1} and len(fds) == 1
    os.write(fds[0], b"via the passed descriptor")
    os.close(fds[0])
    assert os.read(r, 100) == b"via the passed descriptor"
    os.close(r)
    mine.close()
    with pytest.raises(ChannelClosed):
        other.recv()
    other.close()
