"""A ``tqdm`` progress bar for the loader (``progress=True``): samples/s, epoch and queue depth.

``tqdm`` is optional (``pip install 'pyloader-chunks[progress]'``); :func:`check_available` raises a clear
``ImportError`` when it is missing, so that a loader asked for a bar can fail at construction
rather than mid-iteration.

Example::

    bar = ProgressBar(total=len(loader) * loader.batch_size, desc="train")
    for batch in loader:
        bar.update(samples=len(batch["label"]), batches=1, epoch=loader.get_epoch(), in_flight=3)
    bar.close()
"""

from __future__ import annotations

import logging
from typing import IO, Any

__all__ = ["ProgressBar", "check_available"]

logger = logging.getLogger(__name__)


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(
            f"progress=True needs tqdm, which could not be imported ({exc}): pip install 'pyloader-chunks[progress]'"
        ) from exc
    return tqdm


def check_available() -> None:
    """Raise ``ImportError`` (suggesting ``pip install 'pyloader-chunks[progress]'``) when tqdm is missing.

    Example::

        if options.progress:
            check_available()  # fail early, in the constructor
    """
    _tqdm()


class ProgressBar:
    """A tqdm bar counting samples (its rate is samples/s) with epoch, queue depth and batches.

    Args:
        total: the samples expected (``None``: unknown, the bar just counts).
        desc: the bar's label.
        file: where to draw it (default: ``sys.stderr``).
        disable: passed to tqdm (``None``: off when ``file`` is not a terminal).
        mininterval: seconds between redraws.

    ``update`` takes *increments* of samples and batches (what was just yielded) and the current
    ``epoch`` (shown as given) and ``in_flight`` (chunks submitted and not yet consumed).

    Example::

        with ProgressBar(total=10_000, desc="epoch") as bar:
            bar.update(samples=32, batches=1, epoch=1, in_flight=4)
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "pyloader",
        *,
        file: IO[str] | None = None,
        disable: bool | None = False,
        mininterval: float = 0.5,
    ) -> None:
        tqdm = _tqdm()
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=" samples",
            unit_scale=True,
            dynamic_ncols=True,
            file=file,
            disable=disable,
            mininterval=mininterval,
            leave=True,
        )
        self.samples = 0
        self.batches = 0
        self._postfix: tuple[int, int] | None = None
        self._closed = False

    def update(self, samples: int, batches: int = 1, epoch: int = 0, in_flight: int = 0) -> None:
        """Add ``samples`` and ``batches``; show ``epoch`` and the queue depth ``in_flight``."""
        self.samples += samples
        self.batches += batches
        if (epoch, in_flight) != self._postfix:
            self._postfix = (epoch, in_flight)
            self._bar.set_postfix_str(f"epoch={epoch}, queue={in_flight}", refresh=False)
        self._bar.update(samples)

    def finish(self) -> None:
        """The pass ended: make the bar read 100% (its total becomes what was counted; see below) and close it.

        The total given at the start is an estimate (``batches * batch_size``: a short last batch, skipped
        records or a resumed pass make it too large), so a complete pass would otherwise stop short of it.
        """
        if not self._closed and self._bar.total is not None and self._bar.n != self._bar.total:
            self._bar.total = self._bar.n
            self._bar.refresh()
        self.close()

    @property
    def postfix(self) -> str:
        """The text shown after the bar (``"epoch=1, queue=3"``)."""
        return str(self._bar.postfix or "")

    def close(self) -> None:
        """Draw the final state and release the terminal line; idempotent."""
        if not self._closed:
            self._closed = True
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
