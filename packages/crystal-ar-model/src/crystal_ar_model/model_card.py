"""The model card of a checkpoint, rendered from its own files (``meta.json`` and the run's ``metrics.jsonl``).

    python -m crystal_ar_model.model_card [CHECKPOINT_DIR]      # default: the shipped model

Every figure of the card is read from the checkpoint: the config and parameter count, the training data (preset,
files, converted rows), the epochs trained and the training time summed over ``metrics.jsonl``, and the per-factor
validation NLL of the composed model. ``RUN/best`` composes each independently parameterised unit (space group and
composition, lattice, per-site factors) from the epoch of its own lowest validation NLL
(:data:`crystal_ar_model.train.SELECTION_UNITS`); the validation NLL of each factor is therefore the one logged at
its unit's epoch, and their sum is the composed model's validation NLL (the units share no parameters, so each
factor's value does not depend on the epochs of the others). The package README shows this card for the shipped
model and a test checks that the README and the shipped files agree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import find_metrics, read_meta, resolve_checkpoint
from .errors import CheckpointFormatError, CrystalARError

FACTOR_ORDER = ("space_group", "composition", "lattice", "wyckoff", "element", "shape", "coords", "stop")


@dataclass(frozen=True)
class ModelCard:
    """What the card says about one checkpoint (all read from its files)."""

    config_name: str
    parameters: int
    data_preset: str
    data_files: tuple[tuple[str, int, int], ...]  # (source, converted, total)
    train_rows: int | None
    val_rows: int | None
    epochs_trained: int
    training_seconds: float
    mean_crystals_per_s: float
    unit_epochs: dict[str, int]
    val_nll: dict[str, float]  # per factor, at its unit's epoch
    val_nll_total: float
    versions: dict[str, str]

    def markdown(self) -> str:
        """The card as Markdown (a short list and a table of the validation NLL per factor)."""
        files = ", ".join(f"{src} ({conv:,}/{tot:,} rows converted)" for src, conv, tot in self.data_files)
        split = ""
        if self.train_rows is not None and self.val_rows is not None:
            split = f"; {self.train_rows:,} training / {self.val_rows:,} validation crystals"
        units = ", ".join(f"{u} epoch {e}" for u, e in sorted(self.unit_epochs.items()))
        lines = [
            f"- config `{self.config_name}`, {self.parameters:,} parameters;",
            f"- data: preset `{self.data_preset}`: {files}{split};",
            f"- training: {self.epochs_trained} epochs, {self.training_seconds / 3600:.2f} h of training steps "
            f"(validation and start-up not included), {self.mean_crystals_per_s:.0f} crystals/s on average;",
            f"- composed from the best validation epoch of each unit: {units};",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items())) + ".",
            "",
            "| factor | " + " | ".join(f.replace("_", " ") for f in FACTOR_ORDER) + " | total |",
            "|---|" + "---|" * (len(FACTOR_ORDER) + 1),
            "| validation NLL (nats/crystal) | " + " | ".join(f"{self.val_nll[f]:.3f}" for f in FACTOR_ORDER)
            + f" | {self.val_nll_total:.3f} |",
        ]
        return "\n".join(lines)


def model_card(checkpoint: str | Path | None = None) -> ModelCard:
    """Read the card of ``checkpoint`` (a checkpoint or run directory; ``None``: the shipped model).

    Raises :class:`CheckpointFormatError` when the checkpoint has no ``metrics.jsonl`` beside it or its metrics
    lack an epoch its selection names."""
    from .checkpoint import default_checkpoint
    from .score import load_model
    from .train import read_metrics

    ckpt = resolve_checkpoint(checkpoint if checkpoint is not None else default_checkpoint())
    if ckpt is None:
        raise CheckpointFormatError(f"{checkpoint}: no checkpoint found")
    meta = read_meta(ckpt)
    metrics = find_metrics(ckpt)
    if metrics is None:
        raise CheckpointFormatError(f"{ckpt}: no metrics.jsonl beside the checkpoint")
    epochs = read_metrics(metrics.parent)
    by_epoch = {int(r["epoch"]): r for r in epochs}
    selection = meta.get("selection") or {}
    units = selection.get("units")
    if not units:  # a plain epoch checkpoint: every factor from its own epoch
        units = {"all": {"epoch": int(meta["epoch"]), "factors": list(FACTOR_ORDER)}}
    val: dict[str, float] = {}
    unit_epochs: dict[str, int] = {}
    for name, unit in units.items():
        e = int(unit["epoch"])
        if e not in by_epoch:
            raise CheckpointFormatError(f"{metrics}: no record of epoch {e} (unit {name})")
        unit_epochs[name] = e
        for f in unit["factors"]:
            val[f] = float(by_epoch[e]["val"][f"nll_{f}"])
    missing = [f for f in FACTOR_ORDER if f not in val]
    if missing:
        raise CheckpointFormatError(f"{ckpt}: the selection covers no unit for {missing}")
    model, _ = load_model(ckpt)
    cfg = meta["config"]
    reports = meta.get("data", {}).get("reports", [])
    files = tuple((str(r["source"]), int(r["converted"]), int(r["total"])) for r in reports)
    data = meta.get("data", {})
    seconds = sum(float(r.get("seconds", 0.0)) for r in epochs)
    rates = [float(r["crystals_per_s"]) for r in epochs if "crystals_per_s" in r]
    return ModelCard(
        config_name=str(cfg.get("name", "?")),
        parameters=sum(p.numel() for p in model.parameters()),
        data_preset=str(meta.get("data", {}).get("preset", "?")),
        data_files=files,
        train_rows=data.get("train_size"),
        val_rows=data.get("val_size"),
        epochs_trained=max(by_epoch) if by_epoch else 0,
        training_seconds=seconds,
        mean_crystals_per_s=sum(rates) / len(rates) if rates else float("nan"),
        unit_epochs=unit_epochs,
        val_nll=val,
        val_nll_total=sum(val[f] for f in FACTOR_ORDER),
        versions={k: str(v) for k, v in meta.get("versions", {}).items()
                  if k in ("asu-geometry", "crystal-ar-model", "polygon-flows", "torch", "torch-geometric")},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the model card of a checkpoint (default: the shipped model) as Markdown; exit 2 on a bad
    checkpoint."""
    ap = argparse.ArgumentParser(prog="python -m crystal_ar_model.model_card", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="checkpoint or run directory [the shipped model]")
    args = ap.parse_args(argv)
    try:
        print(model_card(args.checkpoint).markdown())
    except CrystalARError as exc:
        print(f"model_card: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
