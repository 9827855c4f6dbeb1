"""Skip mode loses only what is bad: a bad record leaves a hole, never takes its file with it, and ranks
keep equal batch counts whatever is skipped."""

from __future__ import annotations

import json

import pytest
from helpers import ids_of

from pyloader_core import DataLoader, JsonLineDataReader, Shard


def write(root, files: int = 4, per_file: int = 1000, bad: dict[int, list[int]] | None = None):
    """JSON-lines files of ``per_file`` records with unique ids; ``bad[f]``: lines of file f to corrupt."""
    root.mkdir(parents=True, exist_ok=True)
    corrupt: set[int] = set()
    k = 0
    for f in range(files):
        with open(root / f"part{f}.jsonl", "w") as fh:
            for line in range(per_file):
                if line in (bad or {}).get(f, []):
                    fh.write('{"id": %d, broken\n' % k)
                    corrupt.add(k)
                else:
                    fh.write(json.dumps({"id": k, "x": k % 7}) + "\n")
                k += 1
    return set(range(k)) - corrupt, len(corrupt)


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("mode", [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, worker_type="process")],
                         ids=["inline", "threads", "processes"])
def test_one_bad_record_costs_one_record_and_ranks_stay_equal(tmp_path, world_size, mode):
    good, n_bad = write(tmp_path / "d", bad={1: [500]})
    per_rank, batches, skipped = [], [], 0
    for rank in range(world_size):
        loader = DataLoader(JsonLineDataReader(batch_size=64), None, None, tmp_path / "d", on_error="skip",
                            rank=rank, world_size=world_size, shuffle=True, **mode)
        ids = ids_of(loader)
        per_rank.append(ids)
        batches.append(loader.stats()["batches"])
        skipped += loader.stats()["skipped_count"]
    seen = [i for ids in per_rank for i in ids]
    assert len(seen) == len(set(seen))  # no duplicates across ranks
    dropped = 4000 % world_size  # the remainder that equalises ranks
    assert len(good) - len(seen) == dropped or good - set(seen) == set()  # lost: the remainder at most
    assert len(set(seen) & good) == len(seen)  # and never a bad record
    assert len(good - set(seen)) <= dropped
    assert len(set(batches)) == 1, batches  # equal batch counts: DDP never waits for a rank
    assert skipped == n_bad == 1  # the bad record was counted once, by the rank that read it


def test_torch_style_worker_shards_keep_the_file(tmp_path):
    """Several worker shards of one rank split files by sample ranges; a bad record still costs only itself."""
    good, _ = write(tmp_path / "d", files=2, per_file=300, bad={0: [10, 11, 250]})
    loader = DataLoader(JsonLineDataReader(batch_size=16), None, None, tmp_path / "d", on_error="skip", shuffle=True)
    got = []
    for w in range(3):
        got += ids_of(loader.iter_epochs([0], worker=Shard(w, 3)))
    assert sorted(got) == sorted(good)
    assert loader.stats()["skipped_count"] == 3


def test_holes_shorten_batches_but_move_no_boundary(tmp_path):
    good, _ = write(tmp_path / "d", files=2, per_file=100, bad={0: [5, 6, 7]})
    loader = DataLoader(JsonLineDataReader(batch_size=10), None, None, tmp_path / "d", on_error="skip", world_size=1)
    plain = DataLoader(JsonLineDataReader(batch_size=10), None, None, tmp_path / "d", on_error="skip", world_size=1)
    sizes = [len(b["id"]) for b in loader]
    # The file's 3 bad records are holes at its last positions: they shorten that batch, move no other.
    assert len(sizes) == 20 and sorted(sizes) == [7] + [10] * 19 and sizes[9] == 7
    assert sum(sizes) == len(good) and ids_of(plain) == sorted(good)


def test_a_rank_whose_first_batch_is_all_holes_still_yields_it(tmp_path):
    # Found by the skip property test: with both bad records in a rank's first batch there is no
    # earlier batch to take keys and dtypes from; the empty batch is owed and yielded with the first
    # real one, so both ranks still yield 9 batches (36 samples, 2 ranks, batches of 2).
    k = 0
    for f, n in enumerate([6, 22, 8]):
        with open(tmp_path / f"c{f:02d}.jsonl", "w") as fh:
            for line in range(n):
                fh.write('{"id": %d, oops\n' % k if f != 1 and line == 0 else json.dumps({"id": k}) + "\n")
                k += 1
    counts, empties = [], []
    for rank in range(2):
        loader = DataLoader("jsonl", None, None, str(tmp_path), batch_size=2, shuffle=True, shuffle_buffer=3,
                            random_seed=2, on_error="skip", rank=rank, world_size=2)
        batches = list(loader)
        counts.append(len(batches))
        empties.append(sum(1 for b in batches if len(b["id"]) == 0))
    assert counts == [9, 9] and sum(empties) >= 1
