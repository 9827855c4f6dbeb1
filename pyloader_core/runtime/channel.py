"""A worker process's link to the consumer: one ``SOCK_SEQPACKET`` socket pair.

Each :meth:`Channel.send` is one message (kept whole by the kernel: no framing to get wrong) of a
small pickle, optionally with file descriptors attached (``SCM_RIGHTS``): the anonymous shared
memory that carries a chunk, or the payload a spawned worker starts from. Anything big travels in
that memory, never in the socket, so a message always fits the socket buffer.

When either side's process ends, the other side reads end-of-file at once: the worker learns that
the consumer is gone, the consumer that the worker is.
"""

from __future__ import annotations

import array
import os
import pickle
import socket
import weakref
from collections.abc import Sequence
from typing import Any

__all__ = ["Channel", "ChannelClosed", "MAX_FDS", "close_inherited", "pair", "task_queue"]

#: Descriptors one message may carry.
MAX_FDS = 4
#: The largest message: results bigger than this travel in shared memory (see transport.py).
MAX_MESSAGE = 1 << 16
_ANC_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)

# The consumer's ends of every live channel of this process. A worker made by fork closes them all
# first thing: holding another worker's consumer end would hide that worker's end-of-file.
_CONSUMER_ENDS: weakref.WeakSet[Channel] = weakref.WeakSet()


class ChannelClosed(EOFError):
    """The other side closed the channel (its process ended)."""


class Channel:
    """One end of a channel; see the module docstring.

    Example::

        consumer, worker = pair()
        consumer.send(("task", 1))
        worker.recv()  # (('task', 1), [])
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any, fds: Sequence[int] = ()) -> None:
        """Send ``obj`` (pickled) and ``fds`` (duplicated into the receiver) as one message."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"channel message of {len(data)} bytes exceeds {MAX_MESSAGE}")
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            self.sock.sendmsg([data], ancillary)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed("the other side of the channel is gone") from exc

    def recv(self) -> tuple[Any, list[int]]:
        """The next message and the descriptors that came with it (the caller owns them)."""
        return self._recv(0)

    def recv_waiting(self) -> tuple[Any, list[int]] | None:
        """Like :meth:`recv` for a message already waiting; ``None`` when there is none."""
        try:
            return self._recv(socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    def _recv(self, how: int) -> tuple[Any, list[int]]:
        data, ancillary, flags, _ = self.sock.recvmsg(MAX_MESSAGE, _ANC_SPACE, how)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise OSError(f"channel message truncated (flags {flags:#x})")
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("the other side of the channel is gone")
        return pickle.loads(data), fds

    def close(self) -> None:
        self.sock.close()


def pair() -> tuple[Channel, socket.socket]:
    """A new channel: the consumer's end, and the worker's socket (to hand to the worker process)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    channel = Channel(mine)
    _CONSUMER_ENDS.add(channel)
    return channel, theirs


def task_queue() -> tuple[Channel, Channel]:
    """The queue all workers of a pool take tasks from: the consumer's (writing) end, and the workers'.

    A message on a ``SOCK_SEQPACKET`` socket goes whole to exactly one reader, so whichever worker is
    free first takes the next task: no task waits behind a slow worker's. The consumer keeps the
    workers' end too, to hand to workers it starts later and to take back tasks no worker has taken.
    """
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    writer = Channel(mine)
    _CONSUMER_ENDS.add(writer)
    return writer, Channel(theirs)


def close_inherited() -> None:
    """In a freshly forked worker: close the copies of every consumer end this process inherited."""
    for channel in list(_CONSUMER_ENDS):
        channel.close()
    _CONSUMER_ENDS.clear()
