"""Before/after figures for the edges issue (skip mode, CSV quotes, listing, resume, per-batch encode, passes).

Run against any checkout: ``PYTHONPATH=<tree> python benchmarks/edges.py``. Each line is one edge
and what the loader did on it.
"""
import json, os, sys, tempfile, pathlib, shutil  # noqa: E401

import numpy as np

from pyloader_core import CsvDataReader, DataLoader, Dataset, JsonLineDataReader


class Pad(Dataset):
    """Pads to the longest text of the batch it is given (dynamic padding)."""

    def batch_encode(self, batch):
        toks = [[len(w) for w in t.split()] for t in batch["text"]]
        width = max(map(len, toks))
        return {"id": batch["id"], "x": [t + [0] * (width - len(t)) for t in toks]}


def ids(loader):
    return [i for b in loader for i in np.asarray(b["id"]).tolist()]


def main() -> None:
    root = pathlib.Path(tempfile.mkdtemp())

    # 1. skip mode with 2 ranks: one bad line among 4 x 1000
    d = root / "s"; d.mkdir()
    k = 0
    for f in range(4):
        with open(d / f"p{f}.jsonl", "w") as fh:
            for line in range(1000):
                fh.write('{"id": %d, bad\n' % k if (f == 1 and line == 500) else json.dumps({"id": k}) + "\n"); k += 1
    got, batches, skipped = [], [], 0
    for r in range(2):
        l = DataLoader(JsonLineDataReader(batch_size=64), None, None, d, on_error="skip", rank=r, world_size=2)
        got += ids(l); batches.append(l.stats()["batches"]); skipped += l.stats()["skipped_count"]
    print(f"1. skip, 2 ranks, 1 bad line of 4000: delivered {len(got)}, lost good {3999 - len(set(got))}, skipped_count {skipped}, batches per rank {batches}")

    # 2. CSV stray quote at row 21 of 150
    c = root / "c"; c.mkdir()
    rows = ["id,text"] + [f"{i},word{i}" for i in range(150)]
    rows[21] = '20,"stray'
    (c / "a.csv").write_text("\n".join(rows) + "\n")
    l = DataLoader(CsvDataReader(batch_size=10, converters={"id": int}), None, None, c, on_error="skip")
    print(f"2. CSV stray quote at row 21 of 150: delivered {len(ids(l))}, skipped_count {l.stats()['skipped_count']}")

    # 3. symlink loop
    y = root / "y"; y.mkdir(); (y / "a.jsonl").write_text(json.dumps({"id": 1}) + "\n")
    os.symlink(y, y / "loop")
    try:
        n = len(DataLoader(JsonLineDataReader(), None, None, y).files)
    except Exception as exc:
        n = f"{type(exc).__name__}"
    print(f"3. symlink loop: the one file is listed {n} time(s)")

    # 4. two chunk files swap names between save and resume
    w = root / "w"; w.mkdir()
    for f in range(4):
        with open(w / f"c{f}.jsonl", "w") as fh:
            for i in range(25 * f, 25 * f + 25 + (f == 3)):
                fh.write(json.dumps({"id": i}) + "\n")
    l = DataLoader(JsonLineDataReader(batch_size=10), None, None, w)
    it = iter(l); first = [next(it) for _ in range(3)]; state = l.state_dict(); it.close()
    head = [i for b in first for i in b["id"].tolist()]
    os.rename(w / "c1.jsonl", w / "tmp"); os.rename(w / "c2.jsonl", w / "c1.jsonl"); os.rename(w / "tmp", w / "c2.jsonl")
    l2 = DataLoader(JsonLineDataReader(batch_size=10), None, None, w)
    try:
        l2.load_state_dict(state); rest = ids(l2)
        allids = head + rest
        print(f"4. swapped names, resume: accepted; duplicates {len(allids) - len(set(allids))}, never seen {101 - len(set(allids))}")
    except Exception as exc:
        print(f"4. swapped names, resume: {type(exc).__name__}: {str(exc)[:150]}")

    # 5. dynamic padding (pad to the batch's longest)
    p = root / "p"; p.mkdir()
    for f in range(3):
        with open(p / f"c{f}.jsonl", "w") as fh:
            for i in range(37):
                fh.write(json.dumps({"id": f * 37 + i, "text": " ".join(["ab"] * (1 + (i * 7 + f) % 90))}) + "\n")
    try:
        bs = list(DataLoader(JsonLineDataReader(batch_size=8), Pad(), None, p, shuffle=True, num_workers=2, worker_type="process"))
        ok = all(b["x"].shape[1] == (b["x"] != 0).sum(1).max() for b in bs)
        print(f"5. dynamic padding, process workers, shuffle: {len(bs)} batches, each padded to its own longest: {ok}")
    except Exception as exc:
        print(f"5. dynamic padding: {type(exc).__name__}: {str(exc)[:120]}")

    # 6. torch-style loop over a shuffled core loader
    l = DataLoader(JsonLineDataReader(batch_size=10), None, None, w, shuffle=True)
    orders = [tuple(ids(l)) for _ in range(3)]
    print(f"6. for epoch in range(3): for batch in loader: {len(set(orders))} distinct order(s) of 3")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
