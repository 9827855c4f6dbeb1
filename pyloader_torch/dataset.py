"""The :class:`TorchChunkDataset`: a PyLoader core loader as a ``torch.utils.data.IterableDataset``.

Which way to run it (figures and commands: ``pyloader_torch/README.md``, ``benchmarks/torch_paths.py``):

* **The fast path** (use it by default): torch ``DataLoader(ds, batch_size=None, num_workers=0)`` over
  ``TorchChunkDataset(..., num_workers=2, worker_type="process")``. PyLoader's worker processes read
  and encode chunks and hand the numpy arrays back through shared memory; the training process
  wraps them with ``torch.from_numpy`` (no copy, no pickling, no per-batch IPC). On Linux the worker
  processes fork, as torch's own workers do (a spawned worker re-imports the training script and
  torch, seconds per epoch); pass ``start_method="spawn"`` or ``"forkserver"`` to choose otherwise.
  ``worker_type="thread"`` suits I/O-bound reading (remote files, decompression, pyarrow), which
  releases the GIL. Add ``pin_memory=True`` to the torch DataLoader when training on a GPU.
* **torch workers** (torch ``num_workers=k``): each torch worker reads its share of the epoch inline.
  Every batch then crosses processes; small batches go as pickled numpy bytes rather than torch's
  per-tensor shared memory (:mod:`pyloader_torch.transport`), which halves the CPU cost, yet it
  remains the dearer way. Use it when the training loop is built around torch workers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from pyloader_core import (
    ConfigError,
    DataCollator,
    DataLoader,
    DataReader,
    Dataset,
    LoaderIterator,
    Shard,
)
from pyloader_torch.collator import TorchCollator
from pyloader_torch.distributed import distributed_context, resolve_rank
from pyloader_torch.transport import for_transport

__all__ = ["MAX_TORCH_WORKERS", "TorchChunkDataset"]

logger = logging.getLogger(__name__)

# Process workers fork on Linux by default, as torch's DataLoader workers do (torch prepares its own
# thread pools for fork). PyLoader forks with os.fork, so this also works inside torch's daemonic
# worker processes, where multiprocessing refuses to start children.
_FORK_OK = sys.platform.startswith("linux")

#: Most torch DataLoader workers one dataset can be iterated by (size of the shared epoch table).
MAX_TORCH_WORKERS = 256

#: Counters that torch worker processes publish to the training process (shared memory), per worker.
SHARED_STATS = ("samples", "batches", "skipped_count", "skipped_batches", "dropped_samples")


def _batches(it: LoaderIterator, in_worker: bool, publish: Any = None) -> Iterator[Any]:
    """Yield ``it``'s batches; closing (``break`` then GC, worker shutdown, exhaustion) stops its workers.

    In a torch worker process, batches are put in the form that crosses to the training process
    cheapest (:func:`~pyloader_torch.transport.for_transport`), and ``publish()`` copies the worker's
    counters where the training process can read them, after every batch.
    """
    try:
        if in_worker:
            for batch in it:
                out = for_transport(batch)
                if publish is not None:
                    publish()
                yield out
        else:
            yield from it
    finally:
        it.close()
        if publish is not None:
            publish()


class TorchChunkDataset(IterableDataset):
    """Batches of chunk files, for ``torch.utils.data.DataLoader(ds, batch_size=None, ...)``.

    Each ``iter()`` yields one epoch of collated batches (dicts of tensors: see :class:`TorchCollator`)
    for this rank, split between the torch DataLoader's workers when it has some: every sample of the
    epoch exactly once, the same stream for the same seed and settings.

    Args:
        datareader, dataset, datacollator, data_dir: as in :class:`pyloader_core.DataLoader`; the
            collator (default ``NumpyDataCollator``) is wrapped in a :class:`TorchCollator`.
        rank, world_size: this process's share; default: from ``torch.distributed`` when it is
            initialised, else ``0`` of ``1``. Ranks get disjoint, equal shares (the remainder of
            ``total % world_size`` samples is dropped each epoch, logged and in
            :attr:`dropped_per_epoch`; which samples is drawn from ``(random_seed, epoch)`` and
            changes from epoch to epoch), so every rank yields the same number of batches.
        **loader_options: :class:`pyloader_core.LoaderOptions` fields (``shuffle``, ``random_seed``,
            ``batch_size``, ``drop_last``, ``shuffle_buffer``, ``max_queue_size``, ``on_error``, and
            ``num_workers`` / ``worker_type`` for PyLoader's own workers). Inside torch worker
            processes PyLoader's ``num_workers`` defaults to 0 (read inline) unless given.
        strict_files: resuming from a state saved on other data files (added, removed, renamed,
            resized or rewritten) raises :class:`~pyloader_core.ConfigError`; ``False`` resumes anyway
            (see :meth:`load_state_dict`). Also the attribute :attr:`strict_files`.

    Epochs: ``set_epoch(e)`` (as ``DistributedSampler``) makes the next iteration epoch ``e``; each
    further ``iter()`` advances by one, also when torch iterates copies of the dataset in fresh worker
    processes (the epoch table lives in shared memory) and when the number of torch workers changes
    between epochs. Each epoch's order derives from ``(random_seed, epoch)`` alone. Call ``set_epoch``
    every epoch when several DataLoaders iterate one dataset at the same time.

    Distributed training: every rank yields ``len(ds)`` batches per epoch. With ``on_error="skip"``
    a rank that skips bad records yields fewer samples (and maybe fewer batches) than the others.

    The dataset starts no thread or process before ``__iter__`` and pickles (``spawn`` workers).
    ``len()`` is the exact number of batches one ``iter()`` yields, that is one epoch on this rank,
    when the reader can count samples (``count_samples``; counted once, at construction); otherwise
    it raises ``TypeError``. (The core ``len(DataLoader)`` counts its pass too, which is
    ``num_epoch`` epochs there.)

    Example::

        from torch.utils.data import DataLoader as TorchDataLoader
        from pyloader_core import JsonLineDataReader, TextDataset
        from pyloader_torch import TorchChunkDataset

        ds = TorchChunkDataset(JsonLineDataReader(batch_size=64), TextDataset("vocab.txt", max_seq_len=128),
                               None, "data/", shuffle=True, num_workers=2, worker_type="process")
        loader = TorchDataLoader(ds, batch_size=None, num_workers=0, pin_memory=torch.cuda.is_available())
        for epoch in range(3):
            ds.set_epoch(epoch)
            for batch in loader:
                loss = model(batch["input_ids"], batch["label"])
    """

    def __init__(
        self,
        datareader: DataReader | str,
        dataset: Dataset | None = None,
        datacollator: DataCollator | None = None,
        data_dir: Any = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        strict_files: bool = True,
        **loader_options: Any,
    ) -> None:
        super().__init__()
        num_epoch = loader_options.pop("num_epoch", 1)
        if num_epoch != 1:
            raise ConfigError(
                f"num_epoch={num_epoch!r}: each iter() of a TorchChunkDataset is one epoch; loop over epochs "
                "(and call set_epoch) in the training loop instead"
            )
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self._explicit_rank = rank is not None or world_size is not None
        self._options = dict(loader_options, rank=self.rank, world_size=self.world_size)
        # Each epoch is a new pass (iter() per epoch): keep process workers, or every epoch starts them
        # again (threads start in microseconds and are not kept).
        self._options.setdefault("persistent_workers", loader_options.get("worker_type") == "process")
        self._user_num_workers: int | None = loader_options.get("num_workers")
        if loader_options.get("worker_type") == "process" and "start_method" not in loader_options and _FORK_OK:
            # The training script imports torch: a spawn worker re-imports it (seconds, every epoch,
            # since each epoch starts its pool). Fork as torch's own DataLoader does on Linux.
            self._options["start_method"] = "fork"
        collator = datacollator if isinstance(datacollator, TorchCollator) else TorchCollator(datacollator)
        main = DataLoader(datareader, dataset, collator, data_dir, **self._options)  # starts nothing
        self._main: DataLoader | None = main
        self._main_pid = os.getpid()
        self._local: DataLoader | None = None
        self._active: tuple[DataLoader, int] | None = None  # this process's latest iteration: loader, epoch
        self._resume_state: dict[str, Any] | None = None
        self._resume_strict: bool | None = None
        #: Whether resuming checks that the data files are those the state was saved with (see
        #: :meth:`load_state_dict`); set it to ``False`` before resuming on changed files on purpose.
        self.strict_files: bool = bool(strict_files)
        self._local_key: tuple[int, bool] | None = None
        self.datareader: DataReader = main.datareader
        self.dataset: Dataset = main.dataset
        self.datacollator: TorchCollator = collator
        self.files: list[str] = list(main.files)
        self.batch_size: int = main.batch_size
        # Counted once, here: every rank and worker then plans from the same counts without recounting.
        # Several ranks need them (equal shares); one rank uses them when the reader counts cheaply.
        counts = main.sample_counts(read_if_unknown=self.world_size > 1)
        self.sample_counts: list[int] | None = None if counts is None else list(counts)
        total = None if counts is None else sum(counts)
        #: Samples left out of every epoch so that all ranks get the same number (``total % world_size``).
        self.dropped_per_epoch: int = 0 if total is None or self.world_size == 1 else total % self.world_size
        if self.dropped_per_epoch:
            logger.warning(
                "%d of %d samples are dropped from every epoch so that the %d ranks get %d each "
                "(equal step counts keep DDP from hanging)",
                self.dropped_per_epoch,
                total,
                self.world_size,
                total // self.world_size,
            )
        if self.world_size > 1 and loader_options.get("on_error") == "skip":
            logger.warning(
                "on_error='skip' with %d ranks: a rank that skips bad records yields fewer samples, and maybe "
                "fewer batches, than the others (DDP would then wait for it at the last step)",
                self.world_size,
            )
        # Slot 0: the epoch set_epoch() gave; slot 1 + w: iterations torch worker w (or, with
        # num_workers=0, this process) started since. Shared memory, so fresh worker copies update it.
        self._epoch_state = torch.zeros(1 + MAX_TORCH_WORKERS, dtype=torch.int64).share_memory_()
        # What torch worker processes counted (skips included): fresh worker copies add to it.
        self._worker_stats = torch.zeros((MAX_TORCH_WORKERS, len(SHARED_STATS)), dtype=torch.int64).share_memory_()
        self._warned_uninitialised = False

    # -- epochs -------------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration (by every worker) epoch ``epoch`` (0-based); later ones follow on."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch_state[1:] = 0
        self._epoch_state[0] = epoch

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will run (the last ``set_epoch`` plus iterations since)."""
        return int(self._epoch_state[0]) + int(self._epoch_state[1])

    def _claim_epoch(self, worker: int, num_workers: int, resumed: int | None = None) -> int:
        """This iteration's epoch for ``worker`` of ``num_workers``; counts the iteration as started.

        Every participant of an iteration bumps its own counter, and worker 0 also bumps those of the
        workers that do not take part, so the counters stay equal when the worker count changes.
        """
        if num_workers > MAX_TORCH_WORKERS:
            raise ConfigError(f"at most {MAX_TORCH_WORKERS} torch DataLoader workers, got {num_workers}")
        state = self._epoch_state
        counters = state[1:]
        epoch = int(state[0]) + int(counters[worker]) if resumed is None else resumed
        # A resumed iteration re-enters its saved epoch; the next one follows on from it.
        counters[worker] = epoch + 1 - int(state[0])
        if worker == 0 and num_workers < MAX_TORCH_WORKERS:
            counters[num_workers:] = counters[0]
        return epoch

    # -- loaders ------------------------------------------------------------------------------------

    def _loader_here(self, in_worker: bool) -> DataLoader:
        """The core loader of this process: the one built at construction, or one built here."""
        pid = os.getpid()
        if not in_worker and self._main is not None and pid == self._main_pid:
            return self._main
        if self._local is not None and self._local_key == (pid, in_worker):
            return self._local
        options = dict(self._options)
        if in_worker and self._user_num_workers is None:
            options["num_workers"] = 0  # torch's worker is the background worker: read inline
        loader = DataLoader(self.datareader, self.dataset, self.datacollator, self.files, **options)
        if self.sample_counts is not None:
            loader.set_sample_counts(self.sample_counts)  # counted once in the training process
        self._local, self._local_key = loader, (pid, in_worker)
        return loader

    @property
    def core_loader(self) -> DataLoader:
        """The core :class:`~pyloader_core.DataLoader` this process iterates with ``num_workers=0`` in torch."""
        return self._loader_here(in_worker=False)

    # -- iteration ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        if info is None:
            worker, num_workers = 0, 1
            self._check_distributed()
        else:
            worker, num_workers = info.id, info.num_workers
        loader = self._loader_here(in_worker=info is not None)
        shard = Shard(worker, num_workers)
        start = None
        resume, self._resume_state = self._resume_state, None
        strict, self._resume_strict = self._resume_strict, None
        if resume is None:
            epoch = self._claim_epoch(worker, num_workers)
        else:
            epoch = int(resume["epoch"])
            strict_files = self.strict_files if strict is None else strict
            start = loader.position_from_state(resume["loader"], worker=shard, strict_files=strict_files)
            self._claim_epoch(worker, num_workers, resumed=epoch)
        logger.debug("rank %d/%d, torch worker %d/%d: epoch %d", self.rank, self.world_size, worker, num_workers, epoch)
        self._active = (loader, epoch)
        publish = self._publisher(loader, worker) if info is not None else None
        return _batches(loader.iter_epochs([epoch], worker=shard, start=start), info is not None, publish)

    def _publisher(self, loader: DataLoader, worker: int) -> Any:
        """A function that adds what ``loader`` counted since now to torch worker ``worker``'s shared row."""
        row = self._worker_stats[worker]
        base = row.clone()
        since = loader.stats()
        first = torch.tensor([since[k] for k in SHARED_STATS], dtype=torch.int64)

        def publish() -> None:
            now = loader.stats()
            row.copy_(base + torch.tensor([now[k] for k in SHARED_STATS], dtype=torch.int64) - first)

        return publish

    # -- checkpointing (torchdata's Stateful protocol) ------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where this process's iteration stands: its epoch and the core loader's position (JSON-able).

        ``torchdata.stateful_dataloader.StatefulDataLoader`` calls it in every torch worker (and in the
        training process with ``num_workers=0``) and hands each state back on resume.

        Example::

            dl = StatefulDataLoader(ds, batch_size=None, num_workers=2)
            ...
            torch.save(dl.state_dict(), "loader.pt")    # with the model checkpoint
            dl.load_state_dict(torch.load("loader.pt"))  # later, in a new process
        """
        if self._active is None:
            return {"epoch": None}
        loader, epoch = self._active
        return {"epoch": epoch, "loader": loader.state_dict()}

    def load_state_dict(self, state: dict[str, Any], strict_files: bool | None = None) -> None:
        """Make this process's next iteration resume at ``state`` (from :meth:`state_dict`).

        The state is checked when that iteration starts: other options, or other data files than
        those it was saved with (added, removed, renamed, resized, rewritten), raise
        :class:`~pyloader_core.ConfigError` naming what changed. ``strict_files=False`` (default: the
        :attr:`strict_files` attribute, ``True`` unless the dataset was built with
        ``strict_files=False``) resumes on changed files on purpose. ``StatefulDataLoader`` calls this
        method without arguments, so set ``ds.strict_files = False`` before building it then.

        Example::

            ds.strict_files = False          # files were added since the checkpoint: accept them
            dl = StatefulDataLoader(ds, batch_size=None, num_workers=2)
            dl.load_state_dict(torch.load("loader.pt"))
        """
        self._resume_state = state if state.get("epoch") is not None else None
        self._resume_strict = None if strict_files is None else bool(strict_files)

    def _check_distributed(self) -> None:
        if self._explicit_rank or self._warned_uninitialised:
            return
        ctx = distributed_context()
        if ctx is not None and ctx[1] != self.world_size:
            self._warned_uninitialised = True
            logger.warning(
                "torch.distributed was initialised (world size %d) after this dataset was built for world size "
                "%d: every rank reads the same data. Build the dataset after init_process_group, or pass "
                "rank= and world_size=",
                ctx[1],
                self.world_size,
            )

    def __len__(self) -> int:
        """Batches one ``iter()`` (one epoch) yields on this rank, whatever the number of torch workers.

        Raises ``TypeError`` when the reader cannot count samples without reading (``count_samples``).
        """
        if self.sample_counts is None:
            raise TypeError(
                f"len() needs sample counts, and {type(self.datareader).__name__} cannot count without reading "
                "(implement count_samples)"
            )
        return self._loader_here(in_worker=False).batches_per_epoch()

    def stats(self) -> dict[str, Any]:
        """Counters of every iteration so far: those run in this process (torch ``num_workers=0``) plus
        what torch worker processes counted (``samples``, ``batches``, ``skipped_count``,
        ``skipped_batches``, ``dropped_samples``; the skipped locations stay in the workers' logs).

        ``torch_workers`` lists each torch worker's own counters. ``dropped_samples`` adds up
        :attr:`dropped_per_epoch` over the epochs iterated.
        """
        out = self._loader_here(in_worker=False).stats()
        rows = self._worker_stats.tolist()
        for j, key in enumerate(SHARED_STATS):
            out[key] += sum(r[j] for r in rows)
        out["torch_workers"] = {w: dict(zip(SHARED_STATS, r)) for w, r in enumerate(rows) if any(r)}
        return out

    def close(self) -> None:
        """Stop the workers of every iteration still open in this process; idempotent."""
        for loader in (self._main, self._local):
            if loader is not None:
                loader.close()

    # -- pickling -----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Loaders may hold open iterations; each process builds its own from the settings.
        state["_main"] = None
        state["_local"] = None
        state["_local_key"] = None
        state["_active"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.files)} files, batch_size={self.batch_size}, "
            f"rank={self.rank}/{self.world_size}, epoch={self.epoch})"
        )
