"""What a worker does with one window of the plan: read, select, shuffle, cut into batches, encode.

This is the one worker body that thread, process and inline pools all run. It never raises, not even
``SystemExit`` or ``KeyboardInterrupt`` from user code: failures travel back as values
(:attr:`WindowResult.error`) and are re-raised in the consumer's thread at the window's place in
the stream.

**Batches.** ``batch_encode`` gets exactly one batch, as in the original PyLoader. A window (one
chunk, or ``shuffle_buffer`` chunks mixed) is cut at the batch boundaries of the epoch's stream,
counted in *planned positions*: the samples the plan gave this shard, bad records included. When the
window's place in the stream is known (``start``: the plan knows every file's sample count), the
boundaries are global: the window's first, partial batch (``head``) and its last (``tail``) come
back raw, and the consumer joins them with the neighbouring windows' into full batches. Otherwise
the window's batches start at its own first sample and its last batch may be short.

**Holes.** Under ``on_error="skip"`` a bad record leaves a hole at a planned position: it shortens
its batch but moves no boundary, so every rank yields the same number of batches whatever is
skipped. A reader that skipped ``k`` records of a file returns ``k`` samples fewer than the file's
count; they are taken as the file's last ``k`` positions, the same in every rank and worker, so
sample ranges that split a file still never overlap.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from pyloader_core.dataset import Dataset
from pyloader_core.errors import DataFormatError, SampleCountError, WorkerError
from pyloader_core.runtime.plan import WorkUnit
from pyloader_core.reader import Columns, check_columns
from pyloader_core.storage.access import file_size
from pyloader_core.runtime.arrays import numeric_lists_to_arrays
from pyloader_core.runtime.memory import footprint
from pyloader_core.skips import SkipLog, SkippedItem, skip_policy

__all__ = ["WindowResult", "WindowWork", "concat", "describe", "describe_work", "encode_batch", "run_window", "take"]


@dataclasses.dataclass(frozen=True)
class WindowWork:
    """One window of a plan to run: its units, how to mix them, where its batches start.

    ``offset``: planned positions of the window already consumed (a resume position).
    ``start``: the planned position in the shard's epoch stream of the window's sample ``offset``,
    or ``None`` when unknown (then batches start at the window's first sample).
    """

    units: tuple[WorkUnit, ...]
    window: int
    batch_size: int
    mix_seed: int | None = None  # permutation of the window's samples (shuffle_buffer > 1)
    offset: int = 0
    start: int | None = None
    lead: int = 0  # full batches to send ahead on their own as soon as they are encoded (time to first batch)

    @property
    def epoch(self) -> int:
        return self.units[0].epoch


@dataclasses.dataclass
class WindowResult:
    """A window's batches: ``head`` and ``tail`` raw (``None``: none), full batches encoded, plus accounting.

    ``head_planned`` / ``tail_planned`` / ``batch_planned`` count planned positions (holes included).
    ``pass_id`` and ``key`` say which pass asked for it and where it goes in that pass's stream.
    ``lead``: this is the part sent ahead (the window's head and first ``work.lead`` batches, nothing
    else); the window's own result, with the rest and all the accounting, follows from the same worker.
    """

    work: WindowWork
    worker: int
    busy_s: float = 0.0
    head: Columns | None = None
    head_planned: int = 0
    batches: list[Columns] = dataclasses.field(default_factory=list)
    batch_planned: list[int] = dataclasses.field(default_factory=list)
    tail: Columns | None = None
    tail_planned: int = 0
    planned: int = 0  # planned positions of the window after ``offset``
    raw_keys: tuple[str, ...] | None = None  # what read_file returned (None: no sample), for drift checks
    samples: int = 0  # samples delivered (planned minus holes)
    nbytes: int = 0
    skipped: list[SkippedItem] = dataclasses.field(default_factory=list)
    raw_bytes: int = 0  # memory the window's chunks took once read
    encoded_bytes: int = 0  # memory the encoded batches take
    error: BaseException | None = None
    stage: str = ""
    remote_traceback: str | None = None
    pass_id: int = -1
    key: tuple[int, int] = (-1, -1)
    lead: bool = False


def take(columns: Columns, selection: slice | np.ndarray) -> Columns:
    """The samples ``selection`` picks from every column (lists stay lists, arrays stay arrays)."""
    if isinstance(selection, slice):
        return {k: v[selection] for k, v in columns.items()}
    out: Columns = {}
    index = selection.tolist()
    for key, values in columns.items():
        out[key] = values[selection] if isinstance(values, np.ndarray) else [values[i] for i in index]
    return out


def concat(parts: list[Columns], sources: list[str] | None = None) -> Columns:
    """One set of columns from several (arrays concatenated, lists joined); keys must agree.

    Raises :class:`DataFormatError` (schema drift) naming ``sources`` when they do not.
    """
    named = [(p, s) for p, s in zip(parts, sources or [""] * len(parts)) if p and len(next(iter(p.values()))) > 0]
    if not named:
        return {}
    if len(named) == 1:
        return named[0][0]
    keys = sorted(named[0][0])
    for p, source in named[1:]:
        if sorted(p) != keys:
            raise DataFormatError(
                f"schema drift: keys {sorted(p)} of {source or 'one part'} differ from {keys} of {named[0][1] or 'another'}",
                source or None,
            )
    parts = [p for p, _ in named]
    out: Columns = {}
    for key in parts[0]:
        chunks = [p[key] for p in parts]
        if all(isinstance(c, np.ndarray) for c in chunks):
            try:
                out[key] = np.concatenate(chunks)
                continue
            except ValueError:
                pass  # different sample shapes: a list of rows
        flat: list[Any] = []
        for c in chunks:
            flat.extend(c)
        out[key] = flat
    return out


@dataclasses.dataclass
class _Read:
    """A unit's delivered samples (``columns``) and which of its planned positions they fill."""

    columns: Columns
    valid: np.ndarray  # bool per planned position, in the unit's planned order


def _read_unit(reader: Any, unit: WorkUnit, log: SkipLog | None) -> _Read:
    before = 0 if log is None else len(log.items)
    with skip_policy(log):
        columns, n = reader.read_file(unit.path)
    n = check_columns(columns, n, unit.path, "read_file")
    expected = n if unit.expected is None else unit.expected
    if n != expected:
        skipped_here = 0 if log is None else sum(i.records for i in log.items[before:] if i.path == unit.path)
        if n > expected or expected - n > skipped_here:
            raise SampleCountError(
                f"file has {n} samples but the plan was built for {expected} (changed since counted?)", unit.path
            )
    stop = expected if unit.stop is None else unit.stop
    planned = stop - unit.start
    if log is not None and n < expected:
        # The file's skipped records are its positions n.. (see the module docstring): only the shard
        # whose range holds a position counts its record, so a file split across ranks counts each once.
        mine = [i for i in log.items[before:] if i.path == unit.path]
        keep = {id(item) for j, item in enumerate(mine) if unit.start <= min(n + j, expected - 1) < stop}
        log.items[before:] = [i for i in log.items[before:] if i.path != unit.path or id(i) in keep]
    if unit.seed is None:
        order = np.arange(unit.start, stop)
    else:
        order = unit.start + np.random.default_rng(unit.seed).permutation(planned)
    # A skipped record leaves the file one sample short: the missing ones are its last positions.
    valid = order < n
    picked = order[valid]
    if len(picked) == n and unit.seed is None and unit.start == 0:
        return _Read(columns, valid)
    return _Read(take(columns, picked), valid)


def _mix(reads: list[_Read], seed: int | None, sources: list[str]) -> tuple[Columns, np.ndarray]:
    """The window's samples in stream order and its validity per planned position."""
    columns = concat([r.columns for r in reads], sources) if len(reads) > 1 else reads[0].columns
    valid = np.concatenate([r.valid for r in reads]) if len(reads) > 1 else reads[0].valid
    if seed is None:
        return columns, valid
    perm = np.random.default_rng(seed).permutation(len(valid))
    sample_of = np.cumsum(valid) - 1  # planned position -> index of its sample among the delivered
    mixed_valid = valid[perm]
    return take(columns, sample_of[perm][mixed_valid]), mixed_valid


def _cuts(work: WindowWork, planned: int) -> tuple[int, list[int], int]:
    """Planned sizes of the head, the full batches and the tail of the window after its offset."""
    b = work.batch_size
    if work.start is None:  # window-aligned: no head; the tail is the last (short) batch
        full, rest = divmod(planned, b)
        return 0, [b] * full + ([rest] if rest else []), 0
    head = min(planned, -work.start % b)
    full, tail = divmod(planned - head, b)
    return head, [b] * full, tail


def encode_batch(dataset: Dataset, batch: Columns, path: str, log: SkipLog | None, to_arrays: bool) -> Columns:
    """``dataset.batch_encode`` of one batch, checked; under skip, samples it rejects are dropped and logged."""
    n = len(next(iter(batch.values()))) if batch else 0
    if n == 0:
        return {}
    try:
        encoded = dataset.batch_encode(batch)
        check_columns(encoded, n, path, "batch_encode")
    except Exception:
        if log is None:
            raise
        encoded = _encode_skipping(dataset, batch, n, path, log)
    return numeric_lists_to_arrays(encoded) if to_arrays else encoded


def _encode_skipping(dataset: Dataset, batch: Columns, n: int, path: str, log: SkipLog) -> Columns:
    """Encode sample by sample to find the records that fail, then encode the good ones together."""
    good: list[int] = []
    for i in range(n):
        try:
            check_columns(dataset.batch_encode(take(batch, slice(i, i + 1))), 1, path, "batch_encode")
            good.append(i)
        except Exception as exc:  # noqa: BLE001 - user code; the record is reported, not lost
            log.items.append(SkippedItem(path, None, f"batch_encode: {type(exc).__name__}: {exc} (sample {i})"))
    if not good:
        return {}
    kept = take(batch, np.asarray(good, dtype=np.int64))
    encoded = dataset.batch_encode(kept)
    check_columns(encoded, len(good), path, "batch_encode")
    return encoded


def run_window(
    reader: Any, dataset: Dataset, work: WindowWork, *, worker: int, skip: bool, to_arrays: bool = True,
    portable: bool = False, send_lead: Callable[[WindowResult], None] | None = None,
) -> WindowResult:
    """Read, mix, cut and encode ``work``; never raises.

    ``to_arrays`` turns numeric list columns into numpy arrays (see :mod:`.arrays`); ``portable``
    (process workers) makes sure the error can be pickled, keeping its traceback as text.
    ``send_lead``: where the part sent ahead goes (``work.lead``), when more batches follow it; if it
    raises, nothing was sent and the window's result keeps those batches.
    """
    started = time.perf_counter()
    log = SkipLog() if skip else None
    result = WindowResult(work, worker)
    stage, where = "read_file", describe(work.units[0])
    try:
        reads = []
        for unit in work.units:
            where = describe(unit)
            result.nbytes += _size(unit.path)
            try:
                reads.append(_read_unit(reader, unit, log))
            except Exception as exc:
                if log is None:
                    raise
                lost = (unit.stop if unit.stop is not None else unit.expected or 1) - unit.start
                log.items.append(SkippedItem(unit.path, None, f"read_file: {type(exc).__name__}: {exc}", max(1, lost)))
                planned = 0 if unit.expected is None and unit.stop is None else lost
                reads.append(_Read({}, np.zeros(planned, dtype=bool)))  # every planned position a hole
        result.raw_bytes = sum(footprint(r.columns) for r in reads)
        columns, valid = _mix(reads, work.mix_seed, [describe(u) for u in work.units])
        result.raw_keys = tuple(sorted(columns)) if columns and len(next(iter(columns.values()))) else None
        del reads
        if work.offset:  # planned positions consumed before a resume, and their samples
            consumed = int(np.count_nonzero(valid[: work.offset]))
            valid = valid[work.offset :]
            if consumed:
                columns = take(columns, slice(consumed, None))
        result.planned = len(valid)
        result.samples = int(np.count_nonzero(valid))
        head, batches, tail = _cuts(work, len(valid))
        stage = "batch_encode"
        where = describe_work(work)
        cursor, sample = 0, 0

        def piece(size: int) -> Columns:
            nonlocal cursor, sample
            count = int(np.count_nonzero(valid[cursor : cursor + size]))
            out = take(columns, slice(sample, sample + count))
            cursor, sample = cursor + size, sample + count
            return out

        if head:
            result.head, result.head_planned = piece(head), head
        for k, size in enumerate(batches):
            result.batches.append(encode_batch(dataset, piece(size), where, log, to_arrays))
            result.batch_planned.append(size)
            if k + 1 == work.lead and send_lead is not None and (k + 1 < len(batches) or tail):
                _send_ahead(result, send_lead)
        if tail:
            result.tail, result.tail_planned = piece(tail), tail
        result.encoded_bytes = sum(footprint(b) for b in result.batches)
    except BaseException as exc:  # noqa: BLE001 - errors travel as values, SystemExit included
        result.head = result.tail = None
        result.batches, result.batch_planned = [], []
        result.error, result.stage = exc, f"{stage} ({where})" if stage == "batch_encode" else stage
        if portable:
            _make_portable(result)
    result.busy_s = time.perf_counter() - started
    result.skipped = [] if log is None else log.items
    return result


def _send_ahead(result: WindowResult, send_lead: Callable[[WindowResult], None]) -> None:
    """Send the head and the batches encoded so far ahead, and keep only what follows them."""
    lead = WindowResult(
        result.work, result.worker, head=result.head, head_planned=result.head_planned,
        batches=result.batches, batch_planned=result.batch_planned, lead=True,
    )
    try:
        send_lead(lead)
    except Exception:  # noqa: BLE001 - e.g. a column that cannot be pickled: the window's result says so
        return
    result.head, result.head_planned, result.batches, result.batch_planned = None, 0, [], []


def describe_work(work: WindowWork) -> str:
    """The window's chunk (and sample range), or its chunks when it mixes several."""
    if len(work.units) == 1:
        return describe(work.units[0])
    return f"shuffle window {work.window} of epoch {work.epoch} ({', '.join(describe(u) for u in work.units)})"


def _size(path: str) -> int:
    try:
        return file_size(path)
    except OSError:
        return 0  # the reader reports the real problem (vanished file, remote path)


def _make_portable(result: WindowResult) -> None:
    """Keep the traceback as text and replace an unpicklable error by a :class:`WorkerError`."""
    exc = result.error
    assert exc is not None
    result.remote_traceback = "".join(traceback.format_exception(exc))
    try:
        again = pickle.loads(pickle.dumps(exc))
        if type(again) is not type(exc):
            raise TypeError(f"unpickles as {type(again).__name__}")
    except Exception as why:  # noqa: BLE001 - any pickling failure
        result.error = WorkerError(
            f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} (the exception could not cross from the worker "
            f"process: {type(why).__name__}: {why})"
        )


def describe(unit: WorkUnit) -> str:
    """``path`` plus the sample range when the unit is part of a file."""
    if unit.start == 0 and unit.stop is None:
        return unit.path
    return f"{unit.path} [samples {unit.start}:{'' if unit.stop is None else unit.stop}]"
