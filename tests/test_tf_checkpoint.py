"""Saving the TF path's position with a tf.train.Checkpoint and resuming exactly."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYLOADER_REQUIRE_ALL") == "1":
    import tensorflow as tf
else:
    tf = pytest.importorskip("tensorflow", reason="the TensorFlow adapter needs tensorflow")

from helpers import write_id_chunks  # noqa: E402

from pyloader_core import JsonLineDataReader  # noqa: E402
from pyloader_tf import TFCollator, TFLoaderState, make_tf_dataset  # noqa: E402

SIZES = [13, 7, 21, 9, 17]


def make(data):
    return make_tf_dataset(JsonLineDataReader(batch_size=6), None, TFCollator(), data, shuffle=True, shuffle_buffer=2)


def ids(batches):
    return [b["id"].numpy().tolist() for b in batches]


@pytest.mark.parametrize("stop", [1, 5, 9])
def test_checkpoint_restores_the_stream_after_the_consumed_batch(tmp_path, stop):
    data = write_id_chunks(tmp_path / "d", SIZES)
    full = ids(make(data))  # epoch 0, uninterrupted
    ds = make(data)
    it = iter(ds.prefetch(4))  # tf.data reads ahead of what the "model" has consumed
    head = [next(it)["id"].numpy().tolist() for _ in range(stop)]
    ckpt = tf.train.Checkpoint(loader=TFLoaderState(ds.pyloader))
    ds.pyloader.consumed_batches = stop  # what EpochSyncCallback records during model.fit
    path = ckpt.save(str(tmp_path / "ckpt" / "step"))
    del it

    resumed = make(data)
    tf.train.Checkpoint(loader=TFLoaderState(resumed.pyloader)).restore(path).assert_consumed()
    tail = ids(resumed)
    assert head + tail == full
    assert sorted(i for b in full for i in b) == list(range(sum(SIZES)))
    assert ids(resumed)  # the next pass is the next epoch, from its start
    assert resumed.pyloader.next_epoch == 2


def test_state_is_small_json(tmp_path):
    data = write_id_chunks(tmp_path / "d", SIZES)
    ds = make(data)
    it = iter(ds)
    next(it)
    state = ds.pyloader.state_dict(consumed=1)
    assert json.loads(json.dumps(state)) == state and state["epoch"] == 0
    assert state["loader"]["offset"] == 6  # after the one batch consumed, whatever tf.data read ahead
