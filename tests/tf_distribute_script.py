"""Child process of ``test_tf_distribute.py``: real tf.distribute runs that save mid-epoch and resume.

``mirrored OUT DATA``: MirroredStrategy over 2 logical CPUs, in one process; three runs, each
training part of an epoch, saving a ``tf.train.Checkpoint`` with a ``TFLoaderState``, then resuming
with fresh datasets, models and iterators and finishing the epoch: a custom loop over
``distribute_datasets_from_function`` (one input pipeline, two batches per step), Keras ``fit`` over
the same, and Keras ``fit`` over a ``make_tf_dataset`` dataset (Keras splits each global batch).
Writes ``OUT/mirrored.json``: the ids each run trained on before and after the checkpoint.

``mwms OUT DATA PHASE``: one worker of MultiWorkerMirroredStrategy (``TF_CONFIG`` from the
environment), a custom loop; phase ``save`` trains ``STOP`` steps and checkpoints, phase ``resume``
restores and finishes the epoch. Writes ``OUT/mwms-PHASE-INDEX.json``.

The ids trained on are those training actually received (per replica, in the step), never what
the input pipeline prefetched.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH = 20
STOP = 4  # steps trained before the checkpoint


def local_ids(strategy: Any, values: Any) -> list[int]:
    return [int(i) for v in strategy.experimental_local_results(values) for i in v.numpy()]


def mirrored(out: Path, data: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from pyloader_core import JsonLineDataReader
    from pyloader_tf import EpochSyncCallback, TFCollator, TFLoaderState, make_distributed_dataset_fn, make_tf_dataset

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    results: dict[str, Any] = {}

    def make_fn() -> Any:
        return make_distributed_dataset_fn(JsonLineDataReader(batch_size=1), None, TFCollator(), data,
                                           global_batch_size=GLOBAL_BATCH, shuffle=True, random_seed=3)

    # 1. Custom loop over distribute_datasets_from_function: each step takes 2 batches of the pipeline.
    with strategy.scope():
        weight = tf.Variable(0.0)

    def step(batch: Any) -> Any:
        weight.assign_add(tf.cast(tf.reduce_sum(batch["id"]), tf.float32) / 1e6)  # a real replica update
        return batch["id"]

    fn = make_fn()
    it = iter(strategy.distribute_datasets_from_function(fn))
    head: list[int] = []
    for k in range(STOP):
        head += local_ids(strategy, strategy.run(step, (next(it),)))
        fn.record_steps(k + 1)
    results["loop_batches_per_step"] = fn.sources[0].batches_per_step
    results["loop_consumed"] = fn.sources[0].consumed_batches
    path = tf.train.Checkpoint(loader=TFLoaderState(fn)).write(str(out / "loop" / "ckpt"))
    del it
    fn = make_fn()
    tf.train.Checkpoint(loader=TFLoaderState(fn)).read(path).assert_consumed()  # before the pipeline exists
    tail = [i for batch in strategy.distribute_datasets_from_function(fn)
            for i in local_ids(strategy, strategy.run(step, (batch,)))]
    results["loop"] = {"head": head, "tail": tail}

    # 2. and 3. Keras fit: what train_step receives, recorded per replica.
    seen: list[int] = []

    def record(ids: Any) -> Any:
        seen.extend(int(i) for i in ids.numpy())
        return ids

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs: Any) -> Any:
            return self.dense(inputs["x"])

        def train_step(self, data: Any) -> Any:
            x, y = data
            ids = tf.py_function(record, [x["id"]], tf.int64)
            with tf.control_dependencies([ids]):
                y = tf.identity(y)
            return super().train_step((x, y))

    def to_xy(b: Any) -> Any:
        x = tf.cast(b["id"], tf.float32)[:, None] / 1000.0
        return {"x": x, "id": b["id"]}, tf.cast(b["label"], tf.float32)[:, None]

    def model() -> Any:
        with strategy.scope():
            net = Net()
            net.compile(optimizer="sgd", loss="mse")
        return net

    class SaveAndStop(keras.callbacks.Callback):
        def __init__(self, ckpt: Any, where: str) -> None:
            super().__init__()
            self.ckpt, self.where, self.path = ckpt, where, None

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch + 1 == STOP:
                self.path = self.ckpt.write(self.where)
                self.model.stop_training = True

    for name in ("fit_fn", "fit_split"):
        runs = []
        path = None
        for phase in ("save", "resume"):
            seen.clear()
            if name == "fit_fn":
                fn = make_fn()
                target: Any = fn
                x = strategy.distribute_datasets_from_function(lambda ctx, fn=fn: fn(ctx).map(to_xy))
            else:
                ds = make_tf_dataset(JsonLineDataReader(batch_size=GLOBAL_BATCH), None, TFCollator(), data,
                                     shuffle=True, random_seed=3)
                target, x = ds, ds.map(to_xy)
            ckpt = tf.train.Checkpoint(loader=TFLoaderState(target))
            sync = EpochSyncCallback(target)  # listed before the saver: it counts the step first
            if phase == "save":
                saver = SaveAndStop(ckpt, str(out / name / "ckpt"))
                model().fit(x, epochs=1, verbose=0, shuffle=False, callbacks=[sync, saver])
                path = saver.path
            else:
                ckpt.read(path).assert_consumed()
                model().fit(x, epochs=1, verbose=0, shuffle=False, callbacks=[sync])
            runs.append(list(seen))
        results[name] = {"head": runs[0], "tail": runs[1]}
    (out / "mirrored.json").write_text(json.dumps(results))


def mwms(out: Path, data: str, phase: str) -> None:
    from pyloader_core import JsonLineDataReader
    from pyloader_tf import TFCollator, TFLoaderState, make_distributed_dataset_fn

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2
    fn = make_distributed_dataset_fn(JsonLineDataReader(batch_size=1), None, TFCollator(), data,
                                     global_batch_size=GLOBAL_BATCH, shuffle=True, random_seed=5)
    with strategy.scope():
        weight = tf.Variable(0.0)

    @tf.function
    def train(batch: Any) -> Any:
        def step(b: Any) -> Any:
            # An all-reduce across the workers: the step is really distributed.
            total = tf.distribute.get_replica_context().all_reduce("SUM", tf.cast(tf.size(b["id"]), tf.float32))
            weight.assign_add(total)
            return b["id"]

        return strategy.run(step, (batch,))

    ckpt = tf.train.Checkpoint(weight=weight, loader=TFLoaderState(fn))
    where = str(out / f"ckpt-worker{index}" / "ckpt")  # each worker its own checkpoint (its own pipeline)
    ids: list[int] = []
    if phase == "save":
        it = iter(strategy.distribute_datasets_from_function(fn))
        for k in range(STOP):
            ids += local_ids(strategy, train(next(it)))
            fn.record_steps(k + 1)
        ckpt.write(where)
        del it
    else:
        ckpt.read(where).assert_consumed()
        for batch in strategy.distribute_datasets_from_function(fn):
            ids += local_ids(strategy, train(batch))
    source = fn.sources[index]
    result = {"index": index, "ids": ids, "weight": float(weight.numpy()), "pipelines": sorted(fn.sources),
              "batches_per_step": source.batches_per_step, "dropped": source.loader.stats()["dropped_samples"]}
    (out / f"mwms-{phase}-{index}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    mode, out_dir, data_dir = sys.argv[1:4]
    np.random.seed(0)
    if mode == "mirrored":
        mirrored(Path(out_dir), data_dir)
    else:
        mwms(Path(out_dir), data_dir, sys.argv[4])
