"""What crosses from workers: numeric lists as arrays (exactly), results in anonymous shared memory."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from helpers import IdReader

from pyloader_core import DataCollator, DataLoader, Dataset, NumpyDataCollator
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


# -- result buffers that go round (recycle.py) ---------------------------------------------------------


def _across(packed_fd):
    """What the consumer gets: the descriptor duplicated, as SCM_RIGHTS does between processes."""
    packed, fd = packed_fd
    return packed, (None if fd is None else os.dup(fd))


def test_a_buffer_is_reused_only_once_every_array_over_it_is_gone():
    from pyloader_core.runtime.recycle import ConsumerMaps, WorkerBuffers

    worker, consumer = WorkerBuffers(), ConsumerMaps(keep=2)
    first = consumer.unpack(*_across(worker.pack({"a": np.full(50_000, 1)})))
    part = first["a"][10:20]  # a view keeps the whole buffer lent
    del first
    worker.take_back(consumer.returns())
    packed, fd = _across(worker.pack({"a": np.full(50_000, 2)}))
    assert packed.buffer == 1 and fd is not None  # buffer 0 is still seen through ``part``: a new one
    second = consumer.unpack(packed, fd)
    assert part.tolist() == [1] * 10 and second["a"][0] == 2
    del part
    worker.take_back(consumer.returns())
    packed, fd = _across(worker.pack({"a": np.full(50_000, 3)}))
    assert packed.buffer == 0 and fd is None  # back in use, and the consumer still has it mapped
    third = consumer.unpack(packed, fd)
    assert third["a"].tolist() == [3] * 50_000 and second["a"].tolist() == [2] * 50_000
    third["a"][0] = -1  # writable, as a one-off mapping is
    worker.close()
    consumer.close()


def test_free_buffers_beyond_keep_are_dropped_and_small_ones_retired():
    from pyloader_core.runtime.recycle import ConsumerMaps, WorkerBuffers

    worker, consumer = WorkerBuffers(), ConsumerMaps(keep=1)
    held = [consumer.unpack(*_across(worker.pack({"a": np.zeros(1000)}))) for _ in range(3)]
    del held
    returns = consumer.returns()
    assert returns is not None and len(returns.free) == 1 and len(returns.drop) == 2
    worker.take_back(returns)
    big = {"a": np.zeros(3 << 20)}  # larger than the free buffer: it is retired, a new one made
    packed, fd = _across(worker.pack(big))
    assert fd is not None and packed.retired == returns.free
    assert consumer.unpack(packed, fd)["a"].shape == (3 << 20,)
    assert set(consumer._maps) == {packed.buffer}
    worker.close()
    consumer.close()


class WideDataset(Dataset):
    """Each sample's id repeated across 300 columns: results big enough to matter, easy to check."""

    def batch_encode(self, batch):
        ids = np.asarray(batch["id"], dtype=np.int64)
        return {"id": ids, "wide": np.repeat(ids[:, None], 300, axis=1)}


def test_batches_kept_by_the_user_are_never_overwritten_by_later_results(tmp_path):
    from helpers import write_id_chunks

    files = write_id_chunks(tmp_path / "data", [40] * 12)
    loader = DataLoader(IdReader(batch_size=8), WideDataset(), NumpyDataCollator(), str(files), num_workers=2,
                        worker_type="process")
    kept = list(loader)  # every batch alive at once: no buffer can come back until the end
    again = list(loader)  # a second epoch, reusing what the first let go of
    for batch in kept + again:
        assert (batch["wide"] == np.asarray(batch["id"])[:, None]).all()
    assert sorted(int(i) for b in kept for i in b["id"]) == list(range(480))
    loader.close()
