"""Benchmark of crystal-ar-model: parameter counts, training, scoring and sampling throughput, peak memory.

    python benchmarks/crystal_ar_bench.py [--config default] [--data-dir ../shared/data/mp_20_partial]
        [--steps 10] [--ddp-epoch] [--preprocess] [--glibc-malloc-defaults]

Figures (each printed with its definition):

* parameter counts of the shipped configs (``tiny``, ``default``, ``paper``);
* training: forward + backward + AdamW steps at the config's batch size (256) on mp20-available training crystals,
  one process with one torch thread, wall clock and CPU time (crystals per CPU second is what one free core
  delivers); peak resident memory of a process that only trains (``ru_maxrss``);
* ``--ddp-epoch``: one real epoch of ``crystal-ar train`` under ``torchrun --nproc_per_node 2`` (two processes,
  one thread each: the 2-core setting of the issue), its wall time and crystals/s from ``metrics.jsonl``;
* scoring: ``log_prob`` of processed crystals (no to_asu), batch 1024, with 1 and 2 worker processes
  (``crystal-ar score --workers``);
* sampling: ``crystal_ar_model.sampling.sample`` of an untrained model (so the sequences are longer than those of
  a trained one), 1 thread.

Every process keeps its freed memory for reuse, as the ``crystal-ar`` commands do
(``crystal_ar_model.allocator.keep_freed_memory``); ``--glibc-malloc-defaults`` leaves glibc's defaults instead (in
this process, the training child and the scoring workers; ``--ddp-epoch`` runs the ``crystal-ar train`` command,
which keeps its memory either way), for an A/B comparison.

Other jobs on a shared machine slow every figure down; re-run on a quiet machine for the real numbers. The first
run converts the data (asu-geometry ``to_asu``) into the cache; later runs load it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(data_dir: str, workers: int = 2):  # noqa: ANN202
    from crystal_ar_model.data import load_preset

    return load_preset("mp20-available", data_dir, workers=workers)


def _model(cfg, ds):  # noqa: ANN001, ANN202
    from crystal_ar_model.model import CrystalARModel, bins_for, vocabulary_for

    torch.manual_seed(0)
    return CrystalARModel(cfg.model, bins_for(cfg.model, ds.lattice, ds.space_group), vocabulary_for(cfg.model))


def params(name: str) -> int:
    from crystal_ar_model.config import Config
    from crystal_ar_model.factors import LatticeBins
    from crystal_ar_model.model import CrystalARModel, vocabulary_for

    cfg = Config.load(name)
    bins = LatticeBins((0.0,) * 3 + (30.0, 30.0, 0.0), (40.0,) * 3 + (150.0, 150.0, 180.0))
    return sum(p.numel() for p in CrystalARModel(cfg.model, bins, vocabulary_for(cfg.model)).parameters())


def train_steps(config: str, data_dir: str, steps: int) -> None:
    """Training throughput of one process, one thread; prints the peak memory of this process at the end."""
    from crystal_ar_model.config import Config
    from crystal_ar_model.data import CrystalTensors
    from crystal_ar_model.train import make_optimizer

    torch.set_num_threads(1)
    cfg = Config.load(config)
    ds = _load(data_dir).train
    model = _model(cfg, ds)
    opt = make_optimizer(model, cfg)
    t = CrystalTensors(ds, model.vocabulary, strict=False, max_atoms=cfg.model.max_atoms)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    bs = cfg.train.batch_size

    def step() -> int:
        b = t.batch(rng.choice(len(t), bs, replace=False))
        loss, _ = model(b, cfg.train, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        return b.num_graphs

    for _ in range(2):
        step()
    w0, c0 = time.perf_counter(), time.process_time()
    n = sum(step() for _ in range(steps))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(
        f"training ({config}, batch {bs}, 1 process, 1 thread): {n / wall:.0f} crystals/s wall, "
        f"{n / cpu:.0f} crystals per CPU second ({steps} steps, {wall / steps:.2f} s/step)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory of the training process (ru_maxrss): {peak:.2f} GiB")


def ddp_epoch(config: str, data_dir: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                "2",
                "-m",
                "crystal_ar_model.cli",
                "train",
                "--config",
                config,
                "--data",
                "mp20-available",
                "--data-dir",
                data_dir,
                "--out",
                tmp,
                "--epochs",
                "1",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if r.returncode:
            print(r.stderr[-3000:])
            raise SystemExit("torchrun failed")
        rec = json.loads((Path(tmp) / "metrics.jsonl").read_text().splitlines()[-1])
        print(
            f"one epoch of mp20-available, torchrun 2 processes x 1 thread ({config}): {rec['seconds']:.1f} s of "
            f"training = {rec['crystals_per_s']:.0f} crystals/s (whole command incl. start-up and validation: "
            f"{time.perf_counter() - t0:.0f} s)"
        )


def scoring(config: str, data_dir: str) -> None:
    from crystal_ar_model.config import Config
    from crystal_ar_model.score import score_dataset

    torch.set_num_threads(1)
    cfg = Config.load(config)
    splits = _load(data_dir)
    model = _model(cfg, splits.train).eval()
    ds = splits.train.subset(np.arange(min(4096, len(splits.train))))
    score_dataset(model, ds.subset(np.arange(256)))  # warm up
    for workers in (1, 2):
        t0, c0 = time.perf_counter(), time.process_time()
        df = score_dataset(model, ds, workers=workers)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_cpu = f", {len(df) / cpu:.0f} crystals per CPU second" if workers == 1 else ""
        print(
            f"scoring ({config}, log_prob of {len(df)} processed crystals, batch 1024, {workers} process(es) x 1 "
            f"thread): {len(df) / dt:.0f} crystals/s{per_cpu}"
        )


def sampling(config: str, data_dir: str) -> None:
    from crystal_ar_model.config import Config
    from crystal_ar_model.sampling import sample

    torch.set_num_threads(1)
    cfg = Config.load(config)
    model = _model(cfg, _load(data_dir).train).eval()
    sample(model, 50, torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    out = sample(model, 500, torch.Generator().manual_seed(1))
    dt = time.perf_counter() - t0
    sites = (out.ptr[1:] - out.ptr[:-1]).float().mean()
    print(
        f"sampling ({config}, untrained, batch 500, 1 thread, re-scoring included): {500 / dt:.0f} crystals/s "
        f"({sites:.1f} sites per crystal)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mp_20_partial"))
    ap.add_argument("--config", default="default")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ddp-epoch", action="store_true", help="also time one torchrun epoch (2 processes)")
    ap.add_argument("--glibc-malloc-defaults", action="store_true",
                    help="keep glibc's default malloc settings (crystal-ar keeps freed memory for reuse)")
    ap.add_argument("--only", choices=("train",), default=None, help=argparse.SUPPRESS)  # internal: the train child
    args = ap.parse_args()
    from crystal_ar_model import score

    if args.glibc_malloc_defaults:
        score.keep_freed_memory = lambda: False  # nor in the scoring workers
    kept = score.keep_freed_memory()
    if args.only == "train":  # run in a fresh process so that ru_maxrss is the training's own peak
        train_steps(args.config, args.data_dir, args.steps)
        return
    print(f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; glibc malloc: "
          + ("freed memory kept for reuse (as crystal-ar does)" if kept else "its default settings"))
    for name in ("tiny", "default", "paper"):
        print(f"parameters {name}: {params(name):,}")
    _load(args.data_dir)  # convert once (cached) before anything is timed
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--only",
            "train",
            "--config",
            args.config,
            "--data-dir",
            args.data_dir,
            "--steps",
            str(args.steps),
            *(["--glibc-malloc-defaults"] if args.glibc_malloc_defaults else []),
        ],
        check=True,
    )
    if args.ddp_epoch:
        ddp_epoch(args.config, args.data_dir)
    scoring(args.config, args.data_dir)
    sampling(args.config, args.data_dir)


if __name__ == "__main__":
    main()
