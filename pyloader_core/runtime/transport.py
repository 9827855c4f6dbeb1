"""A worker process's result, handed to the consumer in anonymous shared memory.

The result is pickled with protocol 5: numpy arrays give their buffers out of band, so they are
written once, by ``pwrite``, into a ``memfd`` (anonymous shared memory: no name, no file under
``/dev/shm``), after the pickle itself. Only the descriptor crosses the socket. The consumer maps
the memory and unpickles from the mapping, so its arrays are views of the worker's bytes: nothing
large is copied or parsed again. The memory goes when the last array over it does. Nothing can
leak: a descriptor nobody holds any more, in a process or in a socket, frees its memory, so a
killed consumer or a full ``/dev/shm`` change nothing.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import pickle
from typing import Any

__all__ = ["Packed", "layout_of", "pack", "unpack", "unpicklable_part", "write_layout"]

_ALIGN = 64
INLINE_MAX = 1 << 15  # a smaller result travels inside the channel message itself
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map every page in one call, not one fault per 4 KiB


@dataclasses.dataclass(frozen=True)
class Packed:
    """What the channel carries: the pickle inline, or the layout of the memfd sent alongside."""

    inline: bytes | None
    body: int = 0  # bytes of pickle at the start of the memory
    buffers: tuple[tuple[int, int], ...] = ()  # (offset, length) of each out-of-band buffer
    # Memory that goes round (see recycle.py): which of the worker's buffers, the bytes used, and
    # the worker's buffers closed since its last result, for the consumer to unmap.
    buffer: int | None = None
    size: int = 0
    retired: tuple[int, ...] = ()


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def layout_of(obj: Any) -> tuple[bytes, list[memoryview], tuple[tuple[int, int], ...], int]:
    """``obj`` pickled (protocol 5): the body, its out-of-band buffers, where each goes, the bytes in all."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [memoryview(b).cast("B") for b in buffers]
    layout: list[tuple[int, int]] = []
    offset = _aligned(len(body))
    for view in views:
        layout.append((offset, view.nbytes))
        offset = _aligned(offset + view.nbytes)
    return body, views, tuple(layout), (offset if views else len(body))


def write_layout(fd: int, body: bytes, views: list[memoryview], layout: tuple[tuple[int, int], ...]) -> None:
    """Write ``body`` at 0 and each buffer at its offset (``pwrite``: the kernel fills pages in bulk)."""
    _write_all(fd, memoryview(body), 0)
    for view, (at, _) in zip(views, layout):
        _write_all(fd, view, at)


def pack(obj: Any) -> tuple[Packed, int | None]:
    """``obj`` ready to send: a :class:`Packed` and a memfd descriptor the caller sends then closes.

    Raises what ``pickle`` raises when ``obj`` cannot be pickled.
    """
    body, views, layout, size = layout_of(obj)
    if size <= INLINE_MAX and not views:
        return Packed(body), None
    fd = os.memfd_create("pyloader-chunk", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, max(size, 1))
        write_layout(fd, body, views, layout)
    except BaseException:
        os.close(fd)
        raise
    return Packed(None, len(body), layout), fd


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def unpack(packed: Packed, fd: int | None) -> Any:
    """The object ``pack`` made; closes ``fd``. Its arrays are writable views of the shared memory."""
    if packed.inline is not None:
        if fd is not None:
            os.close(fd)
        return pickle.loads(packed.inline)
    if fd is None:
        raise ValueError("a shared-memory result arrived without its descriptor")
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)
    finally:
        os.close(fd)
    view = memoryview(mm)
    try:
        return pickle.loads(view[: packed.body], buffers=[view[a : a + n] for a, n in packed.buffers])
    finally:
        view.release()  # the arrays keep their own views; the mapping goes with the last one


def unpicklable_part(columns: dict[str, Any] | None) -> str | None:
    """Which column of ``columns`` cannot be pickled, and the type that fails, or ``None``."""
    for key, values in (columns or {}).items():
        try:
            pickle.dumps(values, protocol=5, buffer_callback=lambda _: None)
        except Exception:  # noqa: BLE001 - any pickling failure
            culprit = type(values).__name__
            if isinstance(values, (list, tuple)):
                for item in values:
                    try:
                        pickle.dumps(item)
                    except Exception:  # noqa: BLE001
                        culprit = f"{type(item).__module__}.{type(item).__qualname__}"
                        break
            return f"column {key!r} holds a {culprit}, which cannot be pickled"
    return None
