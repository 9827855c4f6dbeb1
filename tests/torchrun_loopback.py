"""``torchrun`` whose TCP stores listen on 127.0.0.1 only, for the tests (tests/test_torch_ddp.py).

torch's ``TCPStore`` server binds every interface whatever host it is given (torch 2.x), so even
``--rdzv-endpoint=127.0.0.1:PORT`` or ``--master_addr 127.0.0.1`` leave the rendezvous and agent stores
reachable from the network. This wrapper hands each store a socket already listening on 127.0.0.1
(``master_listen_fd``), then runs torchrun's own entry point with the given arguments::

    python tests/torchrun_loopback.py --nnodes=1 --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:0 \\
        --nproc_per_node=2 script.py ...

(Port 0: the store takes a free port.) Run the ranks with ``GLOO_SOCKET_IFNAME=lo`` so that gloo
listens on the loopback interface as well.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import torch.distributed as dist
from torch.distributed import run
from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend

_TCPStore = dist.TCPStore


def loopback_store(host_name: str, port: int, world_size: int | None = None, is_master: bool = False, **kwargs: Any):
    """A ``TCPStore``; a server listens on ``127.0.0.1:port`` only (``port`` 0: a free one)."""
    if is_master and kwargs.get("master_listen_fd") is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc  # torchrun retries on these
        kwargs["master_listen_fd"] = sock.detach()  # the store owns the socket from now on
    return _TCPStore(host_name, port, world_size, is_master, **kwargs)


if __name__ == "__main__":
    dist.TCPStore = loopback_store  # the agent's store (dynamic rendezvous looks it up here)
    c10d_rendezvous_backend.TCPStore = loopback_store  # the c10d rendezvous store
    sys.exit(run.main())
