"""Saving the TF path's position with a tf.train.Checkpoint and resuming exactly."""

from __future__ import annotations

import json
import logging
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYLOADER_REQUIRE_ALL") == "1":
    import tensorflow as tf
else:
    tf = pytest.importorskip("tensorflow", reason="the TensorFlow adapter needs tensorflow")

from helpers import write_id_chunks  # noqa: E402

from pyloader_core import ConfigError, JsonLineDataReader  # noqa: E402
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


def _checkpoint_after(tmp_path, data, stop=2):
    ds = make(data)
    it = iter(ds)
    head = [next(it)["id"].numpy().tolist() for _ in range(stop)]
    ds.pyloader.consumed_batches = stop
    path = tf.train.Checkpoint(loader=TFLoaderState(ds.pyloader)).save(str(tmp_path / "ckpt" / "step"))
    state = ds.pyloader.state_dict()  # what the checkpoint holds
    del it
    return head, path, state


def test_restoring_onto_changed_files_names_the_change(tmp_path):
    data = write_id_chunks(tmp_path / "d", SIZES)
    _, path, _ = _checkpoint_after(tmp_path, data)
    (data / "chunk001.jsonl").rename(data / "tmp")
    (data / "chunk002.jsonl").rename(data / "chunk001.jsonl")
    (data / "tmp").rename(data / "chunk002.jsonl")  # two files swap names
    resumed = make(data)
    with pytest.raises(ConfigError, match=r"chunk001\.jsonl <-> chunk002\.jsonl"):
        tf.train.Checkpoint(loader=TFLoaderState(resumed.pyloader)).restore(path).assert_consumed()


def test_strict_files_false_restores_onto_changed_files(tmp_path, caplog):
    data = write_id_chunks(tmp_path / "d", SIZES)
    head, path, saved = _checkpoint_after(tmp_path, data)
    assert len(head) == 2
    write_id_chunks(data, [4], prefix="extra")  # a file added
    resumed = make(data)
    with caplog.at_level(logging.WARNING, logger="pyloader_core.runtime.loader"):
        tf.train.Checkpoint(loader=TFLoaderState(resumed.pyloader, strict_files=False)).restore(path).assert_consumed()
    assert any("added: extra000.jsonl" in r.getMessage() for r in caplog.records)
    tail = ids(resumed)
    assert len([i for b in tail for i in b]) == sum(SIZES) + 4 - 2 * 6  # the rest of the current files' epoch
    with pytest.raises(ConfigError, match="added: extra000.jsonl"):
        make(data).pyloader.load_state_dict(saved)  # the source itself checks at once, strict by default
    source = make(data).pyloader
    source.load_state_dict(saved, strict_files=False)
    assert ids(source.dataset()) == tail


def test_cardinality_counts_one_epoch(tmp_path):
    data = write_id_chunks(tmp_path / "d", SIZES)
    ds = make_tf_dataset(JsonLineDataReader(batch_size=6), None, TFCollator(), data, count_batches=True, shuffle=True)
    per_epoch = -(-sum(SIZES) // 6)
    assert int(ds.cardinality()) == len(ds) == per_epoch == ds.pyloader.loader.batches_per_epoch()
    assert len(ids(ds)) == len(ids(ds)) == per_epoch  # every iteration is one epoch of that many
    assert ds.pyloader.next_epoch == 2


def test_peek_before_training_does_not_use_up_the_restored_position(tmp_path):
    """Keras 3's fit under a strategy peeks at a batch before on_train_begin; EpochSyncCallback re-arms."""
    from pyloader_tf import EpochSyncCallback

    data = write_id_chunks(tmp_path / "d", SIZES)
    full = ids(make(data))
    ds = make(data)
    it = iter(ds)
    head = [next(it)["id"].numpy().tolist() for _ in range(4)]
    ds.pyloader.batches_per_step = 2  # e.g. two replicas fed by this pipeline
    ds.pyloader.record_steps(2)  # 2 steps: 4 batches handed to training
    state = ds.pyloader.state_dict()
    del it

    resumed = make(data)
    resumed.pyloader.load_state_dict(state)
    assert resumed.pyloader.state_dict() == state  # saved again before resuming: the same position
    callback = EpochSyncCallback(resumed)
    next(iter(resumed))  # the peek takes the restored position...
    callback.on_train_begin()  # ... and is recognised: nothing of it was counted as trained on
    callback.on_epoch_begin(0)
    tail = ids(resumed)
    callback.on_train_batch_end(len(tail) - 1)
    assert head + tail == full
    callback.on_train_end()
    assert ids(resumed) and resumed.pyloader.next_epoch == 2  # then the next epoch, from its start
    with pytest.raises(ConfigError, match="batches_per_step"):
        resumed.pyloader.batches_per_step = 0


def test_declared_cardinality_and_a_mid_epoch_state(tmp_path):
    data = write_id_chunks(tmp_path / "d", SIZES)
    ds = make(data)
    it = iter(ds)
    next(it)
    ds.pyloader.record_steps(1)
    state = ds.pyloader.state_dict()
    del it
    counted = make_tf_dataset(JsonLineDataReader(batch_size=6), None, TFCollator(), data, shuffle=True,
                              shuffle_buffer=2, count_batches=True)
    with pytest.raises(ConfigError, match="restore the state before building the dataset"):
        counted.pyloader.load_state_dict(state)
    source = counted.pyloader
    source.load_state_dict({**state, "loader": {**state["loader"], "offset": 0, "window": 0}})  # epoch start: fine
    assert len(ids(source.dataset())) == -(-sum(SIZES) // 6)
