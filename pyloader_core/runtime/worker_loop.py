"""The one worker loop, for threads and processes alike: take a task, run it, deliver the result.

What differs between a thread and a process is only the channel: a thread takes tasks from a queue
and puts results on another; a process takes tasks from its pool's task queue (a socket all its
workers read) and sends results back over its own socket, in shared memory (:mod:`.transport`). The loop itself, and :func:`~.execute.run_unit` inside it, are
the same code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pyloader_core.dataset import Dataset
from pyloader_core.errors import WorkerError
from pyloader_core.reader import DataReader
from pyloader_core.runtime import transport
from pyloader_core.runtime.channel import Channel
from pyloader_core.runtime.execute import WindowResult, WindowWork, describe_work, run_window
from pyloader_core.runtime.recycle import WorkerBuffers

__all__ = ["Task", "WorkerSpec", "process_deliver", "worker_loop"]


@dataclasses.dataclass(frozen=True)
class Task:
    """A window of the plan, tagged with the pass that asked for it and its place in that pass's stream."""

    pass_id: int
    key: tuple[int, int]
    work: WindowWork


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a pool runs: the user's reader and dataset, and how.

    ``skip``: ``on_error="skip"``; ``to_arrays``: numeric list columns become arrays in the worker.
    """

    reader: DataReader
    dataset: Dataset
    skip: bool = False
    to_arrays: bool = True


def worker_loop(
    worker: int,
    spec: WorkerSpec,
    receive: Callable[[], Task | None],
    deliver: Callable[[WindowResult], None],
    *,
    portable: bool = False,
) -> None:
    """Run tasks from ``receive`` until it gives ``None``; each result goes to ``deliver``."""
    while True:
        task = receive()
        if task is None:
            return
        send_lead = _tagged(deliver, task)
        result = run_window(
            spec.reader, spec.dataset, task.work, worker=worker, skip=spec.skip, to_arrays=spec.to_arrays,
            portable=portable, send_lead=send_lead,
        )
        result.pass_id, result.key = task.pass_id, task.key
        deliver(result)


def _tagged(deliver: Callable[[WindowResult], None], task: Task) -> Callable[[WindowResult], None]:
    """``deliver`` for parts sent ahead of ``task``'s result, tagged as its result is."""

    def send(part: WindowResult) -> None:
        part.pass_id, part.key = task.pass_id, task.key
        deliver(part)

    return send


def process_deliver(
    channel: Channel, worker: int, buffers: WorkerBuffers, before_packing: Callable[[], None] = lambda: None
) -> Callable[[WindowResult], None]:
    """A process worker's ``deliver``: the result in one of ``buffers``, its descriptor over ``channel``.

    ``before_packing`` runs first (the worker reads the buffers the consumer has freed meanwhile).

    A result that cannot be pickled becomes a :class:`WorkerError` naming the column and the type (a
    part sent ahead raises instead: its batches then stay in the window's result, which reports it).
    """

    def deliver(result: WindowResult) -> None:
        before_packing()
        try:
            packed, fd = buffers.pack(result)
        except Exception as exc:  # noqa: BLE001 - reported to the consumer at this window
            if result.lead:
                raise
            what = None
            for part in (result.head, *result.batches, result.tail):
                what = what or transport.unpicklable_part(part)
            what = what or f"{type(exc).__name__}: {exc}"
            failed = WindowResult(
                result.work, worker, result.busy_s, stage="send to the consumer",
                error=WorkerError(f"the result of {describe_work(result.work)} cannot leave the worker process: {what}"),
                pass_id=result.pass_id, key=result.key,
            )
            packed, fd = buffers.pack(failed)
        channel.send(packed, () if fd is None else (fd,))  # the descriptor stays the worker's (recycle.py)

    return deliver
