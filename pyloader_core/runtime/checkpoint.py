"""A loader's checkpoints: a state is a position in the plan plus what shapes the stream, never data.

:class:`Checkpointing` is the part of :class:`~pyloader_core.runtime.loader.DataLoader` that writes
and reads states (kept apart so each file holds one concern); :mod:`.elastic_resume` adds resuming
at another world shape.
"""

from __future__ import annotations

import logging
from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.reader import DataReader
from pyloader_core.runtime.elastic_resume import ElasticResume
from pyloader_core.runtime.position import Position
from pyloader_core.runtime.fingerprint import files_changes, files_fingerprint
from pyloader_core.runtime.plan import EpochPlan, Shard

__all__ = ["Checkpointing", "STATE_VERSION"]

logger = logging.getLogger(__name__)

#: The version of the states :meth:`Checkpointing.state_dict` writes (version 1 states still load).
STATE_VERSION = 2

#: Fingerprint keys that say which shard a state belongs to: a state of another shape resumes elastically.
_SHAPE_KEYS = frozenset({"rank", "world_size", "worker"})


class Checkpointing(ElasticResume):
    """``state_dict`` / ``load_state_dict`` and their checks, for :class:`~pyloader_core.DataLoader`.

    Example::

        state = loader.state_dict()      # a small JSON-able dict
        loader.load_state_dict(state)    # the next pass resumes there
    """

    # Given by DataLoader.
    datareader: DataReader
    _latest: Any  # the latest pass (a passes.PassRecord) or None
    _resume: tuple[Position, int] | None
    _next_epoch: int
    _files_fingerprint: dict[str, Any] | None

    def plan(self, epoch: int, worker: Shard = Shard()) -> EpochPlan:
        raise NotImplementedError

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
        state = {
            "version": STATE_VERSION,
            "epoch": pos.epoch,
            "window": pos.window,
            "offset": pos.offset,
            "pass_end": pos.epoch + 1 if pass_end is None else max(int(pass_end), pos.epoch + 1),
            **self._fingerprint(worker),
            "files": self.files_fingerprint(),
            # Planned positions this shard consumed in the epoch: what an elastic resume needs.
            "consumed": self._consumed(pos, worker),
        }
        history = getattr(pos, "history", ())
        if history:
            state["history"] = [g.to_json() for g in history]
        return state

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
        reshaped = bool(diff) and set(diff) <= _SHAPE_KEYS and version == STATE_VERSION and "consumed" in state
        if diff and not reshaped:
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
        position = self._elastic_start(state, position, worker, reshaped)
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
        position = latest.stream.position
        if latest.elastic is not None and position.epoch == latest.elastic[0] and not getattr(position, "history", ()):
            from pyloader_core.runtime.elastic import ElasticPosition

            position = ElasticPosition(position.epoch, position.window, position.offset, latest.elastic[1])
        return self.position_state(position, latest.worker, pass_end=latest.end)

    def load_state_dict(self, state: dict[str, Any], *, strict_files: bool = True) -> None:
        """Make the next pass resume at ``state``'s position, and run the rest of its pass.

        Raises :class:`ConfigError` on a mismatch of options or data files (see
        :meth:`position_from_state`); ``strict_files=False`` accepts changed files on purpose.

        Example::

            loader.load_state_dict(state)                      # the same files, or an error
            loader.load_state_dict(state, strict_files=False)  # files were added: resume anyway
        """
        self._resume = self._read_state(state, Shard(), strict_files)
