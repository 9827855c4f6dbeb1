"""One rank of the torchrun test (tests/test_torch_ddp.py): DDP training over TorchChunkDataset.

Run by ``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/torch_ddp_script.py
--data DIR --out DIR``. Each rank trains a tiny model with DDP (gloo, CPU) for ``--epochs`` epochs and
writes ``rank<r>.json``: per epoch the sample ids it saw and its step count, plus ``len()`` and the
dropped-sample count it reports. Rank and world size come from torch.distributed, not from arguments.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader as TorchDataLoader

from pyloader_core import JsonLineDataReader
from pyloader_torch import TorchChunkDataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--torch-workers", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    ds = TorchChunkDataset(
        JsonLineDataReader(batch_size=args.batch_size), None, None, args.data, shuffle=True, random_seed=123
    )
    loader = TorchDataLoader(ds, batch_size=None, num_workers=args.torch_workers)
    model = DistributedDataParallel(torch.nn.Linear(2, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()

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

    result = {
        "rank": rank,
        "world_size": world_size,
        "ds_rank": ds.rank,
        "ds_world_size": ds.world_size,
        "len": len(ds),
        "dropped_per_epoch": ds.dropped_per_epoch,
        "epochs": epochs,
    }
    with open(os.path.join(args.out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
