"""The loader's options as one frozen, keyword-only dataclass."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.sizes import parse_size

__all__ = ["LoaderOptions", "check_int"]

_WORKER_TYPES = ("thread", "process")
_ON_ERROR = ("raise", "skip")
_START_METHODS = ("auto", "fork", "forkserver", "spawn")


def check_int(name: str, value: object, minimum: int | None = None, rule: str | None = None) -> int:
    """The one int-option check: ``value`` must be an ``int`` (not a ``bool``), at least ``minimum``.

    Raises :class:`ConfigError` "``name`` must be ``rule``, got ``value``" (``rule`` defaults to
    "an int >= minimum", or "an int" without a minimum).

    Example::

        check_int("batch_size", 32, 1, "a positive int")  # 32
        check_int("seed", True)                            # ConfigError: seed must be an int, got True
    """
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        if rule is None:
            rule = "an int" if minimum is None else f"an int >= {minimum}"
        raise ConfigError(f"{name} must be {rule}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoaderOptions:
    """Everything that shapes a loader's stream, validated on construction.

    Attributes:
        num_epoch: epochs one ``for batch in loader`` runs through.
        max_queue_size: chunks in flight at most (submitted to workers and not yet consumed): the
            memory bound, together with ``shuffle_buffer``. ``"auto"``: two per worker, within
            ``max_memory``.
        shuffle: shuffle the file order per epoch and the samples within each chunk.
        random_seed: drives every shuffle: same seed, same stream, whatever the workers.
        num_workers: background workers (0: read in the consumer's thread). ``"auto"``: start with
            one and add one (up to the CPU count) whenever the consumer has to wait for data.
        worker_type: ``"thread"`` (I/O-bound or GIL-releasing work) or ``"process"`` (CPU-bound encoding).
        start_method: how process workers start: ``"auto"`` (fork while this process runs one thread,
            where fork is safe and starts in milliseconds; spawn once other threads exist),
            ``"fork"``, ``"spawn"`` or ``"forkserver"``.
        shuffle_buffer: mix the samples of this many consecutive chunks (0 or 1: no mixing).
        batch_size: overrides the reader's ``batch_size``.
        drop_last: drop each epoch's last, short batch.
        on_error: ``"raise"``, or ``"skip"`` to skip (and count) bad records, files and batches.
        rank / world_size: this process's share of each epoch (equal for every rank).
        max_memory: a byte budget (``2_000_000_000`` or ``"2GB"``) for the chunks the loader holds:
            chunks in flight are capped by their measured size so the loader stays within it.
        progress: draw a ``tqdm`` bar (samples/s, epoch, queue depth) on stderr.
        timeout: seconds to wait for a result while a worker holds a unit before raising
            :class:`~pyloader_core.WorkerTimeoutError` (naming the worker, the chunk and its stack);
            ``None``: wait, logging a warning every 60 s without progress.
        persistent_workers: keep the workers alive between passes (``iter()`` calls) until
            ``loader.close()``: no start-up cost per epoch when each epoch is its own pass
            (the PyTorch and TensorFlow adapters).
        storage_options: keyword arguments for fsspec's file system of ``scheme://`` URLs
            (credentials, ``client_kwargs={"endpoint_url": ...}``...), JSON-able: used by the
            listing, every read and every worker (threads and processes). Flat, or per protocol
            (``{"s3": {...}, "https": {...}}``). Ignored for local paths.

    Example::

        LoaderOptions(num_workers=2, worker_type="process", shuffle=True)
    """

    num_epoch: int = 1
    max_queue_size: int | str = 10
    shuffle: bool = False
    random_seed: int = 42
    num_workers: int | str = 1
    worker_type: str = "thread"
    start_method: str = "auto"
    shuffle_buffer: int = 0
    batch_size: int | None = None
    drop_last: bool = False
    on_error: str = "raise"
    rank: int = 0
    world_size: int = 1
    max_memory: int | str | None = None
    progress: bool = False
    persistent_workers: bool = False
    timeout: float | None = None
    storage_options: dict[str, Any] | None = dataclasses.field(default=None, repr=False)  # may hold secrets

    def __post_init__(self) -> None:
        check_int("num_epoch", self.num_epoch, 1)
        if self.max_queue_size != "auto":
            check_int("max_queue_size", self.max_queue_size, 1)
        if self.num_workers != "auto":
            check_int("num_workers", self.num_workers, 0)
        if self.max_memory is not None:
            try:
                object.__setattr__(self, "max_memory", parse_size(self.max_memory))
            except ConfigError as exc:
                raise ConfigError(f"max_memory: {exc}") from None
        check_int("shuffle_buffer", self.shuffle_buffer, 0)
        check_int("world_size", self.world_size, 1)
        check_int("rank", self.rank, 0)
        check_int("random_seed", self.random_seed)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank must be < world_size, got rank={self.rank}, world_size={self.world_size}")
        if self.worker_type not in _WORKER_TYPES:
            raise ConfigError(f"worker_type must be one of {_WORKER_TYPES}, got {self.worker_type!r}")
        if self.on_error not in _ON_ERROR:
            raise ConfigError(f"on_error must be one of {_ON_ERROR}, got {self.on_error!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not self.timeout > 0
        ):
            raise ConfigError(f"timeout must be a number of seconds > 0 (or None), got {self.timeout!r}")
        if self.start_method not in _START_METHODS:
            raise ConfigError(f"start_method must be one of {_START_METHODS}, got {self.start_method!r}")
        if self.storage_options is not None:
            if not isinstance(self.storage_options, dict) or not all(isinstance(k, str) for k in self.storage_options):
                raise ConfigError(
                    f"storage_options must be a dict with str keys (fsspec's file-system arguments) or None, "
                    f"got {type(self.storage_options).__name__}"
                )
            try:
                # a copy the caller cannot change afterwards; JSON-able so it travels to every worker
                object.__setattr__(self, "storage_options", json.loads(json.dumps(self.storage_options)))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"storage_options must be JSON-able (str keys; str, number, bool, None, list, dict values): {exc}") from None
