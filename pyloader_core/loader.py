"""The user-facing :class:`DataLoader` (the original PyLoader API, kept signature for signature)."""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from pyloader_core.collator import DataCollator, NumpyDataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.runtime.engine import BatchStream, Position
from pyloader_core.errors import ConfigError
from pyloader_core.files import list_files
from pyloader_core.index import check_checksums, lookup_counts
from pyloader_core.runtime.keeper import PoolKeeper
from pyloader_core.options import LoaderOptions
from pyloader_core.plan import EpochPlan, Shard, plan_epoch
from pyloader_core.progress import check_available as check_progress_available
from pyloader_core.reader import DataReader, check_columns
from pyloader_core.runtime.stats import LoaderStats

__all__ = ["DataLoader", "LoaderIterator"]

logger = logging.getLogger(__name__)

DataDir = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


class LoaderIterator:
    """One pass over some epochs; owns its worker pool.

    Closing it (``close()``, exhaustion, an exception, ``break`` then garbage collection, or interpreter
    exit) stops every worker. Holding no reference to it is enough to stop it.
    """

    def __init__(self, stream: BatchStream) -> None:
        self._stream = stream
        self._gen = iter(stream)
        # The generator and the pool never refer back to this object, so dropping it finalizes at once.
        self._finalizer = weakref.finalize(self, stream.close)

    def __iter__(self) -> LoaderIterator:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    @property
    def epoch(self) -> int:
        """0-based epoch of the batch last returned (-1 before the first)."""
        return self._stream.epoch

    @property
    def position(self) -> Position:
        """Where the next batch starts (for :meth:`DataLoader.position_state`)."""
        return self._stream.position

    def workers_alive(self) -> int:
        """Running background workers (0 once closed)."""
        return self._stream.workers_alive()

    def close(self) -> None:
        """Stop the workers; idempotent."""
        self._gen.close()
        self._finalizer()

    def __enter__(self) -> LoaderIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DataLoader:
    """Iterates batches of chunk files that background workers read and encode.

    Memory is bounded by the chunks in flight (``max_queue_size``, plus ``shuffle_buffer`` chunks
    being mixed), never by the dataset's size. The stream is a pure function of the seed, epoch and
    options: the number of workers and their timing never change it.

    Args:
        datareader: reads one chunk file (a :class:`DataReader`, or a built-in reader's name).
        dataset: encodes a chunk's samples in the workers (``None``: pass through).
        datacollator: turns a batch into model inputs in the consumer (``None``: :class:`NumpyDataCollator`).
        data_dir: a directory (walked recursively), a glob, a file, or a list of them.
        num_epoch, max_queue_size, shuffle, random_seed: as in the original PyLoader.
        **options: any other :class:`LoaderOptions` field (``num_workers``, ``worker_type``,
            ``shuffle_buffer``, ``drop_last``, ``on_error``, ``rank``, ``world_size``, ...).

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
            from pyloader_core.readers import get_reader

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
            raise ConfigError(f"{exc}; valid options: {sorted(LoaderOptions.__dataclass_fields__)}") from None
        self.datareader = datareader
        self.dataset = dataset if dataset is not None else Dataset()
        self.datacollator = datacollator if datacollator is not None else NumpyDataCollator()
        if self.options.progress:
            check_progress_available()  # fail in the constructor, not mid-training
        self.files: list[str] = list_files(data_dir)
        self.batch_size: int = self.options.batch_size or datareader.batch_size
        self._counts: list[int] | None = None
        self._stats = LoaderStats()
        self._iterators: weakref.WeakSet[LoaderIterator] = weakref.WeakSet()
        self._default: LoaderIterator | None = None
        self._stream: BatchStream | None = None  # the latest pass's stream, for state_dict()
        self._stream_worker = Shard()
        self._keeper = PoolKeeper()
        # The kept pool must not outlive the loader (GC, interpreter exit); the keeper never refers back.
        self._finalizer = weakref.finalize(self, self._keeper.close)
        self._resume: Position | None = None

    # -- planning -------------------------------------------------------------------------------

    def sample_counts(self, *, read_if_unknown: bool = True) -> list[int] | None:
        """Every file's sample count (cached): from ``index.json`` when one lists every file with its
        current size (see ``pyloader index``), else from the reader's ``count_samples``.

        Files the reader cannot count are read in full when ``read_if_unknown``; otherwise ``None``.
        """
        if self._counts is not None:
            return self._counts
        indexed = lookup_counts(self.files, self.datareader)  # index.json beside the chunks: no counting pass
        if indexed is not None:
            self._counts = indexed
            return indexed
        counts: list[int] = []
        for path in self.files:
            n = self.datareader.count_samples(path)
            if n is None:
                if not read_if_unknown:
                    return None
                logger.info("counting samples of %s by reading it (the reader has no count_samples)", path)
                columns, n = self.datareader.read_file(path)
                n = check_columns(columns, n, path, "read_file")
            counts.append(int(n))
        self._counts = counts
        return counts

    def set_sample_counts(self, counts: Iterable[int]) -> None:
        """Give every file's sample count (in ``self.files`` order), e.g. counted once by a parent process."""
        values = [int(c) for c in counts]
        if len(values) != len(self.files) or any(c < 0 for c in values):
            raise ConfigError(f"set_sample_counts needs {len(self.files)} counts >= 0, got {len(values)}")
        self._counts = values

    def plan(self, epoch: int, worker: Shard = Shard()) -> EpochPlan:
        """The plan of ``epoch`` (0-based) for this rank and ``worker`` shard; a pure function."""
        o = self.options
        rank = Shard(o.rank, o.world_size)
        need_counts = o.world_size > 1 or worker.count > len(self.files)
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
        """Batches a full ``for batch in loader`` yields: ``num_epoch`` epochs."""
        return self.options.num_epoch * self.batches_per_epoch()

    # -- iteration ------------------------------------------------------------------------------

    def iter_epochs(
        self, epochs: Iterable[int], worker: Shard = Shard(), start: Position | None = None
    ) -> LoaderIterator:
        """An iterator over the batches of ``epochs`` (0-based) for ``worker``'s shard, with its own workers.

        ``start`` resumes inside the first of ``epochs`` (see :meth:`state_dict`).
        """
        epochs = list(epochs)
        makers = [functools.partial(self.plan, e, worker) for e in epochs]
        if start is None and epochs:
            start = Position(epochs[0])  # a no-op start, so that the position is known from the outset
        total = None
        if self.options.progress and worker.count == 1:
            try:
                total = len(epochs) * self.batches_per_epoch() * self.batch_size
            except TypeError:
                total = None  # unknown counts: the bar just counts
        stream = BatchStream(
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
        )
        self._stream, self._stream_worker = stream, worker
        it = LoaderIterator(stream)
        self._iterators.add(it)
        return it

    def __iter__(self) -> Iterator[Any]:
        """Batches of all ``num_epoch`` epochs; each call starts a new pass, from the first epoch or
        from the position given to :meth:`load_state_dict`."""
        start, self._resume = self._resume, None
        first = start.epoch if start is not None else 0
        return self.iter_epochs(range(first, self.options.num_epoch), start=start)

    def get_batch(self) -> Any:
        """The next batch of the loader's own pass (started on first call); ``StopIteration`` at the end."""
        if self._default is None:
            self._default = iter(self)  # type: ignore[assignment]
        assert self._default is not None
        return next(self._default)

    # -- checkpointing --------------------------------------------------------------------------

    def _fingerprint(self, worker: Shard = Shard()) -> dict[str, Any]:
        o = self.options
        return {
            "random_seed": o.random_seed,
            "shuffle": o.shuffle,
            "reader_shuffle": self.datareader.shuffle,
            "shuffle_buffer": o.shuffle_buffer,
            "batch_size": self.batch_size,
            "drop_last": o.drop_last,
            "rank": o.rank,
            "world_size": o.world_size,
            "worker": [worker.index, worker.count],
            "num_files": len(self.files),
        }

    def position_state(self, position: Position | None, worker: Shard = Shard()) -> dict[str, Any]:
        """A JSON-serialisable state for ``position`` (``None``: the start of epoch 0)."""
        pos = position or Position(0)
        return {"version": 1, "epoch": pos.epoch, "window": pos.window, "offset": pos.offset, **self._fingerprint(worker)}

    def position_from_state(self, state: dict[str, Any], worker: Shard = Shard()) -> Position:
        """Check ``state`` was made by a loader with the same stream-shaping options; its position."""
        if state.get("version") != 1:
            raise ConfigError(f"unsupported loader state version {state.get('version')!r} (expected 1)")
        expected = self._fingerprint(worker)
        diff = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if diff:
            raise ConfigError(
                "the state was saved by a loader with a different stream; (saved, now): "
                + ", ".join(f"{k}={a!r}/{b!r}" for k, (a, b) in sorted(diff.items()))
            )
        return Position(int(state["epoch"]), int(state["window"]), int(state["offset"]))

    def state_dict(self) -> dict[str, Any]:
        """Where the latest pass stands, as a small JSON-serialisable dict (a position, never data).

        Resuming from it (:meth:`load_state_dict`, then iterating) yields exactly the batches an
        uninterrupted pass would have yielded after that point, whatever the workers.

        Example::

            state = loader.state_dict()        # after any batch
            json.dump(state, open("ckpt.json", "w"))
            ...
            loader.load_state_dict(json.load(open("ckpt.json")))
            for batch in loader: ...           # continues where the state was taken
        """
        if self._resume is not None or self._stream is None:
            return self.position_state(self._resume)
        return self.position_state(self._stream.position, self._stream_worker)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next pass start at ``state``'s position (raises :class:`ConfigError` on a mismatch)."""
        self._resume = self.position_from_state(state)

    def get_epoch(self) -> int:
        """1-based number of the epoch the latest batch came from (0 before any), as the original API."""
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
