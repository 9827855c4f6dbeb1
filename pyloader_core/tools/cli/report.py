"""What the commands print: aligned tables, and the memory a command used.

Example::

    memory = Memory()
    ...                                   # the command's work
    table([("chunks", "12"), ("memory", memory.describe() or "unknown")])
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyloader_core.sizes import format_size

__all__ = ["Memory", "children_peak_rss", "emit", "emit_error", "table"]


def emit(text: str = "") -> None:
    """Write one line of a command's output to stdout (the command line's only output channel)."""
    print(text)


def emit_error(text: str) -> None:
    """Write one line to stderr: errors and interruptions (stdout stays the command's result)."""
    print(text, file=sys.stderr)


def _rss_now() -> int | None:
    """This process's resident set size in bytes, where the platform tells it."""
    rss = _status_kib("self", "VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


def _status_kib(pid: int | str, field: str) -> int | None:
    """A ``kB`` field (``VmHWM``, ``VmRSS``) of ``/proc/PID/status``, in bytes; ``None`` off Linux."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _peak_rss() -> int | None:
    """This process's peak RSS in bytes.

    Linux: ``VmHWM``, the high-water mark of this program's own memory. (``ru_maxrss`` is not used
    there: it keeps the parent's size across fork and exec, so a child of a big process reports
    the parent's peak.) Elsewhere: ``ru_maxrss``.
    """
    hwm = _status_kib("self", "VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def children_peak_rss() -> int | None:
    """The largest peak RSS among this process's live child processes (Linux, with psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    peaks = [_status_kib(c.pid, "VmHWM") for c in psutil.Process().children(recursive=True)]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


class Memory:
    """The process's RSS when the command started, to report the peak above it.

    Example::

        memory = Memory()
        ...
        memory.describe()  # '312.0 MiB peak RSS (40.0 MiB above the 272.0 MiB at start)'
    """

    def __init__(self) -> None:
        self.start = _rss_now()

    def describe(self) -> str | None:
        peak = _peak_rss()
        if peak is None:
            return None
        text = f"{format_size(peak)} peak RSS"
        if self.start is not None:
            text += f" ({format_size(max(0, peak - self.start))} above the {format_size(self.start)} at start)"
        return text

    def fields(self) -> dict[str, int | None]:
        peak = _peak_rss()
        return {
            "peak_rss_bytes": peak,
            "start_rss_bytes": self.start,
            "peak_above_start_bytes": None if peak is None or self.start is None else max(0, peak - self.start),
        }


def table(rows: Sequence[tuple[str, str]]) -> None:
    """Print ``(key, value)`` rows, the keys aligned."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        emit(f"  {key:<{width}}  {value}")
