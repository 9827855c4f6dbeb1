"""The generator factory behind ``make_tf_dataset``: one loader epoch per tf.data iteration, and what training took.

See :class:`TFEpochSource`. Also :func:`wait_idle`, which waits until TensorFlow has finalized every
abandoned iteration (so every worker has stopped).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from pyloader_core.errors import ConfigError
from pyloader_core.runtime.epochs import EpochCursor, envelope, opened
from pyloader_core.runtime.loader import DataLoader
from pyloader_core.runtime.position import Position
from pyloader_tf.signature import check_batch

__all__ = ["TFEpochSource", "wait_idle"]

logger = logging.getLogger(__name__)

#: Positions remembered per iteration: more than any tf.data prefetch buffer holds.
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


@dataclasses.dataclass(eq=False)
class _Iteration:
    """One call of a :class:`TFEpochSource`: an epoch's generator, what it produced, what training took of it."""

    epoch: int
    resumed: bool  # started at a restored position rather than at the start of its epoch
    # (batches produced since the iteration started, loader position after them), the recent ones
    history: collections.deque[tuple[int, Position | None]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=_HISTORY)
    )
    consumed: int | None = None  # batches training has taken (None: not counted)


class TFEpochSource:
    """The generator factory behind :func:`make_tf_dataset`: each call runs the loader's next epoch.

    Calling it claims the next epoch number (0, 1, 2, ... or from :meth:`set_epoch`) and returns a
    generator of that epoch's batches, each checked against ``output_signature`` (and converted to
    numpy). Closing the generator (exhaustion, ``close()``, garbage collection) closes the core
    iterator and stops its workers. Thread-safe: TensorFlow may call it from any thread.

    **What a checkpoint saves.** tf.data (prefetch buffers, a strategy's per-device prefetch) reads
    ahead of training, so the position after the last batch the generator yielded is past what the
    model trained on. The source therefore remembers the loader position after each batch its
    generator yields (the recent ones, per iteration), and a checkpoint names the one after the
    batches *training took*: :attr:`consumed_batches` of the *training iteration*. That count is
    ``steps * batches_per_step`` (:meth:`record_steps`), where ``batches_per_step`` is what one
    training step takes from this input pipeline: 1 for a dataset whose global batch a strategy
    splits across replicas (``strategy.experimental_distribute_dataset``, Keras ``fit`` under any
    strategy), and the replicas fed by the pipeline under ``distribute_datasets_from_function``
    (``num_replicas_in_sync // num_input_pipelines``, set by
    :class:`~pyloader_tf.DistributedDatasetFn`). :class:`~pyloader_tf.EpochSyncCallback` records
    the steps during ``model.fit``; a custom loop calls :meth:`record_steps` itself.

    The training iteration is the latest one opened, except during ``model.fit`` with
    :class:`~pyloader_tf.EpochSyncCallback`: there it is the first one opened after each
    ``on_epoch_begin`` (Keras opens, and an eager strategy starts, other iterators: a first-batch
    peek before training, the next epoch's at the end of an epoch).

    **Resuming.** :meth:`load_state_dict` makes the next iteration start at the saved position.
    Keras 3's ``fit`` under a strategy first opens an iterator only to peek at a batch (to build the
    model), which takes that position; the restored position therefore stays *re-armable* until
    training counts a consumed batch of an iteration that resumed there, or an iteration opens that
    does not resume (the resumed epoch is left behind). :class:`~pyloader_tf.EpochSyncCallback`
    re-arms it in ``on_train_begin`` (after the peek), so that the first iteration training uses
    resumes there.

    Args:
        loader: the core loader (its ``num_epoch`` is not used: one call is one epoch).
        output_signature: nest of ``tf.TensorSpec`` the batches must match.
        check: check (and safely cast) every batch against ``output_signature``.
        first_epoch: the epoch the first call runs.
        batches_per_step: batches one training step takes from this pipeline (see above).

    Example::

        source = TFEpochSource(loader, {"x": tf.TensorSpec((None, 4), tf.float32)})
        ds = source.dataset()
        source.set_epoch(5)          # e.g. resuming: the next pass over ds is epoch 5
        for step, batch in enumerate(ds):
            train_step(batch)
            source.record_steps(step + 1)  # a checkpoint saved now resumes after this batch
    """

    def __init__(
        self,
        loader: DataLoader,
        output_signature: Any,
        *,
        check: bool = True,
        first_epoch: int = 0,
        batches_per_step: int = 1,
    ) -> None:
        if not isinstance(loader, DataLoader):
            raise ConfigError(f"loader must be a pyloader_core.DataLoader, got {type(loader).__name__}")
        self.loader = loader
        self.output_signature = output_signature
        self.check = check
        self.batches_per_step = batches_per_step
        self._lock = threading.Lock()
        self._epochs = EpochCursor()  # the epoch each iteration runs: set_epoch, then one more per call
        self._epochs.set_epoch(self._valid_epoch(first_epoch))
        self._active = 0
        self._resume: tuple[dict[str, Any], bool] | None = None  # a loaded state, and strict_files
        self._restored: tuple[dict[str, Any], bool] | None = None  # taken, but re-armable (see the class doc)
        self._training: _Iteration | None = None
        self._fit_managed = False  # EpochSyncCallback drives model.fit: the first iteration after epoch begin
        self._claim = False  # ... and it has not opened yet
        self._warned_unclaimed = False
        self._declared_cardinality = False  # dataset() asserted one epoch's batch count
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
    def batches_per_step(self) -> int:
        """Batches one training step takes from this input pipeline (see the class doc)."""
        return self._batches_per_step

    @batches_per_step.setter
    def batches_per_step(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"batches_per_step must be an int >= 1, got {value!r}")
        self._batches_per_step = value

    @property
    def next_epoch(self) -> int:
        """The 0-based epoch the next iteration of the dataset will run."""
        return self._epochs.next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run ``epoch`` (0-based), then ``epoch + 1``, and so on."""
        with self._lock:
            self._epochs.set_epoch(self._valid_epoch(epoch))

    def active_iterations(self) -> int:
        """Epochs being iterated right now (generators started and not yet closed)."""
        return self._active

    @property
    def consumed_batches(self) -> int | None:
        """Batches training has taken from the training iteration (``None``: not counted)."""
        training = self._training
        return None if training is None else training.consumed

    @consumed_batches.setter
    def consumed_batches(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"consumed_batches must be an int >= 0 or None, got {value!r}")
        with self._lock:
            training = self._training
            if training is None:
                raise ConfigError("no iteration of this dataset has started: there is nothing to count as consumed")
            training.consumed = value
            if value and training.resumed:
                self._restored = None  # training took from the resumed position: no re-arming past this

    def record_steps(self, steps: int) -> None:
        """Record that training has run ``steps`` steps of the training iteration (its epoch, from where it started).

        Sets :attr:`consumed_batches` to ``steps * batches_per_step``. Example::

            for step, batch in enumerate(dist_ds):
                strategy.run(train_step, (batch,))
                source.record_steps(step + 1)
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"steps must be an int >= 0, got {steps!r}")
        self.consumed_batches = steps * self._batches_per_step

    # -- hooks for EpochSyncCallback (model.fit) ------------------------------------------------------

    def _fit_begin(self) -> None:
        """``on_train_begin``: manage the training iteration; re-arm a restored position a peek took."""
        with self._lock:
            self._fit_managed = True
            if self._resume is None and self._restored is not None:
                self._resume = self._restored
                logger.debug("an iteration opened before training (Keras's first-batch peek) took the restored "
                             "position: the first training iteration resumes there")

    def _fit_epoch_begin(self, epoch: int) -> None:
        """``on_epoch_begin``: the next iteration runs ``epoch`` and is the one training takes from."""
        with self._lock:
            self._epochs.set_epoch(self._valid_epoch(epoch))
            self._claim = True

    def _fit_record_steps(self, steps: int) -> None:
        """``on_train_batch_end``: :meth:`record_steps`, unless no iteration opened this epoch."""
        if self._claim:
            if not self._warned_unclaimed:
                self._warned_unclaimed = True
                logger.warning(
                    "EpochSyncCallback: no iteration of this dataset opened in this fit epoch (is it the dataset "
                    "being fitted? with steps_per_epoch, Keras keeps one iterator across epochs): its consumed "
                    "batches are not counted, so a checkpoint would not resume exactly"
                )
            return
        self.record_steps(steps)

    def _fit_end(self) -> None:
        with self._lock:
            self._fit_managed = self._claim = False

    def __call__(self) -> Iterator[Any]:
        with self._lock:
            resume, self._resume = self._resume, None
            if resume is None:
                epoch, start = self._epochs.claim(), None
                self._restored = None  # an iteration that does not resume: the resumed epoch is behind
            else:
                state, strict_files = resume
                resumed = opened(state)
                assert resumed is not None  # load_state_dict keeps only states that resume an iteration
                epoch = self._epochs.claim(resumed=resumed[0])
                start = self.loader.position_from_state(resumed[1], strict_files=strict_files)
                self._restored = resume
            iteration = _Iteration(epoch, resumed=resume is not None)
            iteration.history.append((0, start or Position(epoch)))  # what the loader starts at
            if not self._fit_managed or self._claim:
                self._training, self._claim = iteration, False
        return self._batches(iteration, start)

    # -- checkpointing ------------------------------------------------------------------------------

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """The position after the batches training took of the training iteration (JSON-serialisable, no data).

        ``consumed``: the number of batches training has taken from the training iteration (default
        :attr:`consumed_batches`, see :meth:`record_steps`; kept up to date by
        :class:`~pyloader_tf.EpochSyncCallback` during ``model.fit``); tf.data may have prefetched
        more, and those are read again on resume. Without either, the position after the last batch
        produced. A loaded state no iteration has started from yet is returned as it is.

        Example::

            ckpt = tf.train.Checkpoint(model=model, loader=TFLoaderState(ds.pyloader))
        """
        with self._lock:
            if self._resume is not None:
                return self._resume[0]
            training = self._training
            if training is None:
                return self._state(self._epochs.next_epoch, Position(self._epochs.next_epoch))
            consumed = training.consumed if consumed is None else consumed
            if consumed is None:
                return self._state(training.epoch, training.history[-1][1])
            for produced, position in reversed(training.history):
                if produced == consumed:
                    return self._state(training.epoch, position)
            last = training.history[-1][0] if training.history else 0
        raise ConfigError(
            f"no saved position after batch {consumed} of epoch {training.epoch}: the generator has produced "
            f"{last} (training counted more than tf.data handed out, or it is over {_HISTORY} batches behind)"
        )

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
        if self._declared_cardinality and _mid_epoch(state):
            raise ConfigError(
                "this dataset declares its cardinality (count_batches, or sharding across ranks), and a pass resumed "
                "mid-epoch is shorter, which tf.data rejects: restore the state before building the dataset "
                "(make_tf_dataset / distribute_datasets_from_function), or pass count_batches=False"
            )
        with self._lock:
            self._resume, self._restored = (state, strict_files), None

    def _batches(self, iteration: _Iteration, start: Position | None) -> Iterator[Any]:
        epoch = iteration.epoch
        logger.debug("tf.data iteration starts epoch %d%s", epoch, " (resumed)" if iteration.resumed else "")
        it = self.loader.iter_epochs([epoch], start=start)
        produced = 0
        with self._lock:
            self._active += 1
        _opened(+1)
        try:
            for batch in it:
                produced += 1
                with self._lock:
                    iteration.history.append((produced, it.position))
                yield check_batch(batch, self.output_signature) if self.check else batch
        finally:
            it.close()
            with self._lock:
                self._active -= 1
            _opened(-1)
            logger.debug("tf.data iteration of epoch %d closed after %d batches", epoch, produced)

    def _state(self, epoch: int, position: Position | None) -> dict[str, Any]:
        return envelope(epoch, self.loader.position_state(position or Position(epoch)))

    def dataset(self, cardinality: int | None = None) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` over this source; ``cardinality``: batches per epoch, when known.

        The dataset's ``pyloader`` attribute is this source (datasets chained from it lack it).
        """
        ds = tf.data.Dataset.from_generator(self, output_signature=self.output_signature)
        if cardinality is not None and self._resume is not None and _mid_epoch(self._resume[0]):
            # The resumed pass holds only the rest of its epoch: a declared count would fail it.
            logger.info("resuming mid-epoch: the dataset declares no cardinality (its first pass is shorter)")
            cardinality = None
        # One iteration is one epoch: the cardinality (and len()) counts the batches of one epoch.
        if cardinality is not None:
            ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
            self._declared_cardinality = True
        ds.pyloader = self
        return ds

    def close(self) -> None:
        """Stop the workers of every running epoch (the dataset can still be iterated afterwards)."""
        self.loader.close()


def _mid_epoch(state: dict[str, Any]) -> bool:
    loader = state.get("loader") or {}
    return bool(loader.get("window") or loader.get("offset"))
