"""Training-stabiliser ablations for the benchmark report (issue 12, Likelihood): ``docs/report/ablation.json``.

    python docs/report/ablation.py --epochs 25 --lanes 2     # train 5 runs (resumable), score, write the JSON
    nox -s ablation -- --epochs 25 --lanes 2                 # the same in a fresh nox environment
    python docs/report/build.py --refresh-committed          # re-read the JSON into docs/results.{json,md}

The shipped ``default`` config is trained on the MP-20 available subset for the same, fixed number of epochs
five times: once as is (the baseline) and once with each of the seed paper's four stabilisers switched off:

* ``no-noise``: noisy teacher forcing off (``atom_noise``, ``lattice_noise_length`` and ``lattice_noise_angle``
  set to 0);
* ``no-prior``: the Dirichlet(1.0001) prior on the coordinate mixtures' weights off (``mixture_prior`` 0);
* ``no-rebalance``: straight-through re-balancing off (``rebalance_factors`` empty, i.e. c = 1 everywhere);
* ``no-zloss``: the z-loss off (``z_loss`` 0).

Every run uses the same seeds, data and budget, is scored with its per-unit best checkpoint (``RUN/best``, as the
shipped model) by ``crystal-ar score`` on the test rows, and reported as the per-factor test NLL in nats per
crystal. Training is resumable: rerunning the command continues every unfinished run (``crystal-ar train
--resume``) and re-uses finished ones. The budget is far shorter than the shipped model's 106 epochs, so the
table compares the stabilisers at a short budget, which the JSON and the report say.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import ROOT, ReportError, _exe, git_commit, hardware, log, rel  # noqa: E402  (sibling script)

OUT_JSON = Path(__file__).resolve().parent / "ablation.json"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {  # key -> (label, train-config overrides)
    "baseline": ("all four stabilisers (the shipped recipe)", {}),
    "no-noise": ("no noisy teacher forcing",
                 {"atom_noise": 0.0, "lattice_noise_length": 0.0, "lattice_noise_angle": 0.0}),
    "no-prior": ("no Dirichlet(1.0001) mixture-weight prior", {"mixture_prior": 0.0}),
    "no-rebalance": ("no straight-through re-balancing (c = 1)", {"rebalance_factors": []}),
    "no-zloss": ("no z-loss", {"z_loss": 0.0}),
}


def variant_config(key: str, epochs: int, base: str = "default") -> dict[str, Any]:
    """The ``base`` preset with ``epochs`` epochs, one checkpoint per epoch and the variant's overrides."""
    from crystal_ar_model.config import Config

    cfg = Config.load(base).to_dict()
    cfg["name"] = f"{base}-ablation-{key}"
    cfg["train"].update(VARIANTS[key][1], epochs=epochs, checkpoint_every=1)
    Config.from_dict(cfg)  # unknown keys fail here, before any training
    return cfg


