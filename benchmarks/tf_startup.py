"""Start-up per pass under the TensorFlow adapter: process workers vs thread workers, in a script
that imports tensorflow at its top (as training scripts do).

Each Keras epoch is a new pass over ``make_tf_dataset``. Run::

    PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/tf_startup.py [--passes 4] [--chunks 8]

It prints the seconds of every pass for 2 process workers and 2 thread workers, each in a fresh
interpreter, and the ratio of passes 2..N (the target: process <= 1.2x thread). Pass 1 includes the
workers' start-up: with tensorflow loaded, process workers spawn (fork is unsafe with TensorFlow's
threads) and each imports this script, and so tensorflow, once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import tensorflow as tf  # noqa: F401  - the point: a training script that imports tensorflow at its top

from benchmarks.workload import generate, make_encoder, make_reader

RESULT_TAG = "TF-STARTUP "


def one(worker_type: str, data_root: str, chunks: int, passes: int) -> None:
    from pyloader_tf import TFCollator, make_tf_dataset

    work = generate(data_root, chunks, 2048)
    ds = make_tf_dataset(make_reader(), make_encoder(work.vocab), TFCollator(), list(work.files), num_workers=2,
                         worker_type=worker_type)
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        n = sum(int(b["label"].shape[0]) for b in ds)
        times.append(time.perf_counter() - start)
    ds.pyloader.close()
    print(RESULT_TAG + json.dumps({"worker_type": worker_type, "times": times, "samples": n}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--one", choices=["thread", "process"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args.data, args.chunks, args.passes)
        return 0
    with tempfile.TemporaryDirectory(prefix="pyloader-tf-startup-") as root:
        results = {}
        for worker_type in ("process", "thread"):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.tf_startup", "--one", worker_type, "--data", root,
                 "--chunks", str(args.chunks), "--passes", str(args.passes)],
                capture_output=True, text=True, env=dict(os.environ), check=False,
            )
            line = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_TAG)]
            if proc.returncode != 0 or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            results[worker_type] = json.loads(line[0][len(RESULT_TAG):])
    for worker_type, r in results.items():
        print(f"{worker_type:8s} passes (s): " + "  ".join(f"{t:.2f}" for t in r["times"]))
    later = {k: sum(r["times"][1:]) for k, r in results.items()}
    ratio = later["process"] / later["thread"]
    print(f"passes 2..{args.passes}: process {later['process']:.2f}s, thread {later['thread']:.2f}s, "
          f"ratio {ratio:.2f} (target <= 1.2): {'PASS' if ratio <= 1.2 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
