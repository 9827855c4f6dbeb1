"""Saving the loader's position with a TensorFlow training checkpoint."""

from __future__ import annotations

import json

import tensorflow as tf

from pyloader_tf.dataset import TFEpochSource

__all__ = ["TFLoaderState"]


class TFLoaderState(tf.train.experimental.PythonState):
    """A :class:`tf.train.Checkpoint` entry holding a :class:`~pyloader_tf.TFEpochSource`'s position.

    Saved as a small JSON string (epoch and position in the plan, and a fingerprint of the data
    files, never data); restoring makes the next iteration of the dataset continue exactly after the
    last batch the model consumed (tracked by :class:`~pyloader_tf.EpochSyncCallback` during
    ``model.fit``, or the last batch produced). Restoring onto other data files (added, removed,
    renamed, resized, rewritten) raises :class:`~pyloader_core.ConfigError` naming what changed,
    unless ``strict_files=False``.

    Example::

        ds = make_tf_dataset(reader, dataset, TFCollator(), "data/", shuffle=True)
        ckpt = tf.train.Checkpoint(model=model, loader=TFLoaderState(ds.pyloader))
        ckpt.save("ckpt/step")
        ...
        ckpt.restore(tf.train.latest_checkpoint("ckpt"))  # the next pass over ds resumes
    """

    def __init__(self, source: TFEpochSource, *, strict_files: bool = True) -> None:
        self.source = source
        self.strict_files = strict_files

    def serialize(self) -> str:
        return json.dumps(self.source.state_dict())

    def deserialize(self, string_value: bytes | str) -> None:
        text = string_value.decode() if isinstance(string_value, bytes) else string_value
        self.source.load_state_dict(json.loads(text), strict_files=self.strict_files)
