"""The elastic-resume matrix: a checkpoint of world size W resumed at W', for W, W' in 1..4.

Run::

    python -m benchmarks.elastic [--chunks 24] [--stop 0.5] [--shuffle-buffer 2]

Every rank of W takes the same number of batches (``--stop`` of an epoch, as ranks in lockstep do),
rank 0's state is loaded on every rank of W', and the rest of the epoch is read. It prints, per
(W, W'): samples yielded twice, samples missed (the old plan's ``total % W`` plus the re-split's
``rest % W'``: see :mod:`pyloader_core.runtime.elastic`), the new ranks' batch counts, and the chunks a
rank opens: in an ordinary epoch at W, in the resumed epoch at W' (most over the new ranks), and in
an ordinary epoch at W'.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pyloader_core import DataLoader, DataReader

__all__ = ["main", "resume_matrix"]


class _Reader(DataReader):
    """JSON lines of ``{"id": n}``; counts the files it opens."""

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size=batch_size)
        self.opened = 0

    def read_file(self, path: str) -> tuple[dict[str, list[Any]], int]:
        self.opened += 1
        with open(path, encoding="utf-8") as f:
            got = [json.loads(line)["id"] for line in f]
        return {"id": got}, len(got)

    def count_samples(self, path: str) -> int:
        with open(path, encoding="utf-8") as f:
            return sum(1 for _ in f)


def _generate(root: Path, chunks: int) -> int:
    k = 0
    for c in range(chunks):
        with open(root / f"chunk{c:03d}.jsonl", "w", encoding="utf-8") as f:
            for _ in range(40 + (c * 37) % 61):
                f.write(json.dumps({"id": k}) + "\n")
                k += 1
    return k


def _loader(root: Path, rank: int, world: int, cfg: dict[str, Any]) -> DataLoader:
    return DataLoader(_Reader(cfg["batch_size"]), None, None, str(root), rank=rank, world_size=world,
                      num_workers=0, shuffle=True, shuffle_buffer=cfg["shuffle_buffer"])


def _ordinary_opened(root: Path, world: int, cfg: dict[str, Any]) -> int:
    loader = _loader(root, 0, world, cfg)
    for _ in loader:
        pass
    return loader.datareader.opened


def resume_matrix(root: Path, total: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (W, W'): duplicates, missing, batch counts and chunks opened (see the module doc)."""
    rows = []
    for world in range(1, 5):
        stop = int(_loader(root, 0, world, cfg).batches_per_epoch() * cfg["stop"])
        seen, states = [], []
        for r in range(world):
            loader = _loader(root, r, world, cfg)
            it = iter(loader)
            for _ in range(stop):
                seen.extend(next(it)["id"].tolist())
            states.append(json.loads(json.dumps(loader.state_dict())))
            it.close()
        for new_world in range(1, 5):
            after, batches, opened = [], [], []
            for r in range(new_world):
                loader = _loader(root, r, new_world, cfg)
                loader.load_state_dict(states[0])
                got = [b["id"].tolist() for b in loader]
                batches.append(len(got))
                opened.append(loader.datareader.opened)
                after.extend(i for b in got for i in b)
            everything = seen + after
            rows.append({
                "W": world, "W'": new_world, "duplicates": len(everything) - len(set(everything)),
                "missing": total - len(set(everything)), "batches": sorted(set(batches)),
                "opened_before": _ordinary_opened(root, world, cfg), "opened_resumed": max(opened),
                "opened_after": _ordinary_opened(root, new_world, cfg),
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=24)
    parser.add_argument("--stop", type=float, default=0.5, help="fraction of the epoch taken before the checkpoint")
    parser.add_argument("--shuffle-buffer", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    cfg = {"stop": args.stop, "shuffle_buffer": args.shuffle_buffer, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        total = _generate(root, args.chunks)
        rows = resume_matrix(root, total, cfg)
    out = sys.stdout
    out.write(f"{args.chunks} chunks, {total} samples, batch {args.batch_size}, shuffle_buffer "
              f"{args.shuffle_buffer}, checkpoint at {args.stop:.0%} of the epoch\n")
    out.write("W -> W'  duplicates  missing  batches/new rank  chunks/rank: epoch at W, resumed, epoch at W'\n")
    for r in rows:
        new_world = r["W'"]
        out.write(f"{r['W']} -> {new_world}   {r['duplicates']:10d}  {r['missing']:7d}  "
                  f"{'/'.join(map(str, r['batches'])):>16}  {r['opened_before']:11d} {r['opened_resumed']:8d} "
                  f"{r['opened_after']:11d}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
