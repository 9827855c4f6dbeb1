"""What a worker does with one :class:`WorkUnit`: read, select, shuffle, encode.

This is the one worker body that thread, process and inline pools all run. It never raises, not even
``SystemExit`` or ``KeyboardInterrupt`` from user code: failures travel back as values
(:class:`UnitResult.error`) and are re-raised in the consumer's thread at the unit's place in the stream.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
import traceback

import numpy as np

from pyloader_core.dataset import Dataset
from pyloader_core.errors import SampleCountError, WorkerError
from pyloader_core.plan import WorkUnit
from pyloader_core.runtime.arrays import numeric_lists_to_arrays
from pyloader_core.runtime.memory import footprint
from pyloader_core.reader import Columns, DataReader, check_columns
from pyloader_core.remote import file_size
from pyloader_core.skips import SkipLog, SkippedItem, skip_policy

__all__ = ["UnitResult", "describe", "run_unit", "take"]


@dataclasses.dataclass
class UnitResult:
    """The outcome of one unit: encoded columns, or an error, plus accounting.

    ``pass_id`` and ``key`` say which pass asked for it and where it goes in that pass's stream.
    """

    unit: WorkUnit
    columns: Columns | None
    num_samples: int
    worker: int
    busy_s: float
    nbytes: int = 0
    skipped: list[SkippedItem] = dataclasses.field(default_factory=list)
    raw_bytes: int = 0  # memory the chunk took once read
    encoded_bytes: int = 0  # memory the encoded chunk takes
    error: BaseException | None = None
    stage: str = ""
    remote_traceback: str | None = None
    pass_id: int = -1
    key: tuple[int, int] = (-1, -1)


def take(columns: Columns, selection: slice | np.ndarray) -> Columns:
    """The samples ``selection`` picks from every column (lists stay lists, arrays stay arrays)."""
    if isinstance(selection, slice):
        return {k: v[selection] for k, v in columns.items()}
    out: Columns = {}
    for key, values in columns.items():
        if isinstance(values, np.ndarray):
            out[key] = values[selection]
        else:
            out[key] = [values[i] for i in selection.tolist()]
    return out


def _selection(unit: WorkUnit, n: int) -> slice | np.ndarray:
    stop = n if unit.stop is None else unit.stop
    if unit.expected is not None and n != unit.expected:
        raise SampleCountError(
            f"file has {n} samples but the plan was built for {unit.expected} (changed since counted?)", unit.path
        )
    if unit.seed is None:
        return slice(unit.start, stop)
    return unit.start + np.random.default_rng(unit.seed).permutation(stop - unit.start)


def _encode_skipping(dataset: Dataset, columns: Columns, n: int, unit: WorkUnit, log: SkipLog) -> tuple[Columns, int]:
    """Encode sample by sample to find the records that fail, then encode the good ones together."""
    good: list[int] = []
    for i in range(n):
        one = take(columns, slice(i, i + 1))
        try:
            check_columns(dataset.batch_encode(one), 1, unit.path, "batch_encode")
            good.append(i)
        except Exception as exc:  # noqa: BLE001 - user code; the record is reported, not lost
            log.items.append(SkippedItem(unit.path, None, f"batch_encode: {type(exc).__name__}: {exc} (sample {i})"))
    kept = take(columns, np.asarray(good, dtype=np.int64))
    if not good:
        return {}, 0
    encoded = dataset.batch_encode(kept)
    return encoded, check_columns(encoded, len(good), unit.path, "batch_encode")


def run_unit(
    reader: DataReader,
    dataset: Dataset,
    unit: WorkUnit,
    *,
    worker: int,
    skip: bool,
    to_arrays: bool = True,
    portable: bool = False,
) -> UnitResult:
    """Read, select, shuffle and encode ``unit``; never raises.

    ``to_arrays`` turns numeric list columns into numpy arrays (see :mod:`.arrays`); ``portable``
    (process workers) makes sure the error can be pickled, keeping its traceback as text.
    """
    start = time.perf_counter()
    log = SkipLog() if skip else None
    stage = "read_file"
    try:
        nbytes = _size(unit.path)
        with skip_policy(log):
            columns, n = reader.read_file(unit.path)
        n = check_columns(columns, n, unit.path, "read_file")
        raw_bytes = footprint(columns)
        selection = _selection(unit, n)
        columns = take(columns, selection)
        m = len(range(n)[selection]) if isinstance(selection, slice) else len(selection)
        stage = "batch_encode"
        if m == 0:
            encoded: Columns = {}
        else:
            try:
                encoded = dataset.batch_encode(columns)
                m = check_columns(encoded, m, unit.path, "batch_encode")
            except Exception:
                if log is None:
                    raise
                encoded, m = _encode_skipping(dataset, columns, m, unit, log)
            if to_arrays:
                encoded = numeric_lists_to_arrays(encoded)
        busy = time.perf_counter() - start
        return UnitResult(unit, encoded, m, worker, busy, nbytes, _items(log), raw_bytes, footprint(encoded))
    except BaseException as exc:  # noqa: BLE001 - errors travel as values, SystemExit included
        if log is not None and isinstance(exc, Exception):
            log.items.append(SkippedItem(unit.path, None, f"{stage}: {type(exc).__name__}: {exc}"))
            return UnitResult(unit, {}, 0, worker, time.perf_counter() - start, 0, log.items)
        result = UnitResult(unit, None, 0, worker, time.perf_counter() - start, error=exc, stage=stage)
        if portable:
            _make_portable(result)
        return result


def _items(log: SkipLog | None) -> list[SkippedItem]:
    return [] if log is None else log.items


def _size(path: str) -> int:
    try:
        return file_size(path)
    except OSError:
        return 0  # the reader reports the real problem (vanished file, remote path)


def _make_portable(result: UnitResult) -> None:
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
