"""Training: AdamW with per-module learning rates, DDP via torchrun, metrics JSONL, checkpoints, resume.

Determinism: epoch ``e`` shuffles with a generator seeded from ``(seed, e)`` and draws its per-step
randomness (G/C order, teacher-forcing noise) from a generator seeded from ``(seed, e, rank)``, so a run
resumed from the checkpoint of epoch ``e`` reproduces the uninterrupted run's losses (CPU, same thread
count). Testing hook: ``CRYSTAL_AR_KILL_AT_STEP=N`` makes the process SIGKILL itself at global step N.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .checkpoint import (
    load_model_state,
    load_optimizer_state,
    read_meta,
    resolve_checkpoint,
    save_best,
    save_checkpoint,
)
from .config import Config
from .data import CrystalTensors, DataSplits, load_preset
from .errors import CheckpointFormatError, ConfigError
from .factors import LatticeBins
from .model import ATOM_FACTORS, FACTORS, CrystalARModel, bins_for, vocabulary_for

NLL_KEYS = tuple(f"nll_{k}" for k in (*FACTORS, "total"))

# Independently parameterised parts of the likelihood: unit -> (top-level modules, factors whose NLL depends on those
# modules' parameters only). p(G, C) mixes p(G), p(C | G), p(C) and p(G | C), so space group and composition form one
# unit. ``RUN/best`` takes each unit's weights from the epoch of that unit's lowest validation NLL (early stopping per
# factor); the composed model's validation NLL is the sum of the units' minima (``test_best_model_is_composed_...``).
SELECTION_UNITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "space_group+composition": (("space_group_prior", "space_group_given_comp", "composition"),
                                ("space_group", "composition")),
    "lattice": (("lattice",), ("lattice",)),
    "atoms": (("element_embedding", "wyckoff_embedding", "gnn", "context", "heads", "coords"), ATOM_FACTORS),
}


def unit_of_parameter(name: str) -> str:
    """The selection unit a state-dict key belongs to (:data:`SELECTION_UNITS`)."""
    top = name.split(".", 1)[0]
    for unit, (modules, _) in SELECTION_UNITS.items():
        if top in modules:
            return unit
    raise ConfigError(f"parameter {name!r} belongs to no selection unit (update SELECTION_UNITS)")


def unit_nll(val: dict[str, float], unit: str) -> float:
    """Validation NLL (nats/crystal) of one selection unit's factors."""
    return sum(val[f"nll_{f}"] for f in SELECTION_UNITS[unit][1])


class BestModel:
    """Per-unit best weights by validation NLL, composed into one model written to ``RUN/best``."""

    def __init__(self, model: CrystalARModel, run: Path, history: list[dict[str, Any]]) -> None:
        self.run = run
        self.units = {unit_of_parameter(k) for k in model.state_dict()}
        self.nll = {u: math.inf for u in self.units}
        self.epoch = dict.fromkeys(self.units, 0)
        for rec in history:  # --resume: the best so far and its weights (from RUN/best)
            for u in self.units:
                if unit_nll(rec["val"], u) < self.nll[u]:
                    self.nll[u], self.epoch[u] = unit_nll(rec["val"], u), rec["epoch"]
        self.state: dict[str, torch.Tensor] = {}
        if history and (run / "best" / "model.safetensors").is_file():
            self.state = load_model_state(run / "best")

    def update(self, model: CrystalARModel, epoch: int, val: dict[str, float], meta: dict[str, Any]) -> bool:
        """Take the units whose validation NLL improved; rewrite ``RUN/best`` if any did."""
        better = [u for u in self.units if unit_nll(val, u) < self.nll[u]]
        if not better:
            return False
        for k, v in model.state_dict().items():
            if unit_of_parameter(k) in better or k not in self.state:
                self.state[k] = v.detach().cpu().clone()
        for u in better:
            self.nll[u], self.epoch[u] = unit_nll(val, u), epoch
        import copy

        scratch = copy.deepcopy(model).cpu()
        scratch.load_state_dict(self.state)
        selection = {"units": {u: {"epoch": self.epoch[u], "val_nll": self.nll[u],
                                   "factors": list(SELECTION_UNITS[u][1])} for u in sorted(self.units)},
                     "val_nll_total": sum(self.nll.values())}
        save_best(self.run, max(self.epoch.values()), scratch, {**meta, "selection": selection})
        return True


