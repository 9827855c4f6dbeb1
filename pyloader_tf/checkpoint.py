"""Saving the loader's position with a TensorFlow training checkpoint."""

from __future__ import annotations

import json
import logging
from typing import Any

import tensorflow as tf

from pyloader_core.errors import ConfigError
from pyloader_tf.source import TFEpochSource
from pyloader_tf.distribute import DistributedDatasetFn

__all__ = ["TFLoaderState"]

logger = logging.getLogger(__name__)


class TFLoaderState(tf.train.experimental.PythonState):
    """A :class:`tf.train.Checkpoint` entry holding the input pipelines' positions.

    ``target``: a dataset from :func:`~pyloader_tf.make_tf_dataset` (or its ``pyloader``
    :class:`~pyloader_tf.TFEpochSource`), or a :class:`~pyloader_tf.DistributedDatasetFn` (every
    input pipeline built in this process). Saved as a small JSON string (epoch and position in the
    plan, and a fingerprint of the data files, never data).

    The position saved is the one after the batches each input pipeline handed to *training*, not
    after what tf.data prefetched: ``steps * batches_per_step`` batches of the training iteration,
    the steps being recorded by :class:`~pyloader_tf.EpochSyncCallback` during ``model.fit`` or by
    ``record_steps`` in a custom loop (without either, the position after the last batch produced).
    One step takes one batch of a dataset whose global batch a strategy splits
    (``experimental_distribute_dataset``, Keras ``fit`` under any strategy) and one batch per
    replica of each pipeline under ``distribute_datasets_from_function``. Restoring makes the next
    iteration continue exactly after those batches (Keras's first-batch peek under a strategy does
    not use the restored position up when ``EpochSyncCallback`` is passed to ``fit``). Restoring
    onto other data files (added, removed, renamed, resized, rewritten) raises
    :class:`~pyloader_core.ConfigError` naming what changed, unless ``strict_files=False``.

    Example::

        ds = make_tf_dataset(reader, dataset, TFCollator(), "data/", shuffle=True)
        ckpt = tf.train.Checkpoint(model=model, loader=TFLoaderState(ds))
        model.fit(ds.map(to_xy), epochs=3, callbacks=[EpochSyncCallback(ds), SaveEvery(ckpt, 100)])
        ...
        ckpt.restore(tf.train.latest_checkpoint("ckpt"))  # the next pass over ds resumes
    """

    def __init__(self, target: Any, *, strict_files: bool = True) -> None:
        if not isinstance(target, (TFEpochSource, DistributedDatasetFn)):
            source = getattr(target, "pyloader", None)
            if not isinstance(source, TFEpochSource):
                raise ConfigError(
                    f"TFLoaderState: {type(target).__name__} is not a dataset from make_tf_dataset (chained datasets "
                    "lose the link: pass the one make_tf_dataset returned), a TFEpochSource or a DistributedDatasetFn"
                )
            target = source
        self.target = target
        self.strict_files = strict_files

    @property
    def source(self) -> TFEpochSource:
        """The :class:`~pyloader_tf.TFEpochSource` (for a single dataset; ``ConfigError`` for a function)."""
        if not isinstance(self.target, TFEpochSource):
            raise ConfigError("this TFLoaderState holds a DistributedDatasetFn: see .target.sources")
        return self.target

    def serialize(self) -> str:
        state = self.target.state_dict()
        logger.debug("checkpointing loader state %s", state)
        return json.dumps(state)

    def deserialize(self, string_value: bytes | str) -> None:
        text = string_value.decode() if isinstance(string_value, bytes) else string_value
        self.target.load_state_dict(json.loads(text), strict_files=self.strict_files)
