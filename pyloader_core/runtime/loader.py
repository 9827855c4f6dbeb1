"""The user-facing :class:`DataLoader` (the original PyLoader API, kept signature for signature)."""

from __future__ import annotations

import functools
import difflib
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from pyloader_core.collator import DataCollator, NumpyDataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.runtime.engine import BatchStream
from pyloader_core.runtime.position import Position
from pyloader_core.errors import ConfigError
from pyloader_core.storage.listing import check_process_readable, list_files
from pyloader_core.index import check_checksums
from pyloader_core.runtime.checkpoint import Checkpointing
from pyloader_core.runtime.counts import SampleCounts
from pyloader_core.runtime.keeper import PoolKeeper
from pyloader_core.options import LoaderOptions
from pyloader_core.runtime.passes import LoaderIterator, PassRecord
from pyloader_core.runtime.plan import EpochPlan, Shard, plan_epoch
from pyloader_core.runtime.progress import check_available as check_progress_available
from pyloader_core.reader import DataReader
from pyloader_core.runtime.stats import LoaderStats
from pyloader_core.skips import SkipLog, skip_policy

__all__ = ["DataLoader", "LoaderIterator"]

logger = logging.getLogger(__name__)

DataDir = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

def _option_error(exc: TypeError, options: dict[str, Any]) -> str:
    """The message for options :class:`LoaderOptions` refused: the unknown names, each with the closest valid one."""
    valid = sorted(LoaderOptions.__dataclass_fields__)
    unknown = [name for name in options if name not in valid]
    if not unknown:
        return f"{exc}; valid options: {valid}"
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        parts.append(f"unknown option {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return "; ".join(parts) + f" (valid options: {', '.join(valid)})"


class DataLoader(Checkpointing):
    """Iterates batches of chunk files that background workers read and encode.

    Memory is bounded by the chunks in flight (``max_queue_size``, plus ``shuffle_buffer`` chunks
    being mixed), never by the dataset's size. The stream is a pure function of the seed, epoch and
    options: the number of workers and their timing never change it.

    Args:
        datareader: reads one chunk file (a :class:`DataReader`, or a built-in reader's name).
        dataset: encodes a chunk's samples in the workers (``None``: pass through).
        datacollator: turns a batch into model inputs in the consumer (``None``: :class:`NumpyDataCollator`).
        data_dir: a directory (walked recursively), a glob, a file, or a list of them.
        num_epoch: epochs each pass (``for batch in loader``) runs, >= 1.
        max_queue_size, shuffle, random_seed: as in the original PyLoader.
        **options: any other :class:`LoaderOptions` field (``num_workers``, ``worker_type``,
            ``shuffle_buffer``, ``drop_last``, ``on_error``, ``rank``, ``world_size``, ...).

    Passes are epochs: the first ``for batch in loader`` runs epochs ``0 .. num_epoch - 1``, the
    next one the following ``num_epoch`` epochs, and so on, each reshuffled from
    ``(random_seed, epoch)``; so ``for epoch in range(E): for batch in loader:`` trains on ``E``
    different orders (``num_epoch=1``). :meth:`set_epoch` chooses where the next pass starts, and a
    state given to :meth:`load_state_dict` makes the next pass the rest of the pass it was saved in.
    ``len(loader)`` is the number of batches of one full pass (``num_epoch`` epochs).

    Epoch numbers: :attr:`epoch` (0-based, as ``stats()["epoch"]``, :meth:`plan` and
    :meth:`set_epoch`) is the epoch of the latest batch; :meth:`get_epoch` is the same number
    1-based, as in the original API; :attr:`next_epoch` is where the next pass starts.

    Example::

        from pyloader_core import DataLoader, JsonLineDataReader, TextDataset, NumpyDataCollator

        loader = DataLoader(JsonLineDataReader(batch_size=32), TextDataset("vocab.txt"), NumpyDataCollator(),
                            "data/", num_epoch=3, shuffle=True, num_workers=2, worker_type="process")
        with loader:
            for batch in loader:
                train_step(batch["input_ids"], batch["label"])
    """

    def __init__(
        self,
        datareader: DataReader | str,
        dataset: Dataset | None = None,
        datacollator: DataCollator | None = None,
        data_dir: DataDir | None = None,
        num_epoch: int = 1,
        max_queue_size: int = 10,
        shuffle: bool = False,
        random_seed: int = 42,
        **options: Any,
    ) -> None:
        if isinstance(datareader, str):
            from pyloader_core.formats import get_reader

            datareader = get_reader(datareader)
        if not isinstance(datareader, DataReader):
            raise ConfigError(f"datareader must be a DataReader, got {type(datareader).__name__}")
        if dataset is not None and not isinstance(dataset, Dataset):
            raise ConfigError(f"dataset must be a pyloader_core.Dataset, got {type(dataset).__name__}")
        if datacollator is not None and not isinstance(datacollator, DataCollator):
            raise ConfigError(f"datacollator must be a pyloader_core.DataCollator, got {type(datacollator).__name__}")
        if data_dir is None:
            raise ConfigError("data_dir is required: a directory, a glob, a file or a list of files")
        try:
            self.options = LoaderOptions(
                num_epoch=num_epoch, max_queue_size=max_queue_size, shuffle=shuffle, random_seed=random_seed, **options
            )
        except TypeError as exc:
            raise ConfigError(_option_error(exc, options)) from None
        self.datareader = datareader
        self.dataset = dataset if dataset is not None else Dataset()
        self.datacollator = datacollator if datacollator is not None else NumpyDataCollator()
        if self.options.progress:
            check_progress_available()  # fail in the constructor, not mid-training
        self.files: list[str] = list_files(data_dir, self.options.storage_options)
        if self.options.worker_type == "process" and self.options.num_workers != 0:
            check_process_readable(self.files)  # memory:// is one process's: a ConfigError saying so
        self.batch_size: int = self.options.batch_size or datareader.batch_size
        self._sample_counts = SampleCounts(self.files, datareader)
        self._stats = LoaderStats()
        self._iterators: weakref.WeakSet[LoaderIterator] = weakref.WeakSet()
        self._default: LoaderIterator | None = None
        self._latest: PassRecord | None = None  # the latest pass, for state_dict()
        self._keeper = PoolKeeper()
        # The kept pool must not outlive the loader (GC, interpreter exit); the keeper never refers back.
        self._finalizer = weakref.finalize(self, self._keeper.close)
        self._next_epoch = 0  # where the next pass (iter(loader)) starts
        self._resume: tuple[Position, int] | None = None  # a loaded state: position, end of its pass
        self._files_fingerprint: dict[str, Any] | None = None

    # -- planning -------------------------------------------------------------------------------

    def count_file(self, index: int, path: str) -> int | None:
        """File ``index``'s sample count if it comes cheaply, else ``None`` (see :class:`.counts.SampleCounts`)."""
        return self._sample_counts.of_file(index, path)

    def sample_counts(self, *, read_if_unknown: bool = True) -> list[int] | None:
        """Every file's sample count (cached): from ``index.json`` when one lists every file with its
        current size (see ``pyloader index``), else from the reader's ``count_samples``.

        Files the reader cannot count are read in full when ``read_if_unknown``; otherwise ``None``.
        """
        return self._sample_counts.all(read_if_unknown=read_if_unknown)

    def set_sample_counts(self, counts: Iterable[int]) -> None:
        """Give every file's sample count (in ``self.files`` order), e.g. counted once by a parent process."""
        self._sample_counts.set(counts)

    def plan(self, epoch: int, worker: Shard = Shard()) -> EpochPlan:
        """The plan of ``epoch`` (0-based) for this rank and ``worker`` shard; a pure function."""
        o = self.options
        return self._plan_at(epoch, Shard(o.rank, o.world_size), worker)

    def _plan_at(self, epoch: int, rank: Shard, worker: Shard) -> EpochPlan:
        """The plan of ``epoch`` for any ``rank`` and ``worker`` shard (elastic resume plans old shards)."""
        o = self.options
        need_counts = rank.count > 1 or worker.count > len(self.files)
        # Workers split by whole-batch sample ranges when counting is cheap (index or count_samples):
        # one short batch per epoch, and batch counts that do not depend on the number of workers.
        # Whether that is possible depends on the data, never on what happens to be cached.
        counts = self.sample_counts() if need_counts else None
        if counts is None and worker.count > 1:
            counts = self.sample_counts(read_if_unknown=False)
        return plan_epoch(
            self.files,
            seed=o.random_seed,
            epoch=epoch,
            shuffle=o.shuffle,
            shuffle_samples=self.datareader.shuffle,
            shuffle_buffer=o.shuffle_buffer,
            rank=rank,
            worker=worker,
            counts=counts,
            align=self.batch_size,
        )

    def batches_per_epoch(self, epoch: int = 0) -> int:
        """Batches one epoch yields; needs sample counts (raises ``TypeError`` when they are unknown)."""
        if self.options.world_size == 1 and self.sample_counts(read_if_unknown=False) is None:
            raise TypeError(
                f"len() needs sample counts, and {type(self.datareader).__name__} cannot count without reading "
                "(implement count_samples)"
            )
        plan = self.plan(epoch)
        n = plan.num_samples if plan.num_samples is not None else sum(self.sample_counts() or [])
        return n // self.batch_size if self.options.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        """Batches one full pass (``for batch in loader``) yields: ``num_epoch`` epochs of
        :meth:`batches_per_epoch` each (a resumed pass yields only the rest of its pass).

        Raises ``TypeError`` when the sample counts are unknown (see :meth:`batches_per_epoch`).

        Example::

            loader = DataLoader("jsonl", None, None, "data/", batch_size=10, num_epoch=2)
            len(loader) == 2 * loader.batches_per_epoch()  # True
        """
        return self.options.num_epoch * self.batches_per_epoch()

    # -- iteration ------------------------------------------------------------------------------

    def iter_epochs(
        self, epochs: Iterable[int], worker: Shard = Shard(), start: Position | None = None
    ) -> LoaderIterator:
        """An iterator over the batches of ``epochs`` (0-based) for ``worker``'s shard, with its own workers.

        ``start`` resumes inside the first of ``epochs`` (see :meth:`state_dict`). It neither uses nor
        moves the epoch at which the next ``for batch in loader`` pass starts (:attr:`next_epoch`).
        """
        return self._start_pass(list(epochs), worker, start, own=False)

    def _prepare_reader(self) -> None:
        """``datareader.prepare(files)`` here, before any worker copies the reader (CSV fixes its types).

        Bad records met here are the workers' to report, in their place in the stream: under skip
        they go to a throwaway log (the worker counts them), and any error leaves the reader as it was.
        """
        try:
            with skip_policy(SkipLog() if self.options.on_error == "skip" else None):
                self.datareader.prepare(self.files)
        except Exception as exc:  # noqa: BLE001 - the worker's read of that file reports it
            logger.debug("%s.prepare failed (%s); workers decide on their own", type(self.datareader).__name__, exc)

    def _start_pass(self, epochs: list[int], worker: Shard, start: Position | None, own: bool) -> LoaderIterator:
        self._prepare_reader()
        makers = [functools.partial(self.plan, e, worker) for e in epochs]
        if start is None and epochs:
            start = Position(epochs[0])  # a no-op start, so that the position is known from the outset
        stream_class, elastic = BatchStream, None
        history = getattr(start, "history", ())
        if start is not None and history and epochs and epochs[0] == start.epoch:
            from pyloader_core.runtime.elastic_stream import ElasticStream

            plan0 = self._elastic_plan(start.epoch, history, worker)
            makers[0] = lambda: plan0
            stream_class, elastic = ElasticStream, (start.epoch, history, plan0.pieces)
        total = None
        if self.options.progress and worker.count == 1:
            try:
                total = len(epochs) * self.batches_per_epoch() * self.batch_size
            except TypeError:
                total = None  # unknown counts: the bar just counts
        stream = stream_class(
            reader=self.datareader,
            dataset=self.dataset,
            collator=self.datacollator,
            options=self.options,
            batch_size=self.batch_size,
            plans=makers,
            stats=self._stats,
            start=start,
            progress_total=total,
            keeper=self._keeper if self.options.persistent_workers else None,
            count=self.count_file,
        )
        record = PassRecord(stream, worker, epochs[-1] + 1 if epochs else self._next_epoch, own, elastic=elastic)
        self._latest = record
        it = LoaderIterator(stream, record)
        self._iterators.add(it)
        return it

    def __iter__(self) -> Iterator[Any]:
        """A new pass: the next ``num_epoch`` epochs (from :attr:`next_epoch`), or the rest of the
        pass a state given to :meth:`load_state_dict` was saved in.

        The pass claims its epochs when it starts: a pass broken off part way still uses them up, and
        the next pass continues after them.

        Example::

            loader = DataLoader("jsonl", None, None, "data/", shuffle=True)  # num_epoch=1
            for epoch in range(3):
                for batch in loader:  # epochs 0, 1, 2: a new order every time
                    ...
        """
        if self._resume is not None:
            (start, end), self._resume = self._resume, None
            first: Position | None = start
            epochs = list(range(start.epoch, end))
        else:
            first = None
            epochs = list(range(self._next_epoch, self._next_epoch + self.options.num_epoch))
            end = epochs[-1] + 1
        self._next_epoch = end
        logger.debug("pass over epochs %d..%d", epochs[0] if epochs else end, end - 1)
        return self._start_pass(epochs, Shard(), first, own=True)

    def get_batch(self) -> Any:
        """The next batch of the loader's own pass (started on first call); ``StopIteration`` at the end.

        That pass is a pass like ``for batch in loader``: it runs the next ``num_epoch`` epochs.
        """
        if self._default is None:
            self._default = iter(self)  # type: ignore[assignment]
        assert self._default is not None
        return next(self._default)

    # -- epochs -----------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass start at ``epoch`` (0-based); later passes follow on from there.

        A state given to :meth:`load_state_dict` and not yet used takes precedence for the next pass
        (a warning says so when its epoch differs).

        Example::

            for epoch in range(start_epoch, 10):
                loader.set_epoch(epoch)  # as torch's DistributedSampler.set_epoch
                for batch in loader: ...
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ConfigError(f"epoch must be an int >= 0, got {epoch!r}")
        if self._resume is not None and self._resume[0].epoch != epoch:
            logger.warning(
                "set_epoch(%d) while a loaded state resumes epoch %d: the next pass resumes the state, "
                "the one after it starts at epoch %d",
                epoch,
                self._resume[0].epoch,
                self._resume[1],
            )
        self._next_epoch = epoch

    @property
    def next_epoch(self) -> int:
        """The 0-based epoch the next pass starts at (the resumed one, when a state is loaded)."""
        return self._resume[0].epoch if self._resume is not None else self._next_epoch

    @property
    def epoch(self) -> int:
        """0-based epoch of the latest batch (-1 before any): ``stats()["epoch"]``, ``get_epoch() - 1``."""
        return self._stats.epoch

    def get_epoch(self) -> int:
        """1-based number of the epoch the latest batch came from (0 before any), as the original API.

        The same epoch as :attr:`epoch` (0-based), plus one.
        """
        return self._stats.epoch + 1

    def stats(self) -> dict[str, Any]:
        """Counters over every pass so far: samples, batches, bytes read, consumer wait time, skips..."""
        return self._stats.snapshot()

    def verify(self) -> None:
        """Check every chunk's size and SHA-256 against ``index.json`` (reads every byte once).

        Raises :class:`~pyloader_core.index.ChecksumError` naming the chunks that differ or are not indexed.
        """
        check_checksums(self.files)

    def close(self) -> None:
        """Stop every pass's workers; idempotent. The loader can be iterated again afterwards."""
        for it in list(self._iterators):
            it.close()
        self._default = None
        self._keeper.close()
        self._keeper = PoolKeeper()  # the loader may be iterated again
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, self._keeper.close)

    def __enter__(self) -> DataLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
