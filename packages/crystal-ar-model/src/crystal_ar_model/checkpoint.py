"""Self-describing, atomically written checkpoints (safetensors + JSON; no pickle).

A run directory ``OUT`` holds ``config.json``, ``metrics.jsonl``, ``checkpoints/epoch-NNNNN/`` and
``latest`` (the name of the newest complete checkpoint). A checkpoint directory holds

* ``model.safetensors``: the model's parameters;
* ``optimizer.safetensors`` + ``optimizer.json``: AdamW state (tensors) and its parameter groups;
* ``meta.json``: ``format`` and ``format_version``, the config, lattice bins, element vocabulary, epoch and
  step, seed, data preset and hash, conversion reports, package versions and the last metrics.

Each checkpoint is written into a temporary directory, fsynced and renamed into place; ``latest`` is
replaced atomically afterwards. A run killed at any moment therefore leaves the previous checkpoint
intact, and loses at most one checkpoint interval.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointFormatError

FORMAT = "crystal-ar-checkpoint"
FORMAT_VERSION = 2  # 2: the per-site factors (crystal-ar-model 0.2)
_PACKAGES = (
    "crystal-ar-model",
    "asu-geometry",
    "polygon-flows",
    "torch",
    "torch-geometric",
    "pymatgen",
    "numpy",
    "spglib",
    "safetensors",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a checkpoint depends on (and Python's)."""
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _write_checkpoint_dir(
    final: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, meta: dict[str, Any]
) -> Path:
    """Write model (and optimizer) state and ``meta.json`` into a temporary sibling of ``final``, fsync, and
    rename it into place (replacing an older ``final``)."""
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    if optimizer is not None:
        tensors, info = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        _write_json(tmp / "optimizer.json", info)
    _write_json(
        tmp / "meta.json",
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": package_versions(), **meta},
    )
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(parent)
    return final


def save_checkpoint(
    run_dir: Path,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``run_dir/checkpoints/epoch-NNNNN`` atomically, point ``latest`` at it, prune old ones."""
    ckdir = run_dir / "checkpoints"
    name = f"epoch-{epoch:05d}"
    final = _write_checkpoint_dir(ckdir / name, model, optimizer, {"epoch": epoch, **meta})
    fd, ltmp = tempfile.mkstemp(dir=run_dir, prefix=".latest-")
    with os.fdopen(fd, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(ltmp, run_dir / "latest")
    _fsync_dir(run_dir)
    done = sorted(p for p in ckdir.glob("epoch-*") if (p / "meta.json").is_file())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(run_dir: Path, epoch: int, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Write the best model so far to ``run_dir/best`` (weights and meta, no optimizer), atomically: each
    independently parameterised unit taken from the epoch of its own lowest validation NLL (``meta["selection"]``,
    composed by :class:`.train.BestModel`); the checkpoint to ship or score with (``--checkpoint RUN/best``)."""
    return _write_checkpoint_dir(run_dir / "best", model, None, {"epoch": epoch, **meta})


SHIPPED_FILES = ("model.safetensors", "meta.json", "metrics.jsonl")
"""What ``crystal_ar_model/pretrained/`` holds once a model is shipped (``python -m crystal_ar_model.ship_model``)."""


def shipped_checkpoint_dir() -> Path:
    """The package-data folder of the shipped model (``crystal_ar_model/pretrained/``; it may be empty)."""
    from importlib.resources import files

    return Path(str(files("crystal_ar_model") / "pretrained"))


def default_checkpoint() -> Path:
    """The shipped model's checkpoint directory: what ``crystal-ar sample`` and ``score`` use without
    ``--checkpoint``. Raises :class:`NoShippedModelError` when this installation ships none."""
    from .errors import NoShippedModelError

    d = shipped_checkpoint_dir()
    missing = [f for f in SHIPPED_FILES[:2] if not (d / f).is_file()]
    if missing:
        raise NoShippedModelError(
            f"no --checkpoint given and this installation of crystal-ar-model ships no model ({d} has no "
            f"{' and no '.join(missing)}); pass --checkpoint RUN_DIR or a checkpoint directory"
        )
    return d


def find_metrics(ckpt: Path) -> Path | None:
    """The training run's ``metrics.jsonl`` for checkpoint directory ``ckpt``: beside it (a shipped model), in its
    run directory (``RUN/best``) or two levels up (``RUN/checkpoints/epoch-N``); ``None`` when there is none."""
    for c in (ckpt / "metrics.jsonl", ckpt.parent / "metrics.jsonl", ckpt.parent.parent / "metrics.jsonl"):
        if c.is_file():
            return c
    return None


def resolve_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint directory for a run directory (via ``latest``) or a checkpoint directory itself."""
    p = Path(path)
    if (p / "meta.json").is_file():
        return p
    latest = p / "latest"
    if latest.is_file():
        cand = p / "checkpoints" / latest.read_text().strip()
        if (cand / "meta.json").is_file():
            return cand
    done = sorted(q for q in (p / "checkpoints").glob("epoch-*") if (q / "meta.json").is_file())
    return done[-1] if done else None


def read_meta(ckpt: Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint, validated (:class:`CheckpointFormatError` otherwise)."""
    try:
        meta = json.loads((ckpt / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"{ckpt}: unreadable meta.json ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointFormatError(f"{ckpt}: meta.json is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointFormatError(f"{ckpt}: not a crystal-ar checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{ckpt}: checkpoint format version {meta.get('format_version')!r}; this "
            f"crystal-ar-model ({package_versions()['crystal-ar-model']}) reads version "
            f"{FORMAT_VERSION}"
        )
    if not (ckpt / "model.safetensors").is_file():
        raise CheckpointFormatError(f"{ckpt}: model.safetensors is missing")
    missing = [k for k in ("config", "bins", "vocabulary") if k not in meta]
    if missing:
        raise CheckpointFormatError(f"{ckpt}: meta.json lacks {', '.join(map(repr, missing))}")
    return meta


def load_model_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint (:class:`CheckpointFormatError` for a damaged or truncated file)."""
    try:
        return load_file(str(ckpt / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error type for a damaged header or body
        raise CheckpointFormatError(f"{ckpt}: model.safetensors is damaged or not a safetensors file "
                                    f"({type(exc).__name__}: {exc})") from exc


def load_optimizer_state(ckpt: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore AdamW state written by :func:`save_checkpoint`."""
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    info = json.loads((ckpt / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in info["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