def make_optimizer(model: CrystalARModel, cfg: Config) -> torch.optim.AdamW:
    """AdamW with one parameter group per module (learning rates from ``cfg.train.lr``)."""
    groups = []
    for name, params in model.module_groups().items():
        if name not in cfg.train.lr:
            raise ConfigError(f"train.lr has no learning rate for module group {name!r}")
        groups.append({"params": params, "lr": cfg.train.lr[name], "name": name})
    return torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay, eps=cfg.train.adam_eps)


@torch.no_grad()
def evaluate(model: CrystalARModel, tensors: CrystalTensors, batch_size: int = 2048) -> dict[str, float]:
    """Mean exact NLL per factor (nats per crystal) over a dataset."""
    model.eval()
    sums = dict.fromkeys(NLL_KEYS, 0.0)
    for b in tensors.batches(batch_size):
        lp = model.log_prob(b)
        for k in FACTORS:
            sums[f"nll_{k}"] -= float(lp[f"logp_{k}"].double().sum())
        sums["nll_total"] -= float(lp["logp_total"].double().sum())
    model.train()
    n = max(len(tensors), 1)
    return {k: v / n for k, v in sums.items()}


def _without_epochs(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "train": {k: v for k, v in d["train"].items() if k != "epochs"}}


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def train(
    cfg: Config,
    data: str,
    data_dir: str | Path | None,
    out: str | Path,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    splits: DataSplits | None = None,
) -> Path:
    """Train the model; returns the run directory. Works under ``torchrun`` (DDP, gloo/nccl)."""
    rank, world = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    run = Path(out)
    is_main = rank == 0
    say = log if is_main else (lambda _: None)

    # ---- data (rank 0 converts and caches first; the others then read the cache)
    def load() -> DataSplits:
        return load_preset(
            data,
            data_dir,
            cache_dir,
            cfg.train.symprec,
            cfg.train.angle_tolerance,
            cfg.train.workers if is_main else 1,
            progress and is_main,
            cfg.train.max_train_rows,
        )

    if splits is None:
        if world > 1:
            if is_main:
                splits = load()
            dist.barrier()
            if not is_main:
                splits = load()
        else:
            splits = load()
    assert splits is not None
    for rep in splits.reports:
        say(f"data {rep.summary()}")
    vocab = vocabulary_for(cfg.model)
    train_t = CrystalTensors(splits.train, vocab, strict=False, max_atoms=cfg.model.max_atoms)
    val_t = CrystalTensors(splits.val, vocab, strict=False, max_atoms=cfg.model.max_atoms)
    if train_t.dropped or val_t.dropped:
        from collections import Counter

        why = Counter(r.split(":", 1)[0] for _, r in train_t.dropped + val_t.dropped)
        say(f"data: {len(train_t.dropped)} train / {len(val_t.dropped)} val crystals left out {dict(why)}")

    # ---- model, optimiser, resume
    ckpt = resolve_checkpoint(run) if resume else None
    if resume and ckpt is None:
        say(f"--resume: no checkpoint in {run}, starting from scratch")
    if ckpt is not None:
        meta = read_meta(ckpt)
        if _without_epochs(meta["config"]) != _without_epochs(cfg.to_dict()):
            raise CheckpointFormatError(
                f"{ckpt}: was written with a different config (only train.epochs may change on --resume)"
            )
        bins = LatticeBins.from_dict(meta["bins"])
        start_epoch, step = int(meta["epoch"]) + 1, int(meta["step"])
    else:
        bins = bins_for(cfg.model, splits.train.lattice, splits.train.space_group)
        start_epoch, step = 1, 0
    torch.manual_seed(cfg.train.seed)
    model = CrystalARModel(cfg.model, bins, vocab).to(device)
    opt = make_optimizer(model, cfg)
    if ckpt is not None:
        model.load_state_dict(load_model_state(ckpt))
        load_optimizer_state(ckpt, opt)
        say(f"resumed from {ckpt} (epoch {start_epoch - 1}, step {step})")
    net: Any = model
    if world > 1:
        # find_unused_parameters: a batch may have no polygon site, no multi-piece position, ... so some heads
        # take no part in a step
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    metrics_path = run / "metrics.jsonl"
    if is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        kept = []
        if ckpt is not None and metrics_path.is_file():
            kept = [
                ln
                for ln in metrics_path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["epoch"] < start_epoch
            ]
        metrics_path.write_text("".join(ln + "\n" for ln in kept))
    # best weights per selection unit so far (restored from the kept records and RUN/best on --resume)
    best = BestModel(model, run, [json.loads(ln) for ln in kept]) if is_main else None
    meta_base = {
        "config": cfg.to_dict(),
        "bins": bins.to_dict(),
        "vocabulary": list(vocab),
        "seed": cfg.train.seed,
        "data": {
            "preset": data,
            "hash": splits.data_hash,
            "train_size": len(train_t),
            "val_size": len(val_t),
            "left_out": {"train": train_t.dropped[:50], "val": val_t.dropped[:50]},
            "reports": [r.to_dict() | {"failures": r.failures[:50]} for r in splits.reports],
        },
        "world_size": world,
    }

    kill_at = int(os.environ.get("CRYSTAL_AR_KILL_AT_STEP", "0"))
    n = len(train_t)
    per_rank = n // world
    bs = max(1, cfg.train.batch_size // world)
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        g_perm = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g_perm).numpy()[rank::world][:per_rank]
        g_step = torch.Generator().manual_seed(cfg.train.seed * 7919 + epoch * 104_729 + rank)
        sums = torch.zeros(len(NLL_KEYS) + 1, dtype=torch.float64)
        t0 = time.perf_counter()
        starts = range(0, per_rank, bs)
        if progress and is_main:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"epoch {epoch}/{cfg.train.epochs}", unit="batch", leave=False)
        for s in starts:
            batch = train_t.batch(perm[s : s + bs]).to(device)
            loss, stats = net(batch, cfg.train, g_step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            step += 1
            for i, k in enumerate(NLL_KEYS):
                sums[i] += float(stats[k])
            sums[-1] += batch.num_graphs
            if kill_at and step >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        seconds = time.perf_counter() - t0
        if world > 1:
            dist.all_reduce(sums)
        train_nll = {k: float(sums[i] / max(sums[-1], 1)) for i, k in enumerate(NLL_KEYS)}
        if is_main:
            val_nll = evaluate(model, val_t, cfg.train.eval_batch_size)
            rec = {
                "epoch": epoch,
                "step": step,
                "train": train_nll,
                "val": val_nll,
                "seconds": seconds,
                "crystals_per_s": float(sums[-1]) / seconds if seconds > 0 else math.nan,
            }
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            parts = ", ".join(f"{k} {val_nll[f'nll_{k}']:.2f}" for k in FACTORS)
            say(
                f"epoch {epoch}: train nll {train_nll['nll_total']:.3f}  val nll {val_nll['nll_total']:.3f} "
                f"({parts})  {rec['crystals_per_s']:.0f} crystals/s"
            )
            assert best is not None
            best.update(model, epoch, val_nll, {**meta_base, "step": step})
            if epoch % cfg.train.checkpoint_every == 0 or epoch == cfg.train.epochs:
                save_checkpoint(
                    run,
                    epoch,
                    model,
                    opt,
                    {**meta_base, "step": step, "metrics": rec},
                    cfg.train.keep_checkpoints,
                )
        if world > 1:
            dist.barrier()
    if world > 1 and dist.get_backend() != "gloo":
        # gloo: destroy_process_group() can hang in a rank whose peers have already exited (seen under load, rank
        # 1 after rank 0 returned; pytorch issue 75097); the group is released when the processes exit
        dist.destroy_process_group()
    return run


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``."""
    return [json.loads(ln) for ln in (Path(run) / "metrics.jsonl").read_text().splitlines() if ln.strip()]
