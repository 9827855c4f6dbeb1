"""A position in an epoch's stream: all a checkpoint needs (the plan and every shuffle are re-derived)."""

from __future__ import annotations

import dataclasses

__all__ = ["Position"]


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a stream stands: the next sample is ``offset`` into shuffle window ``window`` of ``epoch``.

    A window is ``shuffle_buffer`` consecutive units of the plan (one unit without a buffer);
    ``offset`` counts its planned positions (bad records skipped under ``on_error="skip"`` included).
    This is all a checkpoint needs: the plan and every shuffle are re-derived from the seed, and
    windows before ``window`` are never read again.
    """

    epoch: int
    window: int = 0
    offset: int = 0
