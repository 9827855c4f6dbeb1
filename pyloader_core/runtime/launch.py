"""Starting worker processes, and making sure they never outlive the training process.

Start methods (``start_method`` option):

* ``"fork"``: ``os.fork()``, done here rather than by ``multiprocessing``. The worker starts in
  milliseconds with the reader, dataset and every imported module already in memory: nothing is
  pickled or imported again. It is also the only way to start workers from a daemonic process
  (a torch ``DataLoader`` worker), where ``multiprocessing`` refuses to.
* ``"spawn"`` / ``"forkserver"``: ``multiprocessing``; the worker imports the user's script again and
  receives the pickled reader and dataset in anonymous shared memory.
* ``"auto"`` (default): ``"fork"`` when it is safe, ``"spawn"`` otherwise. Fork copies the memory
  of every thread but runs only one: a lock another thread held at that moment stays locked in the
  child forever. So fork only while no other Python thread runs and no framework that runs its own
  threads and does not prepare them for fork is loaded (TensorFlow, JAX). Native pools that do
  prepare (OpenBLAS, and torch's intra-op pools: torch's own ``DataLoader`` forks by default) do not
  count. Otherwise spawn: slower to start, which the adapters pay once per loader by keeping their
  workers across epochs.

Every worker, however started, dies with the training process: it sets ``PR_SET_PDEATHSIG`` (when
the pool was started from the main thread, the only thread sure to live as long as the process),
and a watchdog thread ends it as soon as its socket reports that the consumer's end is gone.
"""

from __future__ import annotations

import ctypes
import dataclasses
import faulthandler
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import sys
import threading
import traceback
from typing import Any

from pyloader_core.errors import ConfigError
from pyloader_core.runtime.channel import Channel, close_inherited
from pyloader_core.runtime.recycle import WorkerBuffers
from pyloader_core.runtime.worker_loop import WorkerSpec, process_deliver, worker_loop
from pyloader_core.storage.fs import install_storage_snapshot, storage_snapshot

__all__ = [
    "FORK_UNSAFE_MODULES",
    "InitFailure",
    "MAIN_GUARD_EXIT",
    "ProcessHandle",
    "STACK_SIGNAL",
    "Started",
    "fork_unsafe_reason",
    "resolve_start_method",
    "running_threads",
    "start_forked",
    "start_spawned",
    "write_payload",
]

logger = logging.getLogger(__name__)

#: Exit code of a spawned worker whose re-import of the user's script started a loader (no
#: ``if __name__ == '__main__':`` guard): it leaves quietly and the consumer raises one clear error.
MAIN_GUARD_EXIT = 78

_PR_SET_PDEATHSIG = 1
STACK_SIGNAL = signal.SIGUSR1  # a worker dumps its Python stack (faulthandler) when it gets this


def running_threads() -> int:
    """Threads this process runs now, native ones included (``/proc/self/task``)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


#: Loaded, these run threads of their own that are not ready for fork (see the module docstring).
FORK_UNSAFE_MODULES = ("tensorflow", "jax")


def fork_unsafe_reason() -> str | None:
    """Why forking now could deadlock the child, or ``None`` when it is safe."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "fork is not available on this platform"
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        return f"{len(others)} other Python thread(s) run ({', '.join(sorted(others)[:3])})"
    loaded = [m for m in FORK_UNSAFE_MODULES if m in sys.modules]
    if loaded:
        return f"{loaded[0]} is loaded"
    return None


def resolve_start_method(requested: str) -> str:
    """The start method to use for ``requested`` (``"auto"`` resolved now; see the module docstring)."""
    available = multiprocessing.get_all_start_methods()
    if requested == "auto":
        reason = fork_unsafe_reason()
        if reason is None:
            return "fork"
        logger.debug("process workers start with spawn, not fork: %s", reason)
        return "spawn"
    if requested not in available:
        raise ConfigError(f"start_method {requested!r} is not available here (available: {available})")
    return requested


