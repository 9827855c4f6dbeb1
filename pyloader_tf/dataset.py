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
import collections
import threading
import os
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf

from pyloader_core.collator import DataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.errors import ConfigError
from pyloader_core.loader import DataLoader
from pyloader_core.plan import plan_epoch
from pyloader_core.reader import DataReader
from pyloader_core.runtime.engine import Position
from pyloader_tf.collator import TFCollator
from pyloader_tf.signature import VariableDims, check_batch, infer_signature, normalize_variable_dims

__all__ = ["DataDir", "TFEpochSource", "batch_cardinality", "infer_loader_signature", "make_tf_dataset", "peek_batch"]

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


#: Positions remembered per source: more than any tf.data prefetch buffer holds.
_HISTORY = 4096

# Iterations of every source still open. TensorFlow finalizes an abandoned generator on its own
# thread, some time after the iterator is dropped: wait_idle() waits for exactly that event.
_open_iterations = 0
_open_changed = threading.Condition()


def _opened(delta: int) -> None:
    global _open_iterations
    with _open_changed:
        _open_iterations += delta
        _open_changed.notify_all()


def wait_idle(timeout: float | None = None) -> bool:
    """Wait until every iteration of every PyLoader tf.data dataset has closed (workers stopped).

    TensorFlow closes an abandoned iterator's generator asynchronously; call this before checking
    that nothing is left running, or before exiting a job that must not leave workers behind.
    Returns ``False`` on timeout.

    Example::

        del iterator
        assert wait_idle(timeout=15)
    """
    with _open_changed:
        return _open_changed.wait_for(lambda: _open_iterations == 0, timeout)


