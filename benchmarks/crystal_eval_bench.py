"""Benchmark of crystal-eval: a full evaluation of N real crystals (default 10,000), cold and warm cache.

    python benchmarks/crystal_eval_bench.py [--n 10000] [--jobs 0] [--data-dir ../shared/data]

Stand-in for a model's output: N real crystals from the shared files that are *not* in the test split
(MP-20 val.partial, then train.first1000, then MPTS-52 val), written as a CDVAE CSV. They are scored with
the ``crystal-eval`` command against train.first1000 (novelty) and test.partial (distributions), twice:
first with an empty cache folder (cold: test-set features, validity of all N, fingerprints of the
1,000-crystal draw, novelty) and then again with the same cache (warm). Prints the wall times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def build_samples(data: Path, n: int, out: Path) -> int:
    parts = [
        data / "mp_20_partial" / "val.partial.csv.xz",
        data / "mp_20_partial" / "train.first1000.csv.xz",
        data / "mpts_52" / "val.csv.gz",
    ]
    frames, have = [], 0
    for p in parts:
        if have >= n:
            break
        df = pd.read_csv(p, usecols=["material_id", "cif"]).head(n - have)
        frames.append(df)
        have += len(df)
    pd.concat(frames, ignore_index=True).to_csv(out, index=False)
    return have


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of sample crystals (default 10000)")
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--workdir", help="keep inputs, cache and reports here (default: a temporary folder)")
    args = ap.parse_args()
    data = Path(args.data_dir)
    if not (data / "mp_20_partial").is_dir():
        print(f"benchmark needs {data}/mp_20_partial (../shared/data beside the checkout)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        samples = work / "samples.csv"
        n = build_samples(data, args.n, samples)
        cache = work / "cache"
        base = [sys.executable, "-m", "crystal_eval", str(samples), "--train",
                str(data / "mp_20_partial" / "train.first1000.csv.xz"), "--test",
                str(data / "mp_20_partial" / "test.partial.csv.xz"), "--cache-dir", str(cache), "-q",
                "--jobs", str(args.jobs)]  # fmt: skip
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"{n} sample crystals, {cores} cores available, jobs={args.jobs or 'all'}")
        times = {}
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            r = subprocess.run(
                [*base, "-o", str(work / f"report_{label}.json")], capture_output=True, text=True
            )
            times[label] = time.perf_counter() - t0
            if r.returncode != 0:
                print(r.stdout, r.stderr, file=sys.stderr)
                return r.returncode
            print(f"--- {label} cache: {times[label]:.1f} s wall\n{r.stdout.strip()}")
        print(f"\nSUMMARY n={n} cores={cores}: cold {times['cold']:.1f} s, warm {times['warm']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
