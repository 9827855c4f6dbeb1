"""The batch stream of a resumed elastic epoch: windows built from :class:`~pyloader_core.runtime.elastic.Piece` s.

A piece may start inside its window (``begin``: what the old shard consumed) and may end before the
window does (a cut point of the re-split). The runtime skips a window's first positions itself
(``WindowWork.offset``); to stop early, the window is sent with a batch size larger than itself so
that the worker returns its samples raw, and the consumer keeps the first ``end - begin`` of them
and cuts and encodes them here at the stream's batch boundaries (one ``batch_encode`` per batch).
Only the (at most two) cut windows of a shard take that path.
"""

from __future__ import annotations

import logging
from typing import Any

from pyloader_core.runtime.elastic import ElasticPlan
from pyloader_core.runtime.plan import EpochPlan
from pyloader_core.runtime.engine import BatchStream
from pyloader_core.runtime.execute import WindowResult, WindowWork, describe_work, encode_batch, take
from pyloader_core.runtime.windows import length
from pyloader_core.skips import SkipLog

__all__ = ["ElasticStream"]

logger = logging.getLogger(__name__)


class ElasticStream(BatchStream):
    """A :class:`BatchStream` whose plans may be :class:`ElasticPlan` s (the resumed epoch).

    Example::

        ElasticStream(reader=..., plans=[lambda: elastic_plan, ...], start=ElasticPosition(3), ...)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stops: dict[tuple[int, int], tuple[WindowWork, int]] = {}

    def _num_windows(self, plan: EpochPlan) -> int:
        if isinstance(plan, ElasticPlan):
            return len(plan.pieces)
        return super()._num_windows(plan)

    def _window(self, i: int, w: int) -> WindowWork | None:
        plan = self._plan(i)
        if not isinstance(plan, ElasticPlan):
            return super()._window(i, w)
        first = self._first_window(i, plan)
        works = self._works.get(i)
        if works is None:
            works = self._works[i] = self._elastic_works(i, plan, first)
        return works[w] if w >= first else None

    def _elastic_works(self, i: int, plan: ElasticPlan, first: int) -> list[WindowWork]:
        start = self._start
        resumed = start.offset if i == 0 and start is not None and start.epoch == plan.epoch else 0
        works, position = [], 0
        for k, piece in enumerate(plan.pieces):
            offset = max(piece.begin, resumed) if k == first else piece.begin
            offset = min(offset, piece.end)
            true = WindowWork(piece.units, k, self._batch_size, piece.mix_seed, offset, position + offset - piece.begin)
            if piece.stops_early:
                keep = piece.end - offset
                big = piece.planned - offset + 1  # larger than the window: its samples come back raw
                works.append(WindowWork(piece.units, k, big, piece.mix_seed, offset, big - keep))
                self._stops[(i, k)] = (true, keep)
            else:
                works.append(true)
            position += piece.size
        return works

    def _take(self, key: tuple[int, int]) -> WindowResult:
        result = super()._take(key)
        stop = self._stops.get(key)
        if stop is not None and result.error is None:
            self._recut(result, *stop)
        return result

    def _recut(self, result: WindowResult, true: WindowWork, keep: int) -> None:
        """Keep the first ``keep`` positions of a raw window, cut at the stream's batch boundaries."""
        raw = result.head or {}
        b = self._batch_size
        head = min(keep, -(true.start or 0) % b)
        full, tail = divmod(keep - head, b)
        sizes = [head, *([b] * full), tail]
        pieces, cursor, n = [], 0, length(raw)
        for size in sizes:  # holes (on_error="skip") shorten the last pieces
            pieces.append(take(raw, slice(min(cursor, n), min(cursor + size, n))) if raw else {})
            cursor += size
        log = SkipLog() if self._options.on_error == "skip" else None
        source = describe_work(true)
        result.work = true
        result.head, result.head_planned = (pieces[0], head) if head else (None, 0)
        result.batches = [
            encode_batch(self._spec.dataset, p, source, log, self._spec.to_arrays) for p in pieces[1 : 1 + full]
        ]
        result.batch_planned = [b] * full
        result.tail, result.tail_planned = (pieces[-1], tail) if tail else (None, 0)
        result.planned = keep
        if log is not None and log.items:
            self._stats.add_skipped(log.items)
