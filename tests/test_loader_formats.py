"""Every built-in reader through the whole loader, in every worker mode (processes use shared memory)."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

from pyloader_core import DataLoader, NumpyDataCollator, get_reader

MODES = [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, worker_type="process")]
IDS = ["inline", "threads", "processes"]
N_FILES, PER_FILE = 4, 25


def write(fmt: str, root):
    root.mkdir()
    for f in range(N_FILES):
        ids = np.arange(f * PER_FILE, (f + 1) * PER_FILE)
        if fmt == "jsonl":
            (root / f"c{f}.jsonl").write_text("".join(json.dumps({"id": int(i), "x": float(i) / 2}) + "\n" for i in ids))
        elif fmt == "csv":
            with open(root / f"c{f}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["id", "x"])
                w.writerows([[i, i / 2] for i in ids])
        elif fmt == "text":
            (root / f"c{f}.txt").write_text("".join(f"{i}\n" for i in ids))
        elif fmt == "numpy":
            # wide rows so process workers hand them back through shared memory
            np.savez(root / f"c{f}.npz", id=ids, x=np.repeat(ids[:, None], 1000, axis=1).astype(np.float32))
        elif fmt == "npy":
            np.save(root / f"c{f}.npy", np.repeat(ids[:, None], 1000, axis=1).astype(np.int64))
        elif fmt == "parquet":
            pa = pytest.importorskip("pyarrow", reason="the Parquet reader needs pyarrow")
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"id": ids, "x": ids / 2}), root / f"c{f}.parquet", row_group_size=7)
    return root


def ids_from(batch, fmt):
    if fmt == "text":
        return [int(t) for t in batch["text"]]
    if fmt == "npy":
        return batch["data"][:, 0].tolist()
    return [int(i) for i in batch["id"]]


@pytest.mark.parametrize("mode", MODES, ids=IDS)
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "text", "numpy", "npy", "parquet"])
def test_every_reader_every_mode(tmp_path, fmt, mode):
    root = write(fmt, tmp_path / fmt)
    name = {"npy": "numpy"}.get(fmt, fmt)
    kwargs = {"converters": {"id": int}} if fmt == "csv" else {}
    reader = get_reader(name, batch_size=10, **kwargs)
    loader = DataLoader(reader, None, NumpyDataCollator(), root, num_epoch=2, shuffle=True, **mode)
    ids = []
    for batch in loader:
        ids.extend(ids_from(batch, fmt))
        if fmt in ("numpy", "npy"):
            wide = batch["x"] if fmt == "numpy" else batch["data"]
            assert wide.shape[1] == 1000 and (wide[:, -1] == wide[:, 0]).all()  # rows intact after hand-off
    total = N_FILES * PER_FILE
    assert sorted(ids[:total]) == sorted(ids[total:]) == list(range(total))
    assert len(loader) == 2 * -(-total // 10)


def test_skipped_record_is_logged_once(tmp_path, caplog):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.jsonl").write_text('{"id": 1}\nnot json\n{"id": 2}\n')
    loader = DataLoader("jsonl", None, None, root, num_epoch=1, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="pyloader_core"):
        ids = [i for b in loader for i in b["id"].tolist()]
    assert ids == [1, 2]
    msgs = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(msgs) == 1 and "a.jsonl:2" in msgs[0]
