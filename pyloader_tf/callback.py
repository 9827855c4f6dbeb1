"""A Keras callback that ties ``model.fit``'s epoch numbers to the loader's epochs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import keras

from pyloader_core.errors import ConfigError
from pyloader_tf.source import TFEpochSource
from pyloader_tf.distribute import DistributedDatasetFn

__all__ = ["EpochSyncCallback"]

logger = logging.getLogger(__name__)


class EpochSyncCallback(keras.callbacks.Callback):
    """Pins fit epoch ``e`` to loader epoch ``offset + e``, and counts what training took, for exact resume.

    Without it, each new iteration of a dataset from :func:`~pyloader_tf.make_tf_dataset` is simply
    the loader's next epoch, which is what a plain ``model.fit`` gives. Use it when fit epochs must
    match loader epochs exactly (resuming with ``initial_epoch``, or under a ``tf.distribute``
    strategy whose iterators prefetch eagerly: Keras opens the next epoch's iterator at the end of an
    epoch, and with an eager strategy that iterator starts, and so uses up, a loader epoch), and
    whenever a :class:`~pyloader_tf.TFLoaderState` checkpoint must resume exactly:

    * ``on_train_batch_end`` records the steps run (``batch + 1``) on each input pipeline, which
      counts ``steps * batches_per_step`` batches as consumed (one batch per step when the
      strategy splits a global batch, the pipeline's replicas under
      ``distribute_datasets_from_function``; see :class:`~pyloader_tf.TFEpochSource`), whatever
      tf.data prefetched;
    * the iteration those batches are counted on is the first one opened after ``on_epoch_begin``
      (not the next epoch's, which Keras may open before ``on_epoch_end``);
    * ``on_train_begin`` re-arms a restored position that Keras 3's first-batch peek (under a
      strategy, ``fit`` pulls one batch to build the model before training starts) took, so the
      first training iteration resumes there.

    Args:
        *targets: datasets returned by ``make_tf_dataset`` (with their ``pyloader`` attribute),
            :class:`~pyloader_tf.TFEpochSource` objects, or :class:`~pyloader_tf.DistributedDatasetFn`
            functions (all their input pipelines).
        offset: loader epoch of fit epoch 0.

    Example::

        ds = make_tf_dataset(reader, dataset, TFCollator(), "data/", shuffle=True)
        model.fit(ds.map(to_xy), epochs=10, initial_epoch=4, callbacks=[EpochSyncCallback(ds)])  # epochs 4..9
    """

    def __init__(self, *targets: Any, offset: int = 0) -> None:
        super().__init__()
        if not targets:
            raise ConfigError("EpochSyncCallback needs at least one dataset, TFEpochSource or DistributedDatasetFn")
        for target in targets:
            if not isinstance(target, (TFEpochSource, DistributedDatasetFn)) and not isinstance(
                getattr(target, "pyloader", None), TFEpochSource
            ):
                raise ConfigError(
                    f"EpochSyncCallback: {type(target).__name__} is not a dataset from make_tf_dataset (chained "
                    "datasets lose the link: pass the one make_tf_dataset returned), a TFEpochSource or a "
                    "DistributedDatasetFn"
                )
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigError(f"offset must be an int >= 0, got {offset!r}")
        self.targets = targets
        self.offset = offset

    def _sources(self) -> Iterator[TFEpochSource]:
        for target in self.targets:
            if isinstance(target, TFEpochSource):
                yield target
            elif isinstance(target, DistributedDatasetFn):
                yield from list(target.sources.values())
            else:
                yield target.pyloader

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for source in self._sources():
            source._fit_begin()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for source in self._sources():
            source._fit_epoch_begin(self.offset + epoch)
        logger.debug("fit epoch %d reads loader epoch %d", epoch, self.offset + epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # What the model has taken, as opposed to what tf.data prefetched: checkpoints resume here.
        for source in self._sources():
            source._fit_record_steps(batch + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for source in self._sources():
            source._fit_end()
