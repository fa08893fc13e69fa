"""Benchmark of crystal-ar-model part 1: preprocessing, training and scoring throughput (crystals/s).

    python benchmarks/crystal_ar_bench.py [--data-dir ../shared/data/mp_20_partial] [--config tiny]
        [--rows 1000] [--workers 2] [--threads 2] [--steps 30]

Preprocessing converts the first ``--rows`` crystals of ``train.first1000.csv.xz`` with ``to_asu``
(``--workers`` processes) into a fresh cache and then reloads them from the cache. Training times
forward + backward + AdamW steps of the three global factors (batch size from the config). Scoring times
``model.log_prob`` on processed crystals (no to_asu) and, separately, end to end from CIF text.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mp_20_partial"))
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import pandas as pd
    from crystal_ar_model.config import Config
    from crystal_ar_model.data import CrystalTensors, load_csv
    from crystal_ar_model.model import CrystalARModel, bins_for, vocabulary_for
    from crystal_ar_model.score import to_crystals
    from crystal_ar_model.train import make_optimizer

    src = Path(args.data_dir) / "train.first1000.csv.xz"
    if not src.is_file():
        raise SystemExit(f"{src} not found: pass --data-dir")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config}")
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "part.csv"
        pd.read_csv(src).head(args.rows).to_csv(part, index=False)
        ds, rep = load_csv(part, cache_dir=tmp, workers=args.workers)
        print(
            f"preprocessing: {rep.total} crystals in {rep.seconds:.1f} s = {rep.total / rep.seconds:.1f} "
            f"crystals/s ({args.workers} workers), {rep.failed} failed {rep.reasons()}"
        )
        t0 = time.perf_counter()
        ds2, rep2 = load_csv(part, cache_dir=tmp)
        dt = time.perf_counter() - t0
        print(f"cached load: {len(ds2)} crystals in {dt * 1e3:.1f} ms = {len(ds2) / dt:.0f} crystals/s")

    cfg = Config.load(args.config)
    vocab = vocabulary_for(cfg.model)
    torch.manual_seed(0)
    model = CrystalARModel(cfg.model, bins_for(cfg.model, ds.lattice, ds.space_group), vocab)
    opt = make_optimizer(model, cfg)
    t = CrystalTensors(ds, vocab, strict=False)
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

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    n = sum(step() for _ in range(args.steps))
    dt = time.perf_counter() - t0
    print(
        f"training (space group + composition + lattice, batch {bs}): {n / dt:.0f} crystals/s "
        f"({args.steps} steps, {dt / args.steps * 1e3:.1f} ms/step)"
    )

    model.eval()
    with torch.no_grad():
        model.log_prob(t.batch(np.arange(min(256, len(t)))))
        t0 = time.perf_counter()
        reps = 5
        for _ in range(reps):
            for b in t.batches(2048):
                model.log_prob(b)
        dt = time.perf_counter() - t0
    print(f"scoring (log_prob of processed crystals): {reps * len(t) / dt:.0f} crystals/s")
    df = pd.read_csv(src).head(200)
    t0 = time.perf_counter()
    crystals, _ = to_crystals(list(df["material_id"]), list(df["cif"]))
    from crystal_ar_model.data import ProcessedDataset
    from crystal_ar_model.score import score_dataset

    score_dataset(model, ProcessedDataset.from_crystals(crystals))
    dt = time.perf_counter() - t0
    print(f"scoring end to end from CIF text (1 process, to_asu included): {len(df) / dt:.1f} crystals/s")


if __name__ == "__main__":
    main()
