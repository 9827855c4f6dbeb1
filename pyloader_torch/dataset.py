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
    Shard,
)
from pyloader_core.runtime.epochs import EpochCursor, envelope, opened
from pyloader_torch.collator import TorchCollator
from pyloader_torch.distributed import UnknownRankError, distributed_context, resolve_rank
from pyloader_torch.loader import check_not_batched
from pyloader_torch.transport import worker_batches
from pyloader_torch.worker_stats import WorkerStatsTable

__all__ = ["MAX_TORCH_WORKERS", "TorchChunkDataset"]

logger = logging.getLogger(__name__)

# Process workers fork on Linux by default, as torch's DataLoader workers do (torch prepares its own
# thread pools for fork). PyLoader forks with os.fork, so this also works inside torch's daemonic
# worker processes, where multiprocessing refuses to start children.
_FORK_OK = sys.platform.startswith("linux")

#: Most torch DataLoader workers one dataset can be iterated by (size of the shared epoch table).
MAX_TORCH_WORKERS = 256



class TorchChunkDataset(IterableDataset):
    """Batches of chunk files, for ``torch.utils.data.DataLoader(ds, batch_size=None, ...)``.

    Each ``iter()`` yields one epoch of collated batches (dicts of tensors: see :class:`TorchCollator`)
    for this rank, split between the torch DataLoader's workers when it has some: every sample of the
    epoch exactly once, the same stream for the same seed and settings.

    Args:
        datareader, dataset, datacollator, data_dir: as in :class:`pyloader_core.DataLoader`; the
            collator (default ``NumpyDataCollator``) is wrapped in a :class:`TorchCollator`.
        rank, world_size: this process's share; default: found again whenever an iteration starts
            (in torch workers too): from ``torch.distributed`` when it is initialised, else what the
            training process found when torch started its workers, else the torchrun environment
            (``RANK``, ``WORLD_SIZE``), else ``0`` of ``1``; ``WORLD_SIZE > 1`` with no rank raises
            :class:`~pyloader_torch.distributed.UnknownRankError` (a ``ConfigError``) at iteration, so
            that ranks never all read everything. Ranks get disjoint, equal shares (the remainder of
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
        self._rank_arg, self._world_size_arg = rank, world_size
        try:
            # Provisional: found again whenever an iteration starts (see _sync_rank).
            self.rank, self.world_size = resolve_rank(rank, world_size)
        except UnknownRankError as exc:
            # The process group may still be initialised (with its rank) before the first iteration,
            # which raises this error if it is not.
            logger.info("rank not known yet (%s); looking again when iteration starts", exc)
            self.rank, self.world_size = 0, 1
        #: ``(rank, world_size)`` the training process found when it pickled this dataset for a torch
        #: worker (``spawn``), which cannot see its process group; ``None`` in the training process.
        self._carried_rank: tuple[int, int] | None = None
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
        self._resume_state: tuple[int, dict[str, Any]] | None = None  # (epoch, loader state) to resume
        self._resume_strict: bool | None = None
        #: Whether resuming checks that the data files are those the state was saved with (see
        #: :meth:`load_state_dict`); set it to ``False`` before resuming on changed files on purpose.
        self.strict_files: bool = bool(strict_files)
        self._local_key: tuple[int, bool, int, int] | None = None
        self.datareader: DataReader = main.datareader
        self.dataset: Dataset = main.dataset
        self.datacollator: TorchCollator = collator
        self.files: list[str] = list(main.files)
        self.batch_size: int = main.batch_size
        # Counted once, here: every rank and worker then plans from the same counts without recounting.
        # Several ranks need them (equal shares); one rank uses them when the reader counts cheaply.
        counts = main.sample_counts(read_if_unknown=self.world_size > 1)
        self.sample_counts: list[int] | None = None if counts is None else list(counts)
        #: Samples left out of every epoch so that all ranks get the same number (``total % world_size``).
        self.dropped_per_epoch: int = 0
        self._account_ranks()
        # Slot 0: the epoch set_epoch() gave; slot 1 + w: iterations torch worker w (or, with
        # num_workers=0, this process) started since. Shared memory, so fresh worker copies update it.
        self._epochs = EpochCursor(torch.zeros(1 + MAX_TORCH_WORKERS, dtype=torch.int64).share_memory_())
        # What torch worker processes counted (skips included): fresh worker copies add to it.
        self._worker_stats = WorkerStatsTable(MAX_TORCH_WORKERS)
        self._warned_rank_change = False

    def _account_ranks(self) -> None:
        """Set :attr:`dropped_per_epoch` for the current world size, and warn about what ranks lose."""
        counts = self.sample_counts
        total = None if counts is None else sum(counts)
        self.dropped_per_epoch = 0 if total is None or self.world_size == 1 else total % self.world_size
        if self.dropped_per_epoch:
            assert total is not None
            logger.warning(
                "%d of %d samples are dropped from every epoch so that the %d ranks get %d each "
                "(equal step counts keep DDP from hanging)",
                self.dropped_per_epoch,
                total,
                self.world_size,
                total // self.world_size,
            )
        if self.world_size > 1 and self._options.get("on_error") == "skip":
            logger.warning(
                "on_error='skip' with %d ranks: a rank that skips bad records yields fewer samples, and maybe "
                "fewer batches, than the others (DDP would then wait for it at the last step)",
                self.world_size,
            )

    # -- epochs -------------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration (by every worker) epoch ``epoch`` (0-based); later ones follow on."""
        self._epochs.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will run (the last ``set_epoch`` plus iterations since)."""
        return self._epochs.next_epoch

    # -- loaders ------------------------------------------------------------------------------------

    def _loader_here(self, in_worker: bool) -> DataLoader:
        """The core loader of this process, for the rank and world size found now (see :meth:`_sync_rank`):
        the one built at construction, or one built here. A loader built for other values is not reused.

        Raises:
            UnknownRankError: ``WORLD_SIZE > 1`` in the environment and nothing says this rank.
        """
        self._sync_rank(in_worker)
        pid = os.getpid()
        if not in_worker and self._main is not None and pid == self._main_pid:
            return self._main
        key = (pid, in_worker, self.rank, self.world_size)
        if self._local is not None and self._local_key == key:
            return self._local
        options = dict(self._options)
        if in_worker and self._user_num_workers is None:
            options["num_workers"] = 0  # torch's worker is the background worker: read inline
        loader = DataLoader(self.datareader, self.dataset, self.datacollator, self.files, **options)
        if self.sample_counts is not None:
            loader.set_sample_counts(self.sample_counts)  # counted once in the training process
        elif self.world_size > 1:
            # The world grew after construction (and before the training process could count for
            # this worker): equal shares need the counts.
            self.sample_counts = list(loader.sample_counts(read_if_unknown=True) or [])
            self._account_ranks()
        self._local, self._local_key = loader, key
        return loader

    def _find_rank(self, in_worker: bool) -> tuple[int, int]:
        """``(rank, world_size)`` for an iteration starting now in this process.

        Explicit arguments win; then ``torch.distributed`` when initialised here (forked torch workers
        inherit the group); in a torch worker, what the training process found when it pickled the
        dataset for it; then the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
        """
        return resolve_rank(
            self._rank_arg,
            self._world_size_arg,
            context=distributed_context,
            carried=self._carried_rank if in_worker else None,
            warn=False,
        )

    def _sync_rank(self, in_worker: bool) -> None:
        """Find rank and world size again; when they changed, shard for the new ones from now on.

        Loaders built for the old values are dropped (closed when this process owns them), the
        dropped-sample count is recomputed, and a warning says so once (see :meth:`_check_distributed`).
        """
        new = self._find_rank(in_worker)
        old = (self.rank, self.world_size)
        if new == old:
            return
        self._check_distributed(old, new, in_worker)
        self.rank, self.world_size = new
        self._options.update(rank=new[0], world_size=new[1])
        pid = os.getpid()
        if self._main is not None and pid == self._main_pid:
            self._main.close()
            self._main = None
        if self._local is not None and self._local_key is not None and self._local_key[0] == pid:
            self._local.close()
        self._local, self._local_key = None, None
        # A forked copy keeps the parent's _main untouched (never used here: another pid).
        if self.sample_counts is not None or self.world_size == 1:
            self._account_ranks()  # else once the counts are read (_loader_here)

    @property
    def core_loader(self) -> DataLoader:
        """The core :class:`~pyloader_core.DataLoader` this process iterates with ``num_workers=0`` in torch."""
        return self._loader_here(in_worker=False)

    # -- iteration ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        check_not_batched(sys._getframe(1))  # torch DataLoader(ds) without batch_size=None: ConfigError
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        # Rank and world size are found here, each iteration, in torch workers too (_sync_rank).
        loader = self._loader_here(in_worker=info is not None)
        shard = Shard(worker, num_workers)
        start = None
        resume, self._resume_state = self._resume_state, None
        strict, self._resume_strict = self._resume_strict, None
        if resume is None:
            epoch = self._epochs.claim(worker, num_workers)
        else:
            epoch, saved = resume
            strict_files = self.strict_files if strict is None else strict
            start = loader.position_from_state(saved, worker=shard, strict_files=strict_files)
            self._epochs.claim(worker, num_workers, resumed=epoch)
        logger.debug("rank %d/%d, torch worker %d/%d: epoch %d", self.rank, self.world_size, worker, num_workers, epoch)
        self._active = (loader, epoch)
        publish = self._worker_stats.publisher(loader, worker) if info is not None else None
        return worker_batches(loader.iter_epochs([epoch], worker=shard, start=start), info is not None, publish)

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
            return envelope(None)
        loader, epoch = self._active
        return envelope(epoch, loader.state_dict())

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
        self._resume_state = opened(state)
        self._resume_strict = None if strict_files is None else bool(strict_files)

    def _check_distributed(self, old: tuple[int, int], new: tuple[int, int], in_worker: bool) -> None:
        """Warn (once per dataset copy) that rank / world size changed from ``old`` to ``new`` since construction.

        Typically ``torch.distributed`` was initialised after the dataset was built, outside torchrun:
        iteration shards for ``new``, but ``len()`` and :attr:`dropped_per_epoch` read before were
        those of ``old``.
        """
        if self._warned_rank_change:
            logger.debug("rank %d of %d now (was %d of %d)", *new, *old)
            return
        self._warned_rank_change = True
        logger.warning(
            "this dataset was built for rank %d of %d, but iteration %s finds rank %d of %d (torch.distributed "
            "initialised after the dataset was built?): it shards for rank %d of %d from now on. len() and "
            "dropped_per_epoch read before were those of the old world; build the dataset after "
            "init_process_group (or under torchrun), or pass rank= and world_size=",
            *old,
            "in a torch worker" if in_worker else "in this process",
            *new,
            *new,
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
        return self._worker_stats.add_to(self._loader_here(in_worker=False).stats())

    def close(self) -> None:
        """Stop the workers of every iteration still open in this process; idempotent."""
        for loader in (self._main, self._local):
            if loader is not None:
                loader.close()

    # -- pickling -----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The dataset's settings, for a copy in another process (torch ``spawn`` / ``forkserver`` workers).

        Pickled by the training process (torch does it when the DataLoader iterator is created), it
        carries the rank and world size found then: a spawned worker cannot see the process group.
        """
        carried: tuple[int, int] | None = self._carried_rank
        if get_worker_info() is None:
            try:
                self._sync_rank(in_worker=False)
                carried = (self.rank, self.world_size)
            except UnknownRankError as exc:
                logger.debug("pickling without a rank (%s): the copy looks again when it iterates", exc)
        state = self.__dict__.copy()
        state["_carried_rank"] = carried
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
