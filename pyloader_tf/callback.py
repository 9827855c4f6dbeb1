"""A Keras callback that ties ``model.fit``'s epoch numbers to the loader's epochs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import keras

from pyloader_core.errors import ConfigError
from pyloader_tf.dataset import TFEpochSource
from pyloader_tf.distribute import DistributedDatasetFn

__all__ = ["EpochSyncCallback"]

logger = logging.getLogger(__name__)


class EpochSyncCallback(keras.callbacks.Callback):
    """At the start of fit epoch ``e``, makes the next iteration of each target the loader's epoch ``offset + e``.

    Without it, each new iteration of a dataset from :func:`~pyloader_tf.make_tf_dataset` is simply
    the loader's next epoch, which is what a plain ``model.fit`` gives. Use it when fit epochs must
    match loader epochs exactly: resuming with ``initial_epoch``, or under a ``tf.distribute``
    strategy whose iterators prefetch eagerly (Keras opens the next epoch's iterator at the end of an
    epoch; with an eager strategy that iterator starts, and so uses up, a loader epoch).

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

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for source in self._sources():
            source.set_epoch(self.offset + epoch)
            source.consumed_batches = 0
        logger.debug("fit epoch %d reads loader epoch %d", epoch, self.offset + epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # What the model has taken, as opposed to what tf.data prefetched: checkpoints resume here.
        for source in self._sources():
            source.consumed_batches = batch + 1