class ProcessHandle:
    """A started worker process: its pid, a descriptor that becomes readable when it ends, its exit code.

    Example::

        handle = start_forked(...)
        handle.sentinel      # wait on it with multiprocessing.connection.wait
        handle.exit_code()   # None while it runs
    """

    def __init__(self, pid: int, sentinel: int, process: Any = None) -> None:
        self.pid = pid
        self.sentinel = sentinel
        self._process = process  # a multiprocessing.Process, or None when forked here
        self._status: int | None = None

    def exit_code(self) -> int | None:
        """The exit code (``-N``: killed by signal N), or ``None`` while it runs. Reaps it once ended."""
        if self._process is not None:
            return self._process.exitcode
        if self._status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): gone, code unknown
                self._status = -signal.SIGKILL if not _exists(self.pid) else None
                return self._status
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def alive(self) -> bool:
        return self.exit_code() is None

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the end; ``True`` when it has ended."""
        if self._process is not None:
            self._process.join(timeout)
            return self._process.exitcode is not None
        if self.exit_code() is None:
            select.select([self.sentinel], [], [], max(0.0, timeout))
        return self.exit_code() is not None

    def signal(self, sig: int) -> None:
        if self.exit_code() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def release(self) -> None:
        """Drop the descriptors; the process must have ended (or belong to another process's pool)."""
        if self._process is not None:
            if self._process.exitcode is not None:
                self._process.close()
        else:
            os.close(self.sentinel)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_payload(spec: WorkerSpec) -> int:
    """``spec`` pickled into anonymous shared memory, for spawned workers (no file to clean up).

    This process's storage options (:func:`~pyloader_core.storage.fs.storage_snapshot`) go with it:
    a spawned worker reaches the data the way the consumer does.
    """
    try:
        data = pickle.dumps((spec, storage_snapshot()), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        exc.add_note(
            "PyLoader: worker processes started with spawn or forkserver receive the reader and dataset "
            "pickled; they must be picklable and their classes importable (defined in a module, or in a "
            "script under `if __name__ == '__main__':`)"
        )
        raise
    fd = os.memfd_create("pyloader-payload", os.MFD_CLOEXEC)
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    return fd


def _read_payload(fd: int) -> WorkerSpec:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    os.close(fd)
    spec, storage = pickle.loads(b"".join(chunks))
    install_storage_snapshot(storage)
    return spec  # type: ignore[no-any-return]


def start_forked(
    worker: int, spec: WorkerSpec, sock: socket.socket, stack_fd: int, tasks: Channel, *, die_with_parent: bool
) -> ProcessHandle:
    """Fork a worker serving ``sock``, taking tasks from ``tasks``; the caller closes its copies of ``sock``
    and ``stack_fd``."""
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice, once by the child
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the caller's code
        code = 1
        try:
            close_inherited()
            _child_setup(sock, stack_fd, parent, die_with_parent)
            _serve(worker, spec, Channel(sock), tasks)
            code = 0
        except BaseException:  # noqa: BLE001 - last resort; the consumer sees the exit code
            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(code)
    return ProcessHandle(pid, os.pidfd_open(pid))


def start_spawned(
    ctx: Any, worker: int, name: str, sock: socket.socket, *, die_with_parent: bool
) -> ProcessHandle:
    """Start a ``multiprocessing`` worker (spawn or forkserver) serving ``sock``; it then waits for its payload."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # We are a spawned process importing the user's script (multiprocessing's bootstrapping), and
        # the script starts a loader at import: no `__main__` guard. Leave at once and quietly (not
        # multiprocessing's long RuntimeError); the consumer sees the exit code and says what to do.
        os._exit(MAIN_GUARD_EXIT)
    if multiprocessing.current_process().daemon:
        raise ConfigError(
            "this process is itself a daemonic worker (a torch DataLoader worker?) and already runs "
            f"{running_threads()} threads, so PyLoader cannot start worker processes in it: fork is unsafe "
            "with threads and multiprocessing refuses children here. Use worker_type='thread' here, or "
            "torch DataLoader(num_workers=0) with PyLoader's own process workers"
        )
    proc = ctx.Process(
        target=spawned_main, args=(worker, sock, os.getpid(), die_with_parent), name=name, daemon=True
    )
    proc.start()
    return ProcessHandle(proc.pid, proc.sentinel, proc)


def spawned_main(worker: int, sock: socket.socket, parent: int, die_with_parent: bool) -> None:
    """Entry point of a spawned worker: receive the payload, then serve like a forked one."""
    channel = Channel(sock)
    message, fds = channel.recv()
    payload_fd, stack_fd, tasks_fd = fds
    _child_setup(sock, stack_fd, parent, die_with_parent)
    try:
        spec = _read_payload(payload_fd)
    except BaseException as exc:  # noqa: BLE001 - reported to the consumer, which raises it
        channel.send(InitFailure("".join(traceback.format_exception(exc))))
        return
    _serve(worker, spec, channel, Channel(socket.socket(fileno=tasks_fd)))


class InitFailure:
    """A spawned worker could not load the reader and dataset (a class not importable there)."""

    def __init__(self, text: str) -> None:
        self.traceback = text


def _child_setup(sock: socket.socket, stack_fd: int, parent: int, die_with_parent: bool) -> None:
    # Ctrl-C goes to the whole process group; the consumer handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if die_with_parent:
        _set_parent_death_signal()
    if os.getppid() != parent:
        os._exit(0)  # the parent died before we could watch it
    faulthandler.register(STACK_SIGNAL, file=stack_fd, all_threads=True, chain=False)
    threading.Thread(target=_exit_when_consumer_gone, args=(sock,), name="pyloader-watchdog", daemon=True).start()


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog alone ends the worker


def _exit_when_consumer_gone(sock: socket.socket) -> None:
    """Block until the consumer's end of the socket is closed (its process ended), then exit at once."""
    poller = select.poll()
    poller.register(sock.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP)
    while True:
        events = poller.poll()
        if any(mask & (select.POLLHUP | getattr(select, "POLLRDHUP", 0) | select.POLLNVAL) for _, mask in events):
            os._exit(0)


def _serve(worker: int, spec: WorkerSpec, channel: Channel, tasks: Channel) -> None:
    buffers = WorkerBuffers()
    inbox = _Inbox(channel, tasks, buffers)
    deliver = process_deliver(channel, worker, buffers, before_packing=inbox.drain)
    try:
        worker_loop(worker, spec, inbox.receive, deliver, portable=True)
    except (EOFError, OSError):
        pass  # the consumer went away while we sent a result
    finally:
        buffers.close()


@dataclasses.dataclass(frozen=True)
class Started:
    """What a worker process tells the consumer when it takes a task from the pool's queue."""

    pass_id: int
    key: tuple[int, int]


class _Inbox:
    """A process worker's incoming messages: tasks from the pool's queue, the rest on its own channel.

    The worker's own channel brings the result buffers the consumer let go of, and the order to stop,
    which comes before any task. :meth:`drain` reads it before a result is packed, so a buffer freed
    meanwhile is free for this result. A task taken is announced (:class:`Started`), so the consumer
    knows which worker holds which chunk (for timeouts and deaths).
    """

    def __init__(self, channel: Channel, tasks: Channel, buffers: WorkerBuffers) -> None:
        self._channel = channel
        self._tasks = tasks
        self._buffers = buffers
        self._stop = False
        self._poller = select.poll()
        for fd in (channel.fileno(), tasks.fileno()):
            self._poller.register(fd, select.POLLIN)

    def _absorb(self, message: Any) -> None:
        if message is None:
            self._stop = True
            return
        _, returns = message
        self._buffers.take_back(returns)

    def receive(self) -> Any:
        """The next task; ``None`` to stop (asked to, or the consumer is gone)."""
        while True:
            self.drain()
            if self._stop:
                return None
            try:
                got = self._tasks.recv_waiting()  # another worker may have been quicker
            except (EOFError, OSError):
                return None
            if got is not None:
                task = got[0]
                self._channel.send(Started(task.pass_id, task.key))
                return task
            self._poller.poll()

    def drain(self) -> None:
        while True:
            try:
                got = self._channel.recv_waiting()
            except (EOFError, OSError):
                self._stop = True
                return
            if got is None:
                return
            self._absorb(got[0])
