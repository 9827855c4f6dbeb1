"""The engine's arithmetic: sizes of plan windows and units in planned positions (holes included), and
how many windows may be in flight.

Example::

    window_planned(work)   # planned positions of a window after its resume offset
"""

from __future__ import annotations

from typing import Any

from pyloader_core.reader import Columns
from pyloader_core.runtime.memory import MemoryBudget
from pyloader_core.runtime.execute import WindowWork
from pyloader_core.runtime.plan import EpochPlan

__all__ = ["AUTO_QUEUE_LIMIT", "counted", "length", "planned", "queue_cap", "window_planned", "window_size"]

AUTO_QUEUE_LIMIT = 64  # chunks in flight at most when max_memory decides


def window_size(plan: EpochPlan) -> int:
    """Units per window: ``shuffle_buffer`` chunks mixed, else one."""
    return plan.shuffle_buffer if plan.shuffle_buffer > 1 else 1


def planned(unit: Any) -> int:
    """Planned positions of a counted unit."""
    stop = unit.stop if unit.stop is not None else unit.expected
    return int(stop) - unit.start


def counted(units: Any) -> bool:
    """Whether every unit's size is known (from the plan's counts or the file's)."""
    return all(u.expected is not None or u.stop is not None for u in units)


def window_planned(work: WindowWork) -> int:
    """Planned positions of ``work`` after its offset (0 when its counts are unknown)."""
    if not counted(work.units):
        return 0
    return sum(planned(u) for u in work.units) - work.offset


def length(columns: Columns | None) -> int:
    """Samples in ``columns`` (0 for none)."""
    return len(next(iter(columns.values()))) if columns else 0


def queue_cap(
    num_workers: int, taken: int, worker_type: str, max_queue_size: int | str, budget: MemoryBudget | None
) -> int:
    """Windows allowed in flight now: ``max_queue_size``, or fewer to stay within ``max_memory``."""
    if num_workers == 0:
        return 1  # inline: a window runs when it is taken, so submitting ahead gains nothing
    if taken == 0 and worker_type == "thread":
        return 1  # the first chunk alone: threads share the GIL; several first chunks would all arrive late
    # The queue grows by one window per window taken, from one per worker, up to the cap: the
    # workers are never idle, and the counts new windows need are asked for a few at a time,
    # never all before the first batch.
    ramp = max(1, num_workers) + taken
    if max_queue_size != "auto":
        cap = int(max_queue_size)
    elif budget is not None:
        cap = AUTO_QUEUE_LIMIT  # the budget decides
    else:
        cap = max(2, 2 * num_workers)
    cap = min(cap, ramp)
    return cap if budget is None else budget.cap(cap)
