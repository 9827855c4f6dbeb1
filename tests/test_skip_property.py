"""Property: under on_error="skip", every good record arrives exactly once (but the remainder that
equalises ranks) and ranks yield equal batch counts, for drawn files, bad records, ranks and workers."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import ids_of

from pyloader_core import DataLoader, JsonLineDataReader


@st.composite
def scenarios(draw):
    sizes = draw(st.lists(st.integers(2, 30), min_size=1, max_size=5))
    # At most one bad record per file, anywhere in it (two would let a tiny batch be nothing but holes).
    bad = [draw(st.one_of(st.none(), st.integers(0, n - 1))) for n in sizes]
    mode = draw(st.sampled_from([
        dict(num_workers=0), dict(num_workers=1), dict(num_workers=2),
        dict(num_workers=2, worker_type="process"), dict(num_workers=1, worker_type="process"),
    ]))
    return dict(
        sizes=sizes, bad=bad, mode=mode,
        world_size=draw(st.integers(1, 4)),
        batch_size=draw(st.integers(2, 9)),
        shuffle=draw(st.booleans()),
        shuffle_buffer=draw(st.sampled_from([0, 0, 2, 3])),
        seed=draw(st.integers(0, 2**16)),
    )


def _write(root: Path, sizes: list[int], bad: list[int | None]) -> set[int]:
    good, k = set(), 0
    for f, n in enumerate(sizes):
        with open(root / f"c{f:02d}.jsonl", "w") as fh:
            for line in range(n):
                if bad[f] == line:
                    fh.write('{"id": %d, oops\n' % k)
                else:
                    fh.write(json.dumps({"id": k}) + "\n")
                    good.add(k)
                k += 1
    return good


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_skip_mode_exactly_once_and_equal_batches(s):
    root = Path(tempfile.mkdtemp(prefix="pyloader-prop-"))
    try:
        good = _write(root, s["sizes"], s["bad"])
        seen, batches, empties, skipped, dropped = [], [], [], 0, 0
        for rank in range(s["world_size"]):
            loader = DataLoader(
                JsonLineDataReader(batch_size=s["batch_size"]), None, None, root, on_error="skip",
                rank=rank, world_size=s["world_size"], shuffle=s["shuffle"], shuffle_buffer=s["shuffle_buffer"],
                random_seed=s["seed"], max_queue_size=3, **s["mode"],
            )
            seen += ids_of(loader)
            stats = loader.stats()
            batches.append(stats["batches"])
            empties.append(stats["empty_batches"] if stats["batches"] == 0 else 0)
            skipped += stats["skipped_count"]
            dropped += stats["dropped_samples"]
        assert len(seen) == len(set(seen)), "a record arrived twice"
        assert set(seen) <= good, "a bad record arrived"
        assert len(good - set(seen)) <= dropped, "a good record was lost"
        # Equal batch counts, for DDP. The one exception: a rank whose every planned record is bad has no
        # batch to model an empty one on; it yields nothing, and says so in empty_batches.
        assert len(set(batches)) == 1 or 0 in batches, f"ranks yielded {batches} batches"
        assert len(set(b + e for b, e in zip(batches, empties))) == 1, (batches, empties)
        n_bad = sum(b is not None for b in s["bad"])
        assert skipped <= n_bad and skipped + dropped >= n_bad  # each bad record counted once, unless dropped
    finally:
        shutil.rmtree(root)
