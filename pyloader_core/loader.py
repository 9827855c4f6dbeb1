"""The user-facing :class:`DataLoader` (the original PyLoader API, kept signature for signature)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pyloader_core import remote

from pyloader_core.collator import DataCollator, NumpyDataCollator
from pyloader_core.dataset import Dataset
from pyloader_core.runtime.engine import BatchStream, Position
from pyloader_core.errors import ConfigError
from pyloader_core.files import list_files
from pyloader_core.index import Index, check_checksums, load_index, lookup_counts
from pyloader_core.runtime.keeper import PoolKeeper
from pyloader_core.options import LoaderOptions
from pyloader_core.plan import EpochPlan, Shard, plan_epoch
from pyloader_core.progress import check_available as check_progress_available
from pyloader_core.reader import DataReader, check_columns
from pyloader_core.runtime.stats import LoaderStats

__all__ = ["LISTED_FILES", "STATE_VERSION", "DataLoader", "LoaderIterator", "files_changes", "files_fingerprint"]

logger = logging.getLogger(__name__)

DataDir = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

#: The version of the states :meth:`DataLoader.state_dict` writes (version 1 states still load).
STATE_VERSION = 2

#: File sets up to this size are listed file by file in a state (names, sizes, checksums), so that a
#: mismatch names the files that changed; larger sets keep only digests (the error then says what
#: kind of change it is: names or order, sizes, content).
LISTED_FILES = 256


@dataclasses.dataclass
class _Pass:
    """The latest pass: its stream, its worker shard, the epoch it ends before, and how it ended.

    ``own`` marks a pass of the loader's epoch sequence (``iter(loader)``), as opposed to
    :meth:`DataLoader.iter_epochs`; ``exhausted`` is set once it ran to its end.
    """

    stream: BatchStream
    worker: Shard
    end: int
    own: bool
    exhausted: bool = False


class LoaderIterator:
    """One pass over some epochs; owns its worker pool.

    Closing it (``close()``, exhaustion, an exception, ``break`` then garbage collection, or interpreter
    exit) stops every worker. Holding no reference to it is enough to stop it.
    ``exhausted`` becomes ``True`` once it ran to its end (``StopIteration``).

    Example::

        with loader.iter_epochs([3]) as it:  # epoch 3 alone
            for batch in it: ...
        it.exhausted  # True
    """

    def __init__(self, stream: BatchStream, record: _Pass | None = None) -> None:
        self._stream = stream
        self._gen = iter(stream)
        self._record = record  # told when the pass runs to its end; never refers back to the loader
        self.exhausted = False
        # The generator and the pool never refer back to this object, so dropping it finalizes at once.
        self._finalizer = weakref.finalize(self, stream.close)

    def __iter__(self) -> LoaderIterator:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._gen)
        except StopIteration:
            self.exhausted = True
            if self._record is not None:
                self._record.exhausted = True
            raise

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
        self._latest: _Pass | None = None  # the latest pass, for state_dict()
        self._keeper = PoolKeeper()
        # The kept pool must not outlive the loader (GC, interpreter exit); the keeper never refers back.
        self._finalizer = weakref.finalize(self, self._keeper.close)
        self._next_epoch = 0  # where the next pass (iter(loader)) starts
        self._resume: tuple[Position, int] | None = None  # a loaded state: position, end of its pass
        self._files_fingerprint: dict[str, Any] | None = None

    # -- planning -------------------------------------------------------------------------------

    def count_file(self, index: int, path: str) -> int | None:
        """File ``index``'s sample count, if it comes cheaply: known counts (``index.json``, an earlier
        count), else the reader's ``count_samples`` when :attr:`~DataReader.counts_cheaply`. Cached for
        the loader's life, so only the first epoch pays; ``None`` when unknown (or counting failed: the
        read then reports the real problem)."""
        if self._counts is None and not self.__dict__.get("_index_tried"):
            self._index_tried = True
            indexed = lookup_counts(self.files, self.datareader)  # index.json: counts with no pass at all
            if indexed is not None:
                self._counts = list(indexed)
        if self._counts is not None:
            return self._counts[index]
        cache = self.__dict__.setdefault("_file_counts", {})
        if index not in cache:
            n: int | None = None
            if getattr(self.datareader, "counts_cheaply", True):
                try:
                    got = self.datareader.count_samples(path)
                    n = None if got is None else int(got)
                except Exception:  # noqa: BLE001 - the worker's read names the error with context
                    n = None
            if n is None:
                return None  # not cached: the file may be readable later
            cache[index] = n
        return cache[index]

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

    def _start_pass(self, epochs: list[int], worker: Shard, start: Position | None, own: bool) -> LoaderIterator:
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
            count=self.count_file,
        )
        record = _Pass(stream, worker, epochs[-1] + 1 if epochs else self._next_epoch, own)
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
        }

    def files_fingerprint(self) -> dict[str, Any]:
        """What a state records of the data files (see :func:`files_fingerprint`); computed once.

        The first call (the first :meth:`state_dict` or :meth:`load_state_dict`) stats every file and
        reads the ``index.json`` files beside them; later calls return the same dict.
        """
        if self._files_fingerprint is None:
            self._files_fingerprint = files_fingerprint(self.files)
        return self._files_fingerprint

    def position_state(
        self, position: Position | None, worker: Shard = Shard(), *, pass_end: int | None = None
    ) -> dict[str, Any]:
        """A JSON-serialisable state for ``position`` (``None``: the start of epoch 0).

        ``pass_end``: the epoch the pass ends before (default: the position's epoch + 1), which a
        resumed ``for batch in loader`` pass runs up to.
        """
        pos = position or Position(0)
        return {
            "version": STATE_VERSION,
            "epoch": pos.epoch,
            "window": pos.window,
            "offset": pos.offset,
            "pass_end": pos.epoch + 1 if pass_end is None else max(int(pass_end), pos.epoch + 1),
            **self._fingerprint(worker),
            "files": self.files_fingerprint(),
        }

    def position_from_state(
        self, state: dict[str, Any], worker: Shard = Shard(), *, strict_files: bool = True
    ) -> Position:
        """Check ``state`` was made by a loader with the same stream-shaping options and data files;
        its position.

        Raises :class:`ConfigError` naming the options that differ, or what changed in the data files
        (added, removed, renamed, resized, content changed, reordered). With ``strict_files=False`` a
        change of files is logged as a warning instead, and the position applies to the current
        files' plan (samples may then repeat or be missed). Version 1 states (which know the files
        only by their number) load with a warning.
        """
        return self._read_state(state, worker, strict_files)[0]

    def _read_state(self, state: Any, worker: Shard, strict_files: bool) -> tuple[Position, int]:
        """The position of ``state`` and the epoch its pass ends before (see :meth:`position_from_state`)."""
        if not isinstance(state, dict):
            raise ConfigError(f"a loader state must be a dict (from state_dict()), got {type(state).__name__}")
        version = state.get("version")
        if type(version) is not int or version not in (1, STATE_VERSION):
            raise ConfigError(
                f"unsupported loader state version {version!r} (this PyLoader reads versions 1 and {STATE_VERSION})"
            )
        expected = self._fingerprint(worker)
        diff = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if diff:
            raise ConfigError(
                "the state was saved by a loader with a different stream; (saved, now): "
                + ", ".join(f"{k}={a!r}/{b!r}" for k, (a, b) in sorted(diff.items()))
            )
        try:
            position = Position(int(state["epoch"]), int(state["window"]), int(state["offset"]))
            end = int(state["pass_end"]) if version == STATE_VERSION else self.options.num_epoch
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"malformed loader state: epoch, window, offset and pass_end must be ints ({exc!r})"
            ) from None
        if min(position.epoch, position.window, position.offset) < 0:
            raise ConfigError(f"malformed loader state: negative position {position}")
        if version == 1 and self.options.world_size > 1 and self.plan(position.epoch).dropped:
            raise ConfigError(
                f"this version 1 state was saved by rank {self.options.rank} of {self.options.world_size} when the "
                f"samples left over to equalise ranks were always the last ones; they are now drawn from the seed, "
                f"so the saved position does not apply to epoch {position.epoch}'s plan. Start that epoch over "
                f"with set_epoch({position.epoch}) instead"
            )
        if version == 1:
            logger.warning(
                "loading a version 1 loader state: it knows the data files only by their number (%s), so "
                "renamed, resized or rewritten files cannot be detected; save a new state to get that check",
                state.get("num_files"),
            )
            saved_count = state.get("num_files")
            changes = [] if saved_count == len(self.files) else [f"{saved_count} files then, {len(self.files)} now"]
        else:
            changes = files_changes(state.get("files"), self.files_fingerprint())
        if changes:
            message = "the state was saved for other data files: " + "; ".join(changes)
            if strict_files:
                raise ConfigError(
                    message + ". To resume on these files on purpose, pass strict_files=False to load_state_dict "
                    "(the saved position then applies to the current files' plan: samples may repeat or be missed)"
                )
            logger.warning("%s; resuming anyway (strict_files=False)", message)
        return position, max(end, position.epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        """Where the latest pass stands, as a small JSON-serialisable dict (a position, never data).

        Resuming from it (:meth:`load_state_dict`, then iterating) yields exactly the batches an
        uninterrupted pass would have yielded after that point, whatever the workers; the pass after
        the resumed one continues with the epochs that follow. Taken after a pass ran to its end (or
        before any), the state is the start of the next pass.

        The state also records the data files (names relative to their common directory, sizes, and
        the ``index.json`` checksums when an index covers them: see :func:`files_fingerprint`), so that
        resuming on files that changed is an error rather than silent duplicates and misses.

        Example::

            state = loader.state_dict()        # after any batch
            json.dump(state, open("ckpt.json", "w"))
            ...
            loader.load_state_dict(json.load(open("ckpt.json")))
            for batch in loader: ...           # continues where the state was taken
        """
        if self._resume is not None:
            position, end = self._resume
            return self.position_state(position, pass_end=end)
        latest = self._latest
        if latest is None or (latest.own and latest.exhausted) or latest.stream.position is None:
            return self.position_state(Position(self._next_epoch), pass_end=self._next_epoch + self.options.num_epoch)
        return self.position_state(latest.stream.position, latest.worker, pass_end=latest.end)

    def load_state_dict(self, state: dict[str, Any], *, strict_files: bool = True) -> None:
        """Make the next pass resume at ``state``'s position, and run the rest of its pass.

        Raises :class:`ConfigError` on a mismatch of options or data files (see
        :meth:`position_from_state`); ``strict_files=False`` accepts changed files on purpose.

        Example::

            loader.load_state_dict(state)                      # the same files, or an error
            loader.load_state_dict(state, strict_files=False)  # files were added: resume anyway
        """
        self._resume = self._read_state(state, Shard(), strict_files)

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


# -- the data files a state knows -------------------------------------------------------------------


def _digest(value: Any) -> str:
    """A short (16 hex digits), stable digest of a JSON-able value."""
    text = json.dumps(value, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _parent(path: str) -> str:
    if remote.is_url(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def _common_root(files: Sequence[str]) -> str | None:
    """The directory (or URL prefix) every file is under; ``None`` for a mix of URLs and local paths."""
    urls = [remote.is_url(f) for f in files]
    if not files or (any(urls) and not all(urls)):
        return None
    if all(urls):
        parts = [_parent(f).split("/") for f in files]
        common: list[str] = []
        for level in zip(*parts):
            if any(p != level[0] for p in level):
                break
            common.append(level[0])
        return "/".join(common)
    return os.path.commonpath([_parent(f) for f in files])


def _relative(path: str, root: str | None) -> str:
    if root is None:
        return path
    if remote.is_url(path):
        return path[len(root) :].lstrip("/")
    return os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")


def _size(path: str) -> int | None:
    try:
        return remote.file_size(path)
    except (OSError, ImportError, ValueError) as exc:
        logger.debug("no size for %s: %s", path, exc)
        return None


def _checksums(files: Sequence[str], sizes: Sequence[int | None], root: str | None) -> list[str] | None:
    """Every file's SHA-256 from the ``index.json`` of its directory or of the common directory, or
    ``None`` unless an up-to-date entry (same size) with a checksum lists every file."""
    indexes: dict[str, Index | None] = {}
    out: list[str] = []
    for path, size in zip(files, sizes, strict=True):
        entry = None
        for directory in dict.fromkeys([_parent(path), *([root] if root else [])]):
            if directory not in indexes:
                try:
                    indexes[directory] = load_index(directory)
                except (OSError, ImportError, ValueError) as exc:
                    logger.debug("cannot read the index of %s: %s", directory, exc)
                    indexes[directory] = None
            index = indexes[directory]
            entry = index.entry_for(path) if index is not None else None
            if entry is not None:
                break
        if entry is None or not entry.sha256 or size is None or entry.bytes != size:
            return None
        out.append(entry.sha256)
    return out


_SAMPLE_BYTES = 4096


def _samples(files: Sequence[str], sizes: Sequence[int | None]) -> list[str] | None:
    """SHA-256 of each local file's size, first and last 4 KiB (``None`` if any file is remote or
    unreadable): two small reads per file, once per loader, enough to tell equal-sized files apart."""
    out = []
    for path, size in zip(files, sizes, strict=True):
        if size is None or "://" in path:
            return None
        try:
            with open(path, "rb") as f:
                head = f.read(_SAMPLE_BYTES)
                f.seek(max(0, size - _SAMPLE_BYTES))
                tail = f.read(_SAMPLE_BYTES)
        except OSError:
            return None
        out.append(hashlib.sha256(b"%d:" % size + head + b":" + tail).hexdigest())
    return out


def files_fingerprint(files: Sequence[str]) -> dict[str, Any]:
    """What a loader state records of its data files: small, JSON-able, independent of where they live.

    ``names`` is a digest of the files' names relative to their common directory, in order (data
    moved or copied elsewhere keeps its fingerprint); ``sizes`` a digest of their sizes in bytes
    (``os.stat``, or what the server reports for a URL); ``checksums`` a digest of their SHA-256
    from ``index.json`` when an up-to-date index lists every file, else ``None``. Sets of up to
    :data:`LISTED_FILES` files are also listed as ``[name, size, sha256 prefix]``, so that a
    mismatch names the files that changed.

    Example::

        files_fingerprint(list_files("data/"))
        # {'count': 7, 'names': '3f2a...', 'sizes': '91c0...', 'checksums': None,
        #  'list': [['part-00000.jsonl', 5120, None], ...]}
    """
    files = list(files)
    root = _common_root(files)
    names = [_relative(f, root) for f in files]
    sizes = [_size(f) for f in files]
    sums, kind = _checksums(files, sizes, root), "index"
    if sums is None:  # no index: a digest of each local file's first and last bytes still tells swaps
        sums, kind = _samples(files, sizes), "sample"
    out: dict[str, Any] = {
        "count": len(files),
        "names": _digest(names),
        "sizes": _digest(sizes),
        "checksums": None if sums is None else _digest(sums),
        "checksum_kind": None if sums is None else kind,
    }
    if len(files) <= LISTED_FILES:
        short = [None] * len(files) if sums is None else [c[:12] for c in sums]
        out["list"] = [[n, s, c] for n, s, c in zip(names, sizes, short, strict=True)]
    return out


def _shown(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _listed_changes(old: list[Any], new: list[Any]) -> list[str]:
    """What changed between two ``[name, size, checksum]`` lists, file by file."""
    before = {str(e[0]): (e[1], e[2]) for e in old}
    after = {str(e[0]): (e[1], e[2]) for e in new}

    def same(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
        return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])

    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    renamed = []
    for name in list(added):
        match = [r for r in removed if same(before[r], after[name])]
        if len(match) == 1:  # one gone file had exactly these facts
            renamed.append(f"{match[0]} -> {name}")
            added.remove(name)
            removed.remove(match[0])
    moved, resized, rewritten = [], [], []
    facts = "size" if all(e[2] is None for e in new) else "size and checksum"
    for name in after:
        if name not in before or same(before[name], after[name]):
            continue
        other = [m for m in before if m != name and same(before[m], after[name])]
        if other:
            m = other[0]
            if m in after and same(before[name], after[m]):
                if name < m:  # a swap: reported once
                    moved.append(f"{name} <-> {m} (each has the other's {facts})")
            else:
                moved.append(f"{name} now has the {facts} {m} had")
        elif before[name][0] != after[name][0]:
            resized.append(f"{name} ({before[name][0]} -> {after[name][0]} bytes)")
        else:
            rewritten.append(name)
    changes = []
    for label, items in (
        ("added", added),
        ("removed", removed),
        ("renamed", renamed),
        ("renamed or swapped", moved),
        ("resized", resized),
        ("content changed (checksum)", rewritten),
    ):
        if items:
            changes.append(f"{label}: {_shown(items)}")
    if not changes and [str(e[0]) for e in old] != [str(e[0]) for e in new]:
        changes.append("the files' order changed")
    return changes


def files_changes(saved: Any, now: dict[str, Any]) -> list[str]:
    """What changed between two :func:`files_fingerprint` results (``[]``: the same files).

    Checksums count only when both sides have them (an index added or removed since is no change).

    Example::

        files_changes(state["files"], files_fingerprint(list_files("data/")))
        # ['renamed or swapped: part-1.jsonl now has what part-2.jsonl had, ...']
    """
    if not isinstance(saved, dict):
        return ["the state has no record of its data files"]
    same = saved.get("names") == now["names"] and saved.get("sizes") == now["sizes"]
    both = (  # checksums of the same kind on both sides (index.json's, or sampled bytes)
        saved.get("checksums") is not None and now["checksums"] is not None
        and saved.get("checksum_kind", "index") == now.get("checksum_kind", "index")
    )
    if same and (not both or saved["checksums"] == now["checksums"]):
        return []
    old, new = saved.get("list"), now.get("list")
    if isinstance(old, list) and isinstance(new, list):
        if not both:  # compare what both sides know
            old, new = [[e[0], e[1], None] for e in old], [[e[0], e[1], None] for e in new]
        changes = _listed_changes(old, new)
        if changes:
            return changes
    changes = []
    if saved.get("count") != now["count"]:
        changes.append(f"{saved.get('count')} files then, {now['count']} now (files added or removed)")
    elif saved.get("names") != now["names"]:
        changes.append("file names or their order changed (renamed, added or removed files)")
    if saved.get("sizes") != now["sizes"] and saved.get("count") == now["count"]:
        changes.append("file sizes changed")
    if both and saved["checksums"] != now["checksums"]:
        changes.append(f"file contents changed ({now['checksum_kind']} checksums)")
    return changes or ["the files differ"]
