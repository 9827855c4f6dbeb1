"""Sizes of plan windows and their units, in planned positions (holes included): the engine's arithmetic.

Example::

    window_planned(work)   # planned positions of a window after its resume offset
"""

from __future__ import annotations

from typing import Any

from pyloader_core.reader import Columns
from pyloader_core.runtime.execute import WindowWork
from pyloader_core.runtime.plan import EpochPlan

__all__ = ["counted", "length", "planned", "window_planned", "window_size"]


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