class TFEpochSource:
    """The generator factory behind :func:`make_tf_dataset`: each call runs the loader's next epoch.

    Calling it claims the next epoch number (0, 1, 2, ... or from :meth:`set_epoch`) and returns a
    generator of that epoch's batches, each checked against ``output_signature`` (and converted to
    numpy). Closing the generator (exhaustion, ``close()``, garbage collection) closes the core
    iterator and stops its workers. Thread-safe: TensorFlow may call it from any thread.

    Args:
        loader: the core loader (its ``num_epoch`` is not used: one call is one epoch).
        output_signature: nest of ``tf.TensorSpec`` the batches must match.
        check: check (and safely cast) every batch against ``output_signature``.
        first_epoch: the epoch the first call runs.

    Example::

        source = TFEpochSource(loader, {"x": tf.TensorSpec((None, 4), tf.float32)})
        ds = source.dataset()
        source.set_epoch(5)          # e.g. resuming: the next pass over ds is epoch 5
        for batch in ds: ...
    """

    def __init__(self, loader: DataLoader, output_signature: Any, *, check: bool = True, first_epoch: int = 0) -> None:
        if not isinstance(loader, DataLoader):
            raise ConfigError(f"loader must be a pyloader_core.DataLoader, got {type(loader).__name__}")
        self.loader = loader
        self.output_signature = output_signature
        self.check = check
        self._lock = threading.Lock()
        self._next_epoch = self._valid_epoch(first_epoch)
        self._active = 0
        self._resume: tuple[dict[str, Any], bool] | None = None  # a loaded state, and strict_files
        # (epoch, batches produced, loader position after them) of recent batches: a checkpoint can
        # then name the batch the model has consumed, though tf.data prefetched further. States are
        # built from positions only when one is asked for.
        self._history: collections.deque[tuple[int, int, Position | None]] = collections.deque(maxlen=_HISTORY)
        self.consumed_batches: int | None = None
        o = loader.options
        if o.worker_type == "process" and o.num_workers != 0 and o.start_method == "fork":
            logger.warning(
                "worker_type='process' with start_method='fork' forks a process that runs TensorFlow's threads, "
                "which can deadlock the workers; prefer start_method='spawn' (the default) or 'forkserver'"
            )

    @staticmethod
    def _valid_epoch(epoch: int) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        return epoch

    @property
    def next_epoch(self) -> int:
        """The 0-based epoch the next iteration of the dataset will run."""
        return self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run ``epoch`` (0-based), then ``epoch + 1``, and so on."""
        with self._lock:
            self._next_epoch = self._valid_epoch(epoch)

    def active_iterations(self) -> int:
        """Epochs being iterated right now (generators started and not yet closed)."""
        return self._active

    def __call__(self) -> Iterator[Any]:
        with self._lock:
            resume, self._resume = self._resume, None
            if resume is None:
                epoch, start = self._next_epoch, None
            else:
                state, strict_files = resume
                epoch = int(state["epoch"])
                start = self.loader.position_from_state(state["loader"], strict_files=strict_files)
            self._next_epoch = epoch + 1
            self.consumed_batches = None
        return self._batches(epoch, start)

    # -- checkpointing ------------------------------------------------------------------------------

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """The position after the latest batch of the current epoch (JSON-serialisable, no data).

        ``consumed``: the number of this epoch's batches the model has taken (default
        :attr:`consumed_batches`, which :class:`~pyloader_tf.EpochSyncCallback` keeps up to date during
        ``model.fit``); tf.data may have prefetched more, and those must be read again on resume.
        Without either, the position after the last batch produced.

        Example::

            ckpt = tf.train.Checkpoint(model=model, loader=TFLoaderState(ds.pyloader))
        """
        consumed = self.consumed_batches if consumed is None else consumed
        with self._lock:
            if not self._history:
                return self._state(self._next_epoch, Position(self._next_epoch))
            if consumed is None:
                e, _, position = self._history[-1]
                return self._state(e, position)
            epoch = self._history[-1][0]
            for e, produced, position in reversed(self._history):
                if e == epoch and produced == consumed:
                    return self._state(e, position)
        raise ConfigError(f"no saved position after batch {consumed} of epoch {epoch} (too far behind the loader)")

    def load_state_dict(self, state: dict[str, Any], strict_files: bool = True) -> None:
        """Make the next iteration of the dataset resume at ``state`` (from :meth:`state_dict`).

        The state is checked now: other options, or other data files than those it was saved with
        (added, removed, renamed, resized, rewritten), raise :class:`~pyloader_core.ConfigError`
        naming what changed; ``strict_files=False`` resumes on changed files on purpose (see
        :meth:`pyloader_core.DataLoader.position_from_state`).

        Example::

            ds.pyloader.load_state_dict(json.load(open("loader.json")))
        """
        self.loader.position_from_state(state["loader"], strict_files=strict_files)  # check it now, not mid-training
        with self._lock:
            self._resume = (state, strict_files)

    def _batches(self, epoch: int, start: Any = None) -> Iterator[Any]:
        logger.debug("tf.data iteration starts epoch %d", epoch)
        it = self.loader.iter_epochs([epoch], start=start)
        produced = 0
        with self._lock:
            self._active += 1
            self._history.append((epoch, produced, it.position))
        _opened(+1)
        try:
            for batch in it:
                produced += 1
                with self._lock:
                    self._history.append((epoch, produced, it.position))
                yield check_batch(batch, self.output_signature) if self.check else batch
        finally:
            it.close()
            with self._lock:
                self._active -= 1
            _opened(-1)
            logger.debug("tf.data iteration of epoch %d closed", epoch)

    def _state(self, epoch: int, position: Position | None) -> dict[str, Any]:
        return {"epoch": epoch, "loader": self.loader.position_state(position or Position(epoch))}

    def dataset(self, cardinality: int | None = None) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` over this source; ``cardinality``: batches per epoch, when known.

        The dataset's ``pyloader`` attribute is this source (datasets chained from it lack it).
        """
        ds = tf.data.Dataset.from_generator(self, output_signature=self.output_signature)
        # One iteration is one epoch: the cardinality (and len()) counts the batches of one epoch.
        if cardinality is not None:
            ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
        ds.pyloader = self
        return ds

    def close(self) -> None:
        """Stop the workers of every running epoch (the dataset can still be iterated afterwards)."""
        self.loader.close()


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

