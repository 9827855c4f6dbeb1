"""``make_tf_dataset``: a :class:`~pyloader_core.DataLoader` as a ``tf.data.Dataset``, one epoch per iteration.

The dataset is ``tf.data.Dataset.from_generator(source, output_signature=...)`` where ``source`` is a
:class:`TFEpochSource`. TensorFlow calls ``source()`` each time a new iterator of the dataset
starts pulling batches (a ``for`` loop, each epoch of ``model.fit``, each pass of ``.repeat()``);
each call runs the loader's *next* epoch, so every pass is reshuffled deterministically from
``(random_seed, epoch)`` and holds every sample of this rank's shard exactly once. When TensorFlow
destroys an iterator (exhausted, abandoned, deleted), it finalizes the generator, whose ``finally``
closes the core iterator and so stops its worker threads or processes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from typing import Any

from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.errors import ConfigError
from pyloader_core.runtime.loader import DataLoader
from pyloader_core.runtime.plan import plan_epoch
from pyloader_core.reader import DataReader
from pyloader_tf.collator import TFCollator
from pyloader_tf.source import TFEpochSource
from pyloader_tf.signature import VariableDims, infer_signature, normalize_variable_dims

__all__ = ["DataDir", "batch_cardinality", "infer_loader_signature", "make_tf_dataset", "peek_batch"]

logger = logging.getLogger(__name__)

#: What ``data_dir`` accepts (as :class:`~pyloader_core.DataLoader`): a directory, a glob, a file, or a list of them.
DataDir = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def peek_batch(loader: DataLoader) -> Any:
    """A first batch of ``loader``'s data (``None`` if no file holds a sample), without touching its stream.

    Reads the files in epoch 0's order (one rank), one at a time until one yields a batch, each
    through a throwaway single-file loader with no background workers (``num_workers=0``): it
    starts no thread or process, leaves ``loader``'s stats, epochs and iterators untouched, reads
    one chunk (usually) and lists no other file. A file with fewer samples than a batch gives a short
    batch (``drop_last`` is off here), which has the keys, dtypes and inner shapes of a full one.

    Example::

        batch = peek_batch(DataLoader("jsonl", None, TFCollator(), "data/"))
        sorted(batch)  # ['id', 'label', 'text']
    """
    o = loader.options
    order = plan_epoch(loader.files, seed=o.random_seed, epoch=0, shuffle=o.shuffle).units
    options = dataclasses.replace(
        o, num_workers=0, max_queue_size=1, rank=0, world_size=1, num_epoch=1, drop_last=False, shuffle_buffer=0
    )
    for unit in order:
        probe = DataLoader(
            loader.datareader, loader.dataset, loader.datacollator, [unit.path], **dataclasses.asdict(options)
        )
        with probe.iter_epochs([0]) as it:
            batch = next(it, None)
        if batch is not None:
            logger.debug("output_signature inferred from the first batch of %s", unit.path)
            return batch
    return None


def batch_cardinality(loader: DataLoader, count_batches: bool | None) -> int | None:
    """Batches per epoch to declare as the dataset's cardinality, or ``None`` (see ``count_batches``).

    Example::

        batch_cardinality(loader, None)  # an int when sharding across ranks, else None
    """
    o = loader.options
    if count_batches is None:
        count_batches = o.world_size > 1 and o.on_error == "raise"
    if not count_batches:
        return None
    if o.on_error != "raise":
        raise ConfigError("count_batches=True needs on_error='raise': skipped records change the batch count")
    try:
        return loader.batches_per_epoch()
    except TypeError as exc:
        raise ConfigError(f"count_batches=True: {exc}") from None


def make_tf_dataset(
    datareader: DataReader | str,
    dataset: Dataset | None,
    datacollator: DataCollator | None,
    data_dir: DataDir,
    output_signature: Any = None,
    *,
    variable_dims: VariableDims | None = None,
    count_batches: bool | None = None,
    check: bool = True,
    **loader_options: Any,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of the loader's batches; each new iteration is the loader's next epoch.

    Args:
        datareader, dataset, data_dir: as for :class:`~pyloader_core.DataLoader`.
        datacollator: ``None`` means :class:`~pyloader_tf.TFCollator` (stable dtypes, strings as ``tf.string``).
        output_signature: a nest of ``tf.TensorSpec``; ``None`` infers it from a first batch
            (see :func:`peek_batch`): dtype per key, batch dimension ``None``, and inner
            dimensions ``None`` for keys in ``variable_dims`` and keys the collator reports as
            ragged (``TFCollator.variable_keys``); other inner dimensions are fixed.
        variable_dims: ``{"key": [1, ...]}`` (inner dims that vary, 1 = first after the batch
            dim) or ``["key", ...]`` (all inner dims of those keys).
        count_batches: give the dataset a known cardinality (``loader.batches_per_epoch()``, which
            counts the samples of every file once): the batches of one iteration, which is one epoch
            (as ``len()`` of a ``TorchChunkDataset``; the core ``len(DataLoader)`` counts its
            ``num_epoch`` epochs). ``None``: only when sharding across ranks
            (counts are needed then anyway) and ``on_error="raise"``.
        check: check every batch against the signature (a mismatch raises
            :class:`~pyloader_tf.SignatureMismatchError`, which TensorFlow surfaces as
            ``tf.errors.InvalidArgumentError`` with the same message).
        **loader_options: ``num_workers``, ``worker_type``, ``shuffle``, ``random_seed``,
            ``batch_size``, ``rank``, ``world_size``... (``num_epoch`` is ignored: use
            ``fit(epochs=...)`` or ``.repeat()``). Encoding that is pure Python (``TextDataset``)
            runs best in ``worker_type="process"`` workers: thread workers hold the GIL that
            TensorFlow's generator thread needs for every batch. The workers start once and serve
            every epoch (``persistent_workers`` defaults to ``True`` for process workers; threads
            start in microseconds): process workers start once per dataset, not once per Keras epoch. ``ds.pyloader.close()`` stops them (garbage
            collection and interpreter exit do too).

    The returned dataset's ``pyloader`` attribute is its :class:`TFEpochSource` (``set_epoch``,
    ``loader.stats()``, ``close()``). An iteration abandoned part way still uses up its epoch; to make
    ``model.fit`` epoch ``e`` read loader epoch ``e`` whatever else iterated the dataset (resuming
    with ``initial_epoch``, eager ``tf.distribute`` strategies), pass
    ``callbacks=[EpochSyncCallback(ds)]``.

    Example::

        ds = make_tf_dataset(JsonLineDataReader(batch_size=64), TextDataset("vocab.txt", max_seq_len=128),
                             TFCollator(), "data/", shuffle=True, num_workers=2)
        ds = ds.map(lambda b: (b["input_ids"], b["label"])).prefetch(tf.data.AUTOTUNE)
        model.fit(ds, epochs=3)   # epochs 0, 1, 2 of the loader, each reshuffled
    """
    if loader_options.get("num_epoch", 1) != 1:
        logger.warning(
            "make_tf_dataset ignores num_epoch=%r: each iteration of the dataset is one epoch "
            "(use model.fit(epochs=...) or .repeat())",
            loader_options["num_epoch"],
        )
    if output_signature is not None and variable_dims is not None:
        raise ConfigError("variable_dims only applies when output_signature is inferred; pass one or the other")
    if datacollator is None:
        datacollator = TFCollator()
    # Each Keras epoch is a new pass: keep the workers, or every epoch pays their start-up again.
    loader_options.setdefault("persistent_workers", loader_options.get("worker_type") == "process")
    loader = DataLoader(datareader, dataset, datacollator, data_dir, **loader_options)
    if output_signature is None:
        output_signature = infer_loader_signature(loader, variable_dims)
    source = TFEpochSource(loader, output_signature, check=check)
    return source.dataset(batch_cardinality(loader, count_batches))


def infer_loader_signature(loader: DataLoader, variable_dims: VariableDims | None = None) -> Any:
    """The signature inferred from ``loader``'s first batch (see :func:`make_tf_dataset`).

    Example::

        sig = infer_loader_signature(DataLoader("jsonl", None, TFCollator(), "data/"))
    """
    batch = peek_batch(loader)
    if batch is None:
        raise ConfigError(
            f"cannot infer output_signature: none of the {len(loader.files)} files holds a sample; "
            "pass output_signature"
        )
    dims = normalize_variable_dims(variable_dims)
    for key in getattr(loader.datacollator, "variable_keys", ()):  # padded per batch: every inner dim varies
        dims[key] = None
    signature = infer_signature(batch, dims)
    logger.info("inferred output_signature %s", signature)
    return signature

