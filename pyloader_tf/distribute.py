"""A dataset function for ``strategy.distribute_datasets_from_function``: one loader shard per input pipeline."""

from __future__ import annotations

import logging
import threading
from typing import Any

import tensorflow as tf

from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.errors import ConfigError
from pyloader_core.loader import DataLoader
from pyloader_core.reader import DataReader
from pyloader_tf.collator import TFCollator
from pyloader_tf.dataset import DataDir, TFEpochSource, batch_cardinality, infer_loader_signature
from pyloader_tf.signature import VariableDims

__all__ = ["DistributedDatasetFn", "make_distributed_dataset_fn"]

logger = logging.getLogger(__name__)


class DistributedDatasetFn:
    """``fn(input_context) -> tf.data.Dataset``: input pipeline ``i`` of ``n`` reads rank ``i`` of ``n``.

    Each call builds a loader with ``rank=input_context.input_pipeline_id`` and
    ``world_size=input_context.num_input_pipelines``: the pipelines get disjoint shards of equal size
    that together hold every sample of the epoch once (the ``total % n`` remainder is dropped and
    counted in ``loader.stats()["dropped_samples"]``), so they yield the same number of batches.
    With ``global_batch_size`` each pipeline batches
    ``input_context.get_per_replica_batch_size(global_batch_size)`` samples. The signature is
    inferred once (first call) and shared by every pipeline. Built by :func:`make_distributed_dataset_fn`.

    Attributes:
        sources: the :class:`~pyloader_tf.TFEpochSource` of each input pipeline id built so far.
        output_signature: the signature every pipeline uses (``None`` until the first call when inferred).

    Example::

        fn = make_distributed_dataset_fn(JsonLineDataReader(), TextDataset("vocab.txt"), TFCollator(), "data/",
                                         global_batch_size=256, shuffle=True, num_workers=2)
        dist = strategy.distribute_datasets_from_function(fn)
    """

    def __init__(
        self,
        datareader: DataReader | str,
        dataset: Dataset | None,
        datacollator: DataCollator | None,
        data_dir: DataDir,
        output_signature: Any = None,
        *,
        global_batch_size: int | None = None,
        variable_dims: VariableDims | None = None,
        count_batches: bool | None = None,
        check: bool = True,
        loader_options: dict[str, Any],
    ) -> None:
        clash = sorted({"rank", "world_size"} & set(loader_options))
        if clash:
            raise ConfigError(f"{clash} come from the tf.distribute.InputContext; do not pass them")
        if global_batch_size is not None:
            if "batch_size" in loader_options:
                raise ConfigError("pass global_batch_size or batch_size, not both")
            if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size < 1:
                raise ConfigError(f"global_batch_size must be an int >= 1, got {global_batch_size!r}")
        if output_signature is not None and variable_dims is not None:
            raise ConfigError("variable_dims only applies when output_signature is inferred; pass one or the other")
        self._args = (datareader, dataset, datacollator if datacollator is not None else TFCollator(), data_dir)
        self.global_batch_size = global_batch_size
        self.variable_dims = variable_dims
        self.count_batches = count_batches
        self.check = check
        self.loader_options = dict(loader_options)
        self.output_signature = output_signature
        self.sources: dict[int, TFEpochSource] = {}
        self._lock = threading.Lock()

    def __call__(self, input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        """The dataset of input pipeline ``input_context.input_pipeline_id``."""
        options = dict(self.loader_options)
        # Process workers start once per input pipeline, not once per epoch (threads start in microseconds).
        options.setdefault("persistent_workers", options.get("worker_type") == "process")
        options["rank"] = input_context.input_pipeline_id
        options["world_size"] = input_context.num_input_pipelines
        if self.global_batch_size is not None:
            options["batch_size"] = input_context.get_per_replica_batch_size(self.global_batch_size)
        loader = DataLoader(*self._args, **options)
        with self._lock:
            if self.output_signature is None:
                self.output_signature = infer_loader_signature(loader, self.variable_dims)
            signature = self.output_signature
        source = TFEpochSource(loader, signature, check=self.check)
        self.sources[input_context.input_pipeline_id] = source
        logger.info(
            "input pipeline %d of %d: batch_size %d",
            input_context.input_pipeline_id,
            input_context.num_input_pipelines,
            loader.batch_size,
        )
        return source.dataset(batch_cardinality(loader, self.count_batches))


def make_distributed_dataset_fn(
    datareader: DataReader | str,
    dataset: Dataset | None,
    datacollator: DataCollator | None,
    data_dir: DataDir,
    output_signature: Any = None,
    *,
    global_batch_size: int | None = None,
    variable_dims: VariableDims | None = None,
    count_batches: bool | None = None,
    check: bool = True,
    **loader_options: Any,
) -> DistributedDatasetFn:
    """A function for ``strategy.distribute_datasets_from_function`` that shards by ``InputContext``.

    Arguments are those of :func:`~pyloader_tf.make_tf_dataset` (except ``rank``/``world_size``,
    which the input context sets), plus ``global_batch_size``: when given, each pipeline's batch
    size is ``input_context.get_per_replica_batch_size(global_batch_size)``. See
    :class:`DistributedDatasetFn`.

    Example::

        strategy = tf.distribute.MirroredStrategy()
        fn = make_distributed_dataset_fn("jsonl", TextDataset("vocab.txt"), None, "data/",
                                         global_batch_size=64 * strategy.num_replicas_in_sync, shuffle=True)
        dist_ds = strategy.distribute_datasets_from_function(fn)

        # or simulate pipeline 1 of 2 directly:
        ds = fn(tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2))
    """
    return DistributedDatasetFn(
        datareader,
        dataset,
        datacollator,
        data_dir,
        output_signature,
        global_batch_size=global_batch_size,
        variable_dims=variable_dims,
        count_batches=count_batches,
        check=check,
        loader_options=loader_options,
    )
