"""A dataset function for ``strategy.distribute_datasets_from_function``: one loader shard per input pipeline."""

from __future__ import annotations

import logging
import threading
from typing import Any

import tensorflow as tf

from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.errors import ConfigError
from pyloader_core.runtime.loader import DataLoader
from pyloader_core.reader import DataReader
from pyloader_tf.collator import TFCollator
from pyloader_tf.dataset import DataDir, batch_cardinality, infer_loader_signature
from pyloader_tf.source import TFEpochSource
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

    Each pipeline feeds ``num_replicas_in_sync // num_input_pipelines`` replicas, one whole batch
    each per step (MirroredStrategy on one machine: one pipeline for all its replicas;
    MultiWorkerMirroredStrategy: one pipeline per worker), which is its source's
    ``batches_per_step``: :meth:`record_steps` (or :class:`~pyloader_tf.EpochSyncCallback` in
    ``model.fit``) then counts the batches each pipeline handed to training, and a
    :class:`~pyloader_tf.TFLoaderState` of this function saves each local pipeline's position after
    them. States loaded before the strategy calls the function wait for the pipeline they belong to.
    Under MultiWorkerMirroredStrategy each worker holds only its own pipeline: each worker must
    restore the checkpoint it wrote itself (a per-worker checkpoint path), not the chief's.

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
        self._pending: tuple[dict[int, dict[str, Any]], bool] | None = None  # loaded states not yet applied
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
        pipeline = input_context.input_pipeline_id
        per_step = max(1, input_context.num_replicas_in_sync // input_context.num_input_pipelines)
        source = TFEpochSource(loader, signature, check=self.check, batches_per_step=per_step)
        with self._lock:
            pending = self._pending
            if pending is not None:
                states, strict_files = pending
                if pipeline not in states:
                    raise ConfigError(self._missing(pipeline, states))
                source.load_state_dict(states.pop(pipeline), strict_files=strict_files)
                if not states:
                    self._pending = None
            self.sources[pipeline] = source
        logger.info(
            "input pipeline %d of %d: batch_size %d",
            input_context.input_pipeline_id,
            input_context.num_input_pipelines,
            loader.batch_size,
        )
        return source.dataset(batch_cardinality(loader, self.count_batches))

    def record_steps(self, steps: int) -> None:
        """Record ``steps`` training steps of the current epoch on every local pipeline (a custom loop's count).

        Each pipeline counts ``steps * batches_per_step`` batches as consumed (see the class doc). Example::

            it = iter(strategy.distribute_datasets_from_function(fn))
            for step in range(steps):
                strategy.run(train_step, (next(it),))
                fn.record_steps(step + 1)
        """
        for source in list(self.sources.values()):
            source.record_steps(steps)

    def state_dict(self) -> dict[str, Any]:
        """``{"pipelines": {id: state}}``: each local pipeline's position after what training took.

        Example::

            json.dumps(fn.state_dict())
        """
        with self._lock:
            sources = dict(self.sources)
            pending = dict(self._pending[0]) if self._pending is not None else {}
        states = {pid: s for pid, s in pending.items()}
        states.update({pid: source.state_dict() for pid, source in sources.items()})
        if not states:
            raise ConfigError("no input pipeline built yet: call strategy.distribute_datasets_from_function(fn) first")
        return {"pipelines": {str(pid): state for pid, state in sorted(states.items())}}

    def load_state_dict(self, state: dict[str, Any], strict_files: bool = True) -> None:
        """Resume each pipeline at its position in ``state`` (from :meth:`state_dict`).

        Pipelines already built resume at their next iteration; the others when the strategy builds
        them. A pipeline whose id ``state`` lacks raises :class:`~pyloader_core.ConfigError`.

        Example::

            fn.load_state_dict(json.load(open("loader.json")))
            dist = strategy.distribute_datasets_from_function(fn)  # pipelines start where they were
        """
        try:
            states = {int(pid): s for pid, s in state["pipelines"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(
                "not a DistributedDatasetFn state: expected {'pipelines': {id: state}} (a TFEpochSource state "
                "restores onto a dataset from make_tf_dataset)"
            ) from None
        with self._lock:
            built = dict(self.sources)
            for pid, source in built.items():
                if pid not in states:
                    raise ConfigError(self._missing(pid, states))
            for pid, source in built.items():
                source.load_state_dict(states[pid], strict_files=strict_files)
            rest = {pid: s for pid, s in states.items() if pid not in built}
            self._pending = (rest, strict_files) if rest else None

    @staticmethod
    def _missing(pipeline: int, states: dict[int, Any]) -> str:
        return (
            f"the loader state holds input pipelines {sorted(states)}, not pipeline {pipeline}: each pipeline "
            "resumes from its own state (under MultiWorkerMirroredStrategy each worker must restore the "
            "checkpoint it wrote itself, not the chief's)"
        )


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
