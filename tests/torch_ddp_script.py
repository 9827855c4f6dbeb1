"""One rank of the torchrun test (tests/test_torch_ddp.py): DDP training over TorchChunkDataset.

Run by ``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/torch_ddp_script.py
--data DIR --out DIR``. Each rank trains a tiny model with DDP (gloo, CPU) for ``--epochs`` epochs and
writes ``rank<r>.json``: per epoch the sample ids it saw and its step count, plus ``len()`` and the
dropped-sample count it reports. Rank and world size come from torch.distributed, not from arguments.

``--build-before-init`` builds the dataset before ``init_process_group`` (it then finds its rank when
iteration starts); ``--torch-workers 2,0`` trains with one torch DataLoader per listed worker count
(``runs`` in the JSON; ``epochs`` is the first one's). Rank 0 also lists the TCP addresses that the
processes of the run (its session) listen on.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader as TorchDataLoader

from pyloader_core import JsonLineDataReader
from pyloader_torch import TorchChunkDataset


def listening_addresses() -> list[str]:
    """``host:port`` of every TCP socket that a process of this session listens on (Linux ``/proc``)."""
    session = os.getsid(0)
    inodes: set[str] = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat, encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # fields after "(comm)": state, ppid, pgrp, session
                continue
            fd_dir = os.path.join(os.path.dirname(stat), "fd")
            for fd in os.listdir(fd_dir):
                target = os.readlink(os.path.join(fd_dir, fd))
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # a process that just exited, or is not ours
            continue
    out = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table, encoding="utf-8") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        for row in rows:
            if row[3] != "0A" or row[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = row[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            out.append(f"{socket.inet_ntop(family, raw)}:{int(hex_port, 16)}")
    return sorted(out)


def build_dataset(args: argparse.Namespace) -> TorchChunkDataset:
    return TorchChunkDataset(
        JsonLineDataReader(batch_size=args.batch_size), None, None, args.data, shuffle=True, random_seed=123
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--torch-workers", default="1", help="torch DataLoader workers; a comma list: one run each")
    parser.add_argument("--build-before-init", action="store_true", help="build the dataset before init_process_group")
    args = parser.parse_args()

    torch.set_num_threads(1)
    ds = build_dataset(args) if args.build_before_init else None
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if ds is None:
        ds = build_dataset(args)
    dist.barrier()  # every rank's process group (and its listening sockets) is up
    listening = listening_addresses() if rank == 0 else None
    torch.manual_seed(0)

    model = DistributedDataParallel(torch.nn.Linear(2, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()

    runs = []
    for torch_workers in (int(w) for w in args.torch_workers.split(",")):
        loader = TorchDataLoader(ds, batch_size=None, num_workers=torch_workers)
        epochs = []
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            ids: list[int] = []
            steps = 0
            for batch in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(batch["x"].float()), batch["label"])
                loss.backward()  # all-reduce: a rank with an extra step would wait here forever
                optimizer.step()
                ids.extend(batch["id"].tolist())
                steps += 1
            epochs.append({"epoch": epoch, "ids": ids, "steps": steps, "loss": float(loss)})
            dist.barrier()
        runs.append({"torch_workers": torch_workers, "epochs": epochs})

    result = {
        "rank": rank,
        "world_size": world_size,
        "ds_rank": ds.rank,
        "ds_world_size": ds.world_size,
        "len": len(ds),
        "dropped_per_epoch": ds.dropped_per_epoch,
        "epochs": runs[0]["epochs"],
        "runs": runs,
        "listening": listening,
    }
    with open(os.path.join(args.out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