def _run(cmd: Sequence[str], log_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(log_path, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise ReportError(f"{Path(cmd[0]).name} exited with status {rc} (see {log_path}): {tail}")


def shipped_run_difference(metrics: Sequence[dict[str, Any]], first: int = 5) -> dict[str, float] | None:
    """|Difference| of the validation NLL, epoch by epoch, between the baseline run and the shipped model's training
    run (its ``metrics.jsonl``; the same recipe and seeds, run in other processes and resumed): the largest over the
    first ``first`` epochs and over all; ``None`` when the shipped run has fewer epochs. Float summation-order
    differences grow chaotically over the epochs, so the second figure is a measure of run-to-run noise."""
    from crystal_ar_model.checkpoint import default_checkpoint, find_metrics
    from crystal_ar_model.train import read_metrics

    path = find_metrics(default_checkpoint())
    shipped = {r["epoch"]: r["val"]["nll_total"] for r in read_metrics(path.parent)} if path else {}
    if any(r["epoch"] not in shipped for r in metrics):
        return None
    diff = [abs(r["val"]["nll_total"] - shipped[r["epoch"]]) for r in metrics]
    return {"first_epochs": first, "max_first_epochs": max(diff[:first]), "max_all_epochs": max(diff)}


def run_variant(key: str, epochs: int, data_dir: Path, test: Path, work: Path) -> dict[str, Any]:
    """Train (or resume, or re-use) one variant, score the test rows with its ``best`` checkpoint."""
    import pandas as pd
    from crystal_ar_model.train import read_metrics

    run_dir = work / key
    cfg_path = work / f"{key}.config.json"
    cfg = variant_config(key, epochs)
    cfg_path.write_text(json.dumps(cfg, indent=1) + "\n")
    log_path = work / f"{key}.log"
    done = [r["epoch"] for r in read_metrics(run_dir)] if (run_dir / "metrics.jsonl").is_file() else []
    t0 = time.perf_counter()
    if len(done) < epochs:
        cmd = [_exe("crystal-ar"), "train", "--config", str(cfg_path), "--data", "mp20-available",
               "--data-dir", str(data_dir), "--out", str(run_dir), "--no-progress"]
        if (run_dir / "latest").exists():
            cmd.append("--resume")
        log(f"{key}: training epochs {len(done) + 1}..{epochs}")
        _run(cmd, log_path)
    train_s = time.perf_counter() - t0
    metrics = read_metrics(run_dir)
    scores = work / f"{key}.test-scores.csv"
    t1 = time.perf_counter()
    _run([_exe("crystal-ar"), "score", str(test), "--checkpoint", str(run_dir / "best"), "-o", str(scores),
          "--skip-invalid", "--workers", "1"], log_path)
    df = pd.read_csv(scores)
    cols = [c for c in df.columns if c.startswith("logp_")]
    best = json.loads((run_dir / "best" / "meta.json").read_text())
    log(f"{key}: test NLL {-df['logp_total'].mean():.3f} nats/crystal")
    extra: dict[str, Any] = {}
    if key == "baseline":
        extra["shipped_run_val_nll_max_abs_diff"] = shipped_run_difference(metrics)
    return {**extra,
        "key": key, "label": VARIANTS[key][0], "overrides": VARIANTS[key][1], "epochs": len(metrics),
        "best_epochs": {unit: u["epoch"] for unit, u in best["selection"]["units"].items()},
        "val_nll_best": best["selection"]["val_nll_total"],
        "n_scored": len(df),
        "test_nll": {c.removeprefix("logp_"): float(-df[c].mean()) for c in cols},
        "val_nll_last_epoch": metrics[-1]["val"]["nll_total"],
        "train_seconds": round(sum(r["seconds"] for r in metrics), 1),  # the epochs' own timings (any call)
        "train_wall_s_this_call": round(train_s, 1), "score_wall_s": round(time.perf_counter() - t1, 1),
        "train_crystals_per_s": metrics[-1].get("crystals_per_s"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/report/ablation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=25, help="epochs per run, the same for all five [25]")
    p.add_argument("--lanes", type=int, default=2, help="runs trained at the same time, one thread each [2]")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--data-dir", default=os.environ.get("CRYSTAL_EVAL_DATA", str(ROOT.parent / "shared" / "data")),
                   help="folder with mp_20_partial/ [$CRYSTAL_EVAL_DATA or ../shared/data]")
    p.add_argument("--work-dir", default=str(ROOT / "runs" / "ablation"),
                   help="run directories, configs, logs and scores (resumable) [runs/ablation]")
    p.add_argument("-o", "--out", default=str(OUT_JSON), help=f"the JSON to write [{rel(OUT_JSON)}]")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(VARIANTS))
    if unknown or not keys:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if args.epochs < 1 or args.lanes < 1:
        p.error("--epochs and --lanes must be at least 1")
    data_dir = Path(args.data_dir) / "mp_20_partial"
    test = data_dir / "test.partial.csv.xz"
    if not test.is_file():
        print(f"ablation: error: {test} not found (the MP-20 available subset)", file=sys.stderr)
        return 2
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    hw = hardware()
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.lanes) as pool:
            rows = list(pool.map(lambda k: run_variant(k, args.epochs, data_dir, test, work), keys))
    except ReportError as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return 2
    out = {
        "what": "per-factor test NLL (nats/crystal) of the default config trained with the seed paper's training "
                "stabilisers switched off one at a time",
        "protocol": "MP-20 available subset: trained on train.first1000 + val.partial (mp20-available preset), "
                    "scored on test.partial",
        "epochs": args.epochs,
        "budget_note": f"{args.epochs} epochs per run, far shorter than the shipped model's 106: a short-budget "
                       "comparison, every run with the same seeds and data",
        "command": f"python docs/report/ablation.py --epochs {args.epochs} --lanes {args.lanes}",
        "commit": git_commit(), "hardware": hw, "wall_s_this_call": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
