"""Per-epoch throughput of one kept loader on the default workload (counts are paid in the first epoch only).

Run::

    PYTHONPATH=. python benchmarks/epochs.py [--epochs 3] [--workers 2] [--data-dir /tmp/pyloader-epochs]

It prints samples/s and the training process's own CPU seconds for every epoch of one
``persistent_workers=True`` loader, and the bare single-thread loop's rate on the same data.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.workload import encode_file, generate, make_encoder, make_reader
from pyloader_core import DataLoader, NumpyDataCollator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", default="/tmp/pyloader-epochs")
    args = parser.parse_args(argv)
    work = generate(args.data_dir, 32, 4096)
    reader, encoder = make_reader(), make_encoder(work.vocab)
    start, n = time.perf_counter(), 0
    for path in work.files:
        n += encode_file(reader, encoder, path)[1]
    print(f"bare loop: {n / (time.perf_counter() - start):,.0f} samples/s")
    loader = DataLoader(make_reader(), make_encoder(work.vocab), NumpyDataCollator(), list(work.files), shuffle=True,
                        num_workers=args.workers, worker_type="process", persistent_workers=True)
    for epoch in range(args.epochs):
        cpu, start, n = time.process_time(), time.perf_counter(), 0
        for batch in loader:
            n += len(batch["label"])
        print(f"epoch {epoch}: {n / (time.perf_counter() - start):,.0f} samples/s, "
              f"training process CPU {time.process_time() - cpu:.2f} s")
    loader.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
