"""Copy a trained checkpoint into the package (``crystal_ar_model/pretrained/``): the model used by default.

    python -m crystal_ar_model.ship_model runs/default/best [--metrics runs/default/metrics.jsonl]

The checkpoint is validated (format version, weights that load into the model its ``meta.json`` describes), its
optimizer state is left out, the run's ``metrics.jsonl`` is copied beside it, and the files must stay under
:data:`MAX_BYTES` in total. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .checkpoint import find_metrics, read_meta, resolve_checkpoint, shipped_checkpoint_dir
from .errors import CheckpointFormatError, CrystalARError

MAX_BYTES = 50 * 1024 * 1024


def ship(checkpoint: str | Path, metrics: str | Path | None = None, dest: str | Path | None = None) -> Path:
    """Validate ``checkpoint`` (a checkpoint or run directory) and copy it into ``dest`` (default: the package's
    ``pretrained/`` folder). ``metrics``: the run's ``metrics.jsonl`` (default: found beside the run)."""
    from .score import load_model

    ckpt = resolve_checkpoint(checkpoint)
    if ckpt is None:
        raise CheckpointFormatError(f"{checkpoint}: no checkpoint found")
    read_meta(ckpt)
    load_model(ckpt)  # the weights match the config
    if metrics is None:
        metrics = find_metrics(ckpt)
        if metrics is None:
            raise CheckpointFormatError(f"{ckpt}: no metrics.jsonl beside the checkpoint; pass --metrics")
    files = {"model.safetensors": ckpt / "model.safetensors", "meta.json": ckpt / "meta.json",
             "metrics.jsonl": Path(metrics)}
    size = sum(p.stat().st_size for p in files.values())
    if size > MAX_BYTES:
        raise CheckpointFormatError(f"{ckpt}: {size / 2**20:.1f} MiB, more than the {MAX_BYTES // 2**20} MiB limit")
    out = Path(dest) if dest is not None else shipped_checkpoint_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        tmp = out / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, out / name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: validate a checkpoint and copy it, with its metrics, into the package's ``pretrained/`` folder (or
    ``--dest``)."""
    ap = argparse.ArgumentParser(prog="python -m crystal_ar_model.ship_model", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="checkpoint directory (e.g. RUN/best) or run directory")
    ap.add_argument("--metrics", default=None, help="the run's metrics.jsonl [found beside the checkpoint]")
    ap.add_argument("--dest", default=None, help="target folder [the installed package's pretrained/]")
    args = ap.parse_args(argv)
    try:
        out = ship(args.checkpoint, args.metrics, args.dest)
    except CrystalARError as exc:
        print(f"ship_model: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"shipped {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
