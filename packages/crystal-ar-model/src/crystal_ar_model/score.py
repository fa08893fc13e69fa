"""Scoring: per-crystal, per-factor log-likelihoods of CIF files, folders of CIFs or CDVAE CSVs."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .allocator import keep_freed_memory
from .checkpoint import default_checkpoint, load_model_state, read_meta, resolve_checkpoint
from .config import Config
from .data import ConversionReport, CrystalTensors, ProcessedDataset, convert_cifs, read_cdvae_csv
from .errors import CheckpointFormatError, CrystalARError, DataError
from .factors import LatticeBins
from .model import LOGP_KEYS, CrystalARModel

CSV_SUFFIXES = (".csv", ".csv.xz", ".csv.gz", ".csv.bz2")


SYMPREC = 0.1
"""``to_asu`` tolerance (Angstrom) of ``crystal-ar score`` (and of the normal forms ``crystal-ar sample`` records)."""
ANGLE_TOLERANCE = 5.0
"""``to_asu`` angle tolerance (degrees) of ``crystal-ar score``."""


def load_model(checkpoint: str | Path | None = None) -> tuple[CrystalARModel, dict[str, Any]]:
    """The model of a checkpoint directory (or of a run directory's latest checkpoint), in eval mode; ``None``:
    the model shipped in the package (:func:`.checkpoint.default_checkpoint`)."""
    if checkpoint is None:
        checkpoint = default_checkpoint()
    ckpt = resolve_checkpoint(checkpoint)
    if ckpt is None:
        raise CheckpointFormatError(f"{checkpoint}: no checkpoint found (expected meta.json or a run directory)")
    meta = read_meta(ckpt)
    try:
        cfg = Config.from_dict(meta["config"])
        model = CrystalARModel(cfg.model, LatticeBins.from_dict(meta["bins"]), tuple(meta["vocabulary"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CrystalARError):
            raise
        raise CheckpointFormatError(f"{ckpt}: meta.json does not describe a model ({type(exc).__name__}: "
                                    f"{exc})") from exc
    try:
        model.load_state_dict(load_model_state(ckpt))
    except (RuntimeError, OSError) as exc:
        raise CheckpointFormatError(f"{ckpt}: weights do not match the model ({exc})") from exc
    model.eval()
    return model, meta


def _is_csv(path: Path) -> bool:
    return any(path.name.endswith(s) for s in CSV_SUFFIXES)


EXTXYZ_SUFFIXES = (".extxyz", ".xyz")


def read_extxyz(path: str | Path) -> tuple[list[str], list[Any]]:
    """``(ids, structures)`` of the frames of an extended-XYZ file of periodic crystals, read with ASE.

    This is the format of ``crystal-ar sample``'s ``samples.extxyz`` and of other generators' outputs (e.g.
    MatterGen's ``generated_crystals.extxyz``). A frame's id is its ``name`` or ``id`` entry, else
    ``<stem>#<frame>``. Raises :class:`DataError` without ASE or for an empty file, and
    ``asu_geometry.CifReadError`` naming the frame for an unreadable file or a frame that is not a periodic
    3-D crystal.
    """
    import asu_geometry as ag

    p = Path(path)
    try:
        from ase.io import read
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError as exc:
        raise DataError(f"{p}: reading extended XYZ needs ASE (pip install ase)") from exc
    try:
        frames = read(p, index=":", format="extxyz")
    except Exception as exc:
        raise ag.CifReadError(f"{p}: cannot read extended XYZ ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise DataError(f"{p}: the file contains no frames")
    ids, structures = [], []
    for i, atoms in enumerate(frames):
        name = str(atoms.info.get("name", atoms.info.get("id", f"{p.stem}#{i}")))
        if len(atoms) == 0 or not all(atoms.pbc) or abs(atoms.cell.volume) < 1e-6:
            raise ag.CifReadError(f"{p}: frame {i} ({name}) is not a periodic 3-D crystal (pbc "
                                  f"{atoms.pbc.tolist()}, cell volume {abs(atoms.cell.volume):.3g} A^3, "
                                  f"{len(atoms)} atoms)")  # fmt: skip
        ids.append(name)
        structures.append(AseAtomsAdaptor.get_structure(atoms))
    return ids, structures


def read_input(path: str | Path) -> tuple[list[str], list[Any]]:
    """``(ids, items)`` of an input: a CIF file, a folder of ``*.cif``, a CDVAE CSV or an extended-XYZ file.

    Items are pymatgen structures (CIF and extended-XYZ files, :func:`read_extxyz`) or CIF strings (CSV rows).
    Unreadable files raise ``asu_geometry.CifReadError``; a missing path or a folder without CIFs raises
    :class:`DataError`.
    """
    import asu_geometry as ag

    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.cif"))
        if not files:
            raise DataError(f"{p}: folder contains no *.cif files")
        return [f.stem for f in files], [ag.read_structure(f) for f in files]
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if _is_csv(p):
        return read_cdvae_csv(p)
    if p.suffix.lower() in EXTXYZ_SUFFIXES:
        return read_extxyz(p)
    return [p.stem], [ag.read_structure(p)]


def to_crystals(
    ids: Sequence[str],
    items: Sequence[Any],
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    strict: bool = True,
    workers: int = 1,
) -> tuple[list[tuple[str, Any]], ConversionReport]:
    """Convert structures / CIF strings with ``to_asu``. ``strict``: re-raise the first failure (named)."""
    import asu_geometry as ag

    if not strict and items and isinstance(items[0], str):
        return convert_cifs(ids, items, symprec, angle_tolerance, workers, source="input")
    out, report = [], ConversionReport("input", total=len(items))
    t0 = time.perf_counter()
    for ident, it in zip(ids, items, strict=True):
        try:
            s = ag.structure_from_cif_string(it) if isinstance(it, str) else it
            out.append((ident, ag.to_asu(s, symprec=symprec, angle_tolerance=angle_tolerance)))
        except Exception as exc:
            if strict:
                if isinstance(exc, (ag.AsuGeometryError, CrystalARError)):
                    raise type(exc)(f"{ident}: {exc}") from exc
                raise
            report.failures.append((ident, f"{type(exc).__name__}: {exc}"))
    report.converted, report.seconds = len(out), time.perf_counter() - t0
    return out, report


@torch.no_grad()
def score_dataset(
    model: CrystalARModel, ds: ProcessedDataset, batch_size: int = 1024, strict: bool = True, workers: int = 1
) -> pd.DataFrame:
    """Per-crystal log-likelihood table (columns ``id`` and :data:`LOGP_KEYS`) of processed crystals.

    ``strict``: a crystal with an unknown element or more atoms than the model allows raises
    (:class:`UnknownElementError`, :class:`TooManyAtomsError`); otherwise it is reported on stderr and skipped.
    ``workers`` > 1: batches are scored by that many forked processes (one torch thread each).
    """
    tensors = CrystalTensors(ds, model.vocabulary, strict=strict, max_atoms=model.cfg.max_atoms)
    for ident, why in tensors.dropped:
        print(f"  skipped {ident}: {why}", file=sys.stderr)
    starts = list(range(0, len(tensors), batch_size))
    global _WORKER_STATE
    _WORKER_STATE = (model, tensors, batch_size)
    if workers > 1 and len(starts) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(starts)), initializer=init_worker) as pool:
            parts = pool.map(_score_batch, starts)
    else:
        parts = [_score_batch(s) for s in starts]
    _WORKER_STATE = None
    df = pd.DataFrame({"id": list(tensors.ids)})
    for k in LOGP_KEYS:
        df[k] = np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
    return df


_WORKER_STATE: Any = None  # (model, tensors, batch size) shared with forked scoring workers


def init_worker() -> None:
    """A worker process's settings (scoring and sampling): one torch thread, freed memory kept for reuse
    (:func:`.allocator.keep_freed_memory`)."""
    torch.set_num_threads(1)
    keep_freed_memory()


@torch.no_grad()
def _score_batch(start: int) -> dict[str, np.ndarray]:
    model, tensors, batch_size = _WORKER_STATE
    b = tensors.batch(np.arange(start, min(start + batch_size, len(tensors))))
    dev = model.polar.device
    lp = model.log_prob(b if dev.type == "cpu" else b.to(dev))
    return {k: lp[k].double().cpu().numpy() for k in LOGP_KEYS}


def score_path(
    path: str | Path,
    checkpoint: str | Path | None = None,
    symprec: float = SYMPREC,
    angle_tolerance: float = ANGLE_TOLERANCE,
    strict: bool = True,
    workers: int = 1,
    float64: bool = False,
) -> pd.DataFrame:
    """Load the checkpoint (default: the shipped model), read and convert the input, and score it (in float64
    with ``float64``)."""
    import asu_geometry as ag

    model, _ = load_model(checkpoint)
    if float64:
        model = model.double()
    ids, items = read_input(path)
    try:
        crystals, report = to_crystals(ids, items, symprec, angle_tolerance, strict, workers)
    except (ag.AsuGeometryError, CrystalARError) as exc:
        if len(items) == 1 and not Path(path).is_dir():
            raise
        # a CSV row, extxyz frame or file of a folder: name the input it came from and the way around
        raise type(exc)(f"{path}: crystal {exc} (crystal-ar score --skip-invalid scores the others)") from exc
    if report.failures:
        print(f"crystal-ar score: {report.summary()}", file=sys.stderr)
        for ident, why in report.failures:
            print(f"  skipped {ident}: {why}", file=sys.stderr)
    return score_dataset(model, ProcessedDataset.from_crystals(crystals), strict=strict, workers=workers)
