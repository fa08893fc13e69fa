"""ML-potential stability and the S.U.N. rate (``crystal-eval --stability``, extra ``crystal-eval[stability]``).

For each crystal of the U.N. subset (the unique-and-novel crystals of the valid draw):

0. reduce it to its primitive cell (``relax_cell="primitive"``, the default; :func:`primitive_cell`): a
   conventional cell of a centred lattice holds 2 to 4 copies of the primitive one, costs as many times more
   per potential call, and lets numerical noise break the centring that the MP-20 reference crystals (stored
   as primitive cells) cannot break; ``relax_cell="input"`` relaxes the cell as given;
1. relax cell and positions with the potential (FIRE on the ``FrechetCellFilter`` cell coordinates,
   ``fmax`` eV/Å, at most ``max_steps`` steps, at most ``time_limit`` seconds of ``time_clock`` (wall-clock
   time by default; ``"cpu"``: the worker's CPU time, which other load does not use up); a relaxation that stops at
   the step cap keeps its last energy and is counted in ``meta``). By default many crystals are relaxed
   together, one batched potential call per step (:mod:`crystal_eval.fire`); ``optimizer="ase"`` runs
   ASE's FIRE one crystal at a time (the same algorithm; a test checks that they agree). With
   ``prerelax_volume``, each crystal's lattice is first scaled isotropically to the volume of lowest energy
   (:mod:`crystal_eval.prerelax`; a few batched single points, not charged to the time limit);
2. E_hull of the relaxed energy against the reference hull (:mod:`crystal_eval.hull`);
3. the RMS displacement of the relaxation and whether the space group survives it.

Figures (percentages; MatterGen's definitions, Zeni et al., Nature 639, 624 (2025)):

* ``stable_rate``: % of the U.N. crystals with E_hull <= 0.1 eV/atom; ``stable_rate_0``: E_hull <= 0;
* ``sun_rate`` / ``sun_rate_0``: the stable U.N. crystals as a % of the whole U.N. draw (the valid draw
  of ``n_un`` crystals), i.e. stable AND unique AND novel over all drawn;
* ``relax_rmsd_median`` (Å): median over relaxed crystals of ``sqrt(mean_i |L' (d_i - <d>)|^2)``, where
  ``d_i`` is atom i's fractional displacement (minimum image), ``<d>`` its mean (a rigid drift is not a
  displacement) and ``L'`` the relaxed lattice;
* ``sg_kept_rate``: % of relaxed crystals whose space group (spglib, symprec 0.1, angle 5°) is unchanged.

A crystal whose relaxation fails, times out, or whose E_hull cannot be computed (an element absent from
the reference hull) counts as not stable (it stays in the denominators) and is listed with the reason.
Every output says "ML-potential stability (<potential>), not DFT".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from threadpoolctl import threadpool_limits

from crystal_eval.cache import FeatureCache
from crystal_eval.hull import (
    HullMode,
    ReferenceEnergies,
    ReferenceHull,
    build_reference_energies,
    composition_dict,
    energies_cache_key,
    parse_for_hull,
)
from crystal_eval.io import InputError, Item, item_key, item_to_structure, items_from_structures
from crystal_eval.metrics import wilson_interval
from crystal_eval.parallel import default_jobs, pimap, pmap
from crystal_eval.potential import CHGNetPotential, Potential, RelaxFailure, relax_structures, require_extra
from crystal_eval.prerelax import VolumeSearch, prerelax_volumes
from crystal_eval.timelimit import CLOCKS

STABILITY_KEYS: tuple[str, ...] = (
    "stable_rate",
    "stable_rate_0",
    "sun_rate",
    "sun_rate_0",
    "relax_rmsd_median",
    "sg_kept_rate",
)
STABLE_THRESHOLD = 0.1  # eV/atom (MatterGen)
RELAX_VERSION = 3  # 3: batched CHGNet relaxations use crystal_eval.chgnet_forward (float32 sums in another order)
NEAR_TOUCHING = 1.0  # Å: the shortest-distance split of the relaxation time in ``stability_meta``
PRIMITIVE_TOLERANCE = 1e-3  # Å: how far a centring translation may miss an atom (pymatgen's site tolerance)
RELAX_CELLS = {
    "primitive": "the primitive cell of the input (pymatgen get_primitive_structure, site tolerance "
    f"{PRIMITIVE_TOLERANCE} Å; a cell that is already primitive is kept as given)",
    "input": "the cell as given",
}
RELAX_CHUNK = 32  # most crystals per worker task (relaxed together, then written to the cache)
OPTIMIZERS = {
    "batched": "FIRE on FrechetCellFilter coordinates, batched (crystal_eval.fire), one potential call per step",
    "ase": "ASE FIRE on FrechetCellFilter (cell and positions), one crystal at a time",
}
PRERELAX = ("isotropic volume pre-relaxation before FIRE: the lattice scale in [{lo}, {hi}] minimising the "
            "potential's energy (bracketing line search, crystal_eval.prerelax)").format(**asdict(VolumeSearch()))


def _chgnet_id(model_name: str) -> str:
    try:
        pkg = version("chgnet")
    except PackageNotFoundError:
        pkg = "not installed"
    return f"CHGNet {model_name} (chgnet {pkg})"


@dataclass
class StabilityConfig:
    """Knobs of the stability evaluation.

    ``potential`` is a picklable zero-argument factory returning a :class:`~crystal_eval.potential.Potential`
    (called once per worker process) and ``potential_id`` names it in cache keys and labels; the default
    is CHGNet 0.3.0 from the ``chgnet`` wheel. ``reference``: the CSVs the hull is built from (None: the
    evaluation's train + test files). ``hull``: ``"ml"`` (default) or ``"dft"`` (see :mod:`crystal_eval.hull`).
    """

    potential: Callable[[], Potential] = field(default_factory=lambda: partial(CHGNetPotential, "0.3.0"))
    potential_id: str = field(default_factory=lambda: _chgnet_id("0.3.0"))
    potential_label: str = "CHGNet 0.3.0"
    reference: list[str] | None = None
    hull: HullMode = "ml"
    fmax: float = 0.05  # eV/Å, on forces and (filter-scaled) stresses
    max_steps: int = 300
    optimizer: Literal["batched", "ase"] = "batched"
    time_limit: float | None = 60.0  # seconds per relaxation; None or <= 0: none
    time_clock: Literal["wall", "cpu"] = "wall"  # what the limit counts: elapsed time or the worker's CPU time
    prerelax_volume: bool = False  # isotropic volume pre-relaxation before FIRE (crystal_eval.prerelax)
    relax_cell: Literal["primitive", "input"] = "primitive"  # the cell relaxed (RELAX_CELLS)
    threshold: float = STABLE_THRESHOLD
    symprec: float = 0.1
    angle_tolerance: float = 5.0
    n_jobs: int | None = None
    progress: bool = True
    chunk: int = 32  # reference structures per single-point task

    def validate(self) -> None:
        """Raise ValueError for inconsistent settings."""
        if self.hull not in ("ml", "dft"):
            raise ValueError(f"hull must be 'ml' or 'dft', got {self.hull!r}")
        if not (self.fmax > 0 and self.max_steps >= 1):
            raise ValueError("fmax must be > 0 and max_steps >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.time_clock not in CLOCKS:
            raise ValueError(f"time_clock must be one of {CLOCKS}, got {self.time_clock!r}")
        if self.relax_cell not in RELAX_CELLS:
            raise ValueError(f"relax_cell must be one of {sorted(RELAX_CELLS)}, got {self.relax_cell!r}")

    @property
    def label(self) -> str:
        """The honest label printed with every stability figure."""
        return f"ML-potential stability ({self.potential_label}), not DFT"


@dataclass
class RelaxRecord:
    """One crystal's relaxation (what the per-crystal cache holds)."""

    composition: dict[str, float] = field(default_factory=dict)
    energy_per_atom: float = float("nan")
    rmsd: float = float("nan")
    steps: int = 0
    converged: bool = False
    sg_before: int | None = None
    sg_after: int | None = None
    error: str | None = None
    time_limit: float | None = None  # the limit the relaxation ran into, if it did
    time_clock: str = "wall"  # the clock of ``seconds`` and of the limit ("wall" or "cpu")
    prerelax_scale: float = 1.0  # the isotropic lattice scale applied before FIRE (1: none)
    shortest_distance: float = float("nan")  # Å, between two distinct atoms of the input (minimum image)
    n_atoms_relaxed: int = 0  # atoms in the cell that was relaxed (fewer than the input's when it was reduced)
    seconds: float = float("nan")  # the relaxation's time charged to this crystal (NaN: unknown, e.g. older cache)


# ----------------------------------------------------------------------------- per-process potential

_POTENTIAL: dict[str, Potential] = {}


def _potential(factory: Callable[[], Potential], potential_id: str) -> Potential:
    """The potential of this process (loaded once; one torch thread)."""
    if potential_id not in _POTENTIAL:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        _POTENTIAL[potential_id] = factory()
    return _POTENTIAL[potential_id]


def _work_single_points(cifs: list[str], factory, potential_id: str) -> list[tuple[dict[str, float], float]]:
    pot = _potential(factory, potential_id)
    structs = [parse_for_hull(c) for c in cifs]
    ok = [s for s in structs if s is not None]
    energies = iter(pot.energies_per_atom(ok))
    return [(composition_dict(s), next(energies)) if s is not None else ({}, float("nan")) for s in structs]


def relax_rmsd(before: Structure, after: Structure) -> float:
    """RMS displacement (Å) of a relaxation: minimum-image fractional displacements, mean drift removed,
    expressed in the relaxed lattice."""
    d = np.asarray(after.frac_coords) - np.asarray(before.frac_coords)
    d -= np.round(d)
    d -= d.mean(axis=0)
    cart = d @ np.asarray(after.lattice.matrix)
    return float(np.sqrt(np.mean(np.sum(cart**2, axis=1))))


def shortest_distance(s: Structure) -> float:
    """Shortest distance (Å) between two distinct atoms, minimum image (NaN for one atom): generated crystals
    with nearly touching atoms are the ones that relax slowly."""
    if len(s) < 2:
        return float("nan")
    d = np.asarray(s.distance_matrix)
    return float(d[np.triu_indices(len(s), 1)].min())


def primitive_cell(s: Structure, tolerance: float = PRIMITIVE_TOLERANCE) -> Structure:
    """The primitive cell of ``s`` when its translational symmetry makes it smaller (pymatgen's
    ``get_primitive_structure`` with a site tolerance of ``tolerance`` Å, Niggli-reduced), else ``s`` itself,
    unchanged (also when the reduction fails). The energy per atom of a crystal does not depend on the cell
    it is given in; a potential call costs in proportion to the atoms."""
    try:
        p = s.get_primitive_structure(tolerance=tolerance, use_site_props=False)
    except Exception:
        return s
    return p if len(p) < len(s) else s


def relax_time_split(recs: Sequence[RelaxRecord]) -> dict[str, Any]:
    """Where the relaxation time went: total seconds, and count and seconds of the crystals by outcome
    (``converged``, ``step_cap``: relaxed without reaching fmax, ``failed``: error or time limit) and by the
    shortest interatomic distance before relaxation (``shortest_below_1A`` / ``shortest_at_least_1A``;
    :data:`NEAR_TOUCHING`), and the ``clocks`` those seconds were measured on (two when cached relaxations of both
    clocks are summed). Crystals without a recorded time are counted in ``n_unknown`` only."""
    timed = [r for r in recs if math.isfinite(r.seconds)]

    def part(rs: list[RelaxRecord]) -> dict[str, float | int]:
        return {"n": len(rs), "seconds": float(sum(r.seconds for r in rs))}

    return {
        "total": float(sum(r.seconds for r in timed)),
        "n_unknown": len(recs) - len(timed),
        "clocks": sorted({r.time_clock for r in timed}),
        "converged": part([r for r in timed if not r.error and r.converged]),
        "step_cap": part([r for r in timed if not r.error and not r.converged]),
        "failed": part([r for r in timed if r.error]),
        "shortest_below_1A": part([r for r in timed if r.shortest_distance < NEAR_TOUCHING]),
        "shortest_at_least_1A": part([r for r in timed if not r.shortest_distance < NEAR_TOUCHING]),
    }


def _space_group(s: Structure, symprec: float, angle_tolerance: float) -> int | None:
    from crystal_eval.features import symmetry_features

    sg, _, err = symmetry_features(s, symprec, angle_tolerance)
    return None if err else sg


def relax_many(structures: Sequence[Structure], potential: Potential, cfg: StabilityConfig) -> list[RelaxRecord]:
    """Relax the crystals (together when the potential and ``cfg.optimizer`` allow) and measure each one.

    Never raises: failures and time-outs are recorded in the returned records.
    """
    limit = cfg.time_limit if cfg.time_limit and cfg.time_limit > 0 else None
    recs = [RelaxRecord(composition=composition_dict(s)) for s in structures]
    for rec, s in zip(recs, structures, strict=True):
        rec.sg_before = _space_group(s, cfg.symprec, cfg.angle_tolerance)
        rec.shortest_distance = shortest_distance(s)
    cells = [primitive_cell(s) for s in structures] if cfg.relax_cell == "primitive" else list(structures)
    for rec, c in zip(recs, cells, strict=True):
        rec.n_atoms_relaxed = len(c)
    start = list(cells)
    if cfg.prerelax_volume:
        try:
            start, scales = prerelax_volumes(potential, cells)
            for rec, x in zip(recs, scales.tolist(), strict=True):
                rec.prerelax_scale = x
        except Exception:  # keep the input cells: a potential that fails here fails (and is recorded) below
            pass
    try:
        with threadpool_limits(1, user_api="blas"):  # no spinning BLAS threads (crystal_eval.parallel); torch's
            # own thread count (OpenMP) stays the potential's
            outs = relax_structures(potential, start, cfg.fmax, cfg.max_steps, limit, cfg.optimizer == "batched",
                                    cfg.time_clock)
    except Exception as exc:  # a potential whose relax_batch raises fails its whole batch, nothing else
        outs = [RelaxFailure(f"relaxation failed: {type(exc).__name__}: {exc}") for _ in structures]
    for rec, s, out in zip(recs, cells, outs, strict=True):
        rec.seconds, rec.time_clock = float(out.seconds), cfg.time_clock
        if isinstance(out, RelaxFailure):
            rec.error, rec.time_limit = out.reason, (limit if out.timed_out else None)
            continue
        if not np.isfinite(out.energy_per_atom):
            rec.error = "relaxation failed: ValueError: the potential returned a non-finite energy"
            continue
        rec.energy_per_atom, rec.steps, rec.converged = out.energy_per_atom, out.steps, out.converged
        if len(out.structure) == len(s):
            rec.rmsd = relax_rmsd(s, out.structure)
        rec.sg_after = _space_group(out.structure, cfg.symprec, cfg.angle_tolerance)
    return recs


def _work_relax_chunk(items: list[Item], factory, potential_id: str, cfg: StabilityConfig) -> list[RelaxRecord]:
    """Worker task: build and relax a chunk of crystals (records in the order of ``items``)."""
    recs: list[RelaxRecord | None] = [None] * len(items)
    built: list[tuple[int, Structure]] = []
    for i, item in enumerate(items):
        try:
            built.append((i, item_to_structure(item)))
        except Exception as exc:
            recs[i] = RelaxRecord(error=f"not built: {exc}")
    if built:
        try:
            pot = _potential(factory, potential_id)
        except Exception as exc:
            for i, s in built:
                recs[i] = RelaxRecord(composition=composition_dict(s), error=f"potential failed to load: {exc}")
            return [r for r in recs if r is not None]
        for (i, _), rec in zip(built, relax_many([s for _, s in built], pot, cfg), strict=True):
            recs[i] = rec
    return [r for r in recs if r is not None]


def relax_chunks(n: int, n_jobs: int | None, chunk: int = RELAX_CHUNK) -> list[range]:
    """Split ``n`` crystals into consecutive tasks of at most ``chunk`` (each relaxed together, then cached);
    with several processes, at least 4 tasks per process when there are enough crystals, so that the
    processes finish together."""
    jobs = default_jobs() if n_jobs is None or n_jobs <= 0 else n_jobs
    size = min(chunk, n) if jobs == 1 else min(chunk, math.ceil(n / (4 * jobs)))
    size = max(size, 1)
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


# ----------------------------------------------------------------------------- reference hull


def _check_extra(cfg: StabilityConfig) -> None:
    """The shipped CHGNet potential needs the extra; a plugged-in potential brings its own dependencies."""
    factory = cfg.potential
    if factory is CHGNetPotential or (isinstance(factory, partial) and factory.func is CHGNetPotential):
        require_extra()


def reference_hull(
    paths: Sequence[str | Path], cfg: StabilityConfig | None = None, cache: FeatureCache | None = None
) -> ReferenceHull:
    """The reference hull of ``paths`` (single points cached on disk under file hashes + potential id)."""
    cfg = cfg or StabilityConfig()
    cache = cache if cache is not None else FeatureCache(None)
    paths = [str(p) for p in paths]
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"stability reference file not found: {p}")
    key = energies_cache_key(paths, cfg.potential_id)
    hit = cache.get(key)
    if isinstance(hit, dict):
        energies = ReferenceEnergies(**hit)
    else:
        _check_extra(cfg)

        def single_points(cifs: list[str]) -> list[tuple[dict[str, float], float]]:
            chunks = [cifs[i : i + cfg.chunk] for i in range(0, len(cifs), cfg.chunk)]
            work = partial(_work_single_points, factory=cfg.potential, potential_id=cfg.potential_id)
            res = pmap(work, chunks, cfg.n_jobs, desc="reference hull: single points", progress=cfg.progress,
                       chunksize=1)  # fmt: skip
            return [r for chunk in res for r in chunk]

        energies = build_reference_energies(paths, single_points, cfg.potential_id)
        cache.put(key, asdict(energies))
    hull = ReferenceHull(cfg.hull, energies)
    hull.energies_paths = paths
    return hull


def reference_sanity(hull: ReferenceHull, cfg: StabilityConfig, cache: FeatureCache) -> np.ndarray:
    """E_hull of every reference crystal against its own hull (the sanity figure), cached with the hull."""
    key = f"{energies_cache_key(hull.energies_paths, cfg.potential_id)}:sanity:{cfg.hull}"
    hit = cache.get(key)
    if isinstance(hit, np.ndarray) and len(hit) == len(hull.energies.names):
        return hit
    values = hull.reference_e_above_hull()
    cache.put(key, values)
    return values


def _relax_key(cfg: StabilityConfig) -> str:
    blob = json.dumps(
        [RELAX_VERSION, cfg.potential_id, cfg.optimizer, cfg.fmax, cfg.max_steps, cfg.symprec,
         cfg.angle_tolerance, version("pymatgen")]  # fmt: skip
        + (["prerelax_volume", asdict(VolumeSearch())] if cfg.prerelax_volume else [])
        + (["relax_cell", "primitive", PRIMITIVE_TOLERANCE] if cfg.relax_cell == "primitive" else [])
    )
    return "relax:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StabilityResult:
    """The stability figures (``report``), one row per evaluated crystal (``details``) and the hull."""

    report: dict[str, Any]
    details: pd.DataFrame
    hull: ReferenceHull
    reference_e_hull: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the reference crystals' own E_hull


def e_hull_cdf(e_hull: Sequence[float], grid: Sequence[float]) -> np.ndarray:
    """Fraction of the crystals with E_hull <= each grid value (eV/atom). A crystal without an E_hull (failed,
    timed out, element outside the hull) stays in the denominator and is never counted, so that at the
    stability threshold the curve equals ``stable_rate / 100``."""
    e = np.asarray(e_hull, dtype=float)
    if not len(e):
        return np.zeros(len(grid))
    e = np.sort(np.where(np.isfinite(e), e, np.inf))
    return np.searchsorted(e, np.asarray(grid, dtype=float), side="right") / len(e)


def _pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den else None


def evaluate_stability(
    crystals: Sequence[Structure | Item | None],
    n_draw: int,
    reference: Sequence[str | Path],
    config: StabilityConfig | None = None,
    cache: FeatureCache | None = None,
) -> StabilityResult:
    """Stability figures of ``crystals`` (the U.N. crystals) out of a draw of ``n_draw`` crystals.

    Returns a :class:`StabilityResult`: its ``report`` holds the six :data:`STABILITY_KEYS` (percentages, RMSD in
    Å; None when there is no crystal) plus ``stability_meta`` (label, potential, hull, counts, failures, sanity
    figure of the hull).
    Raises :class:`~crystal_eval.potential.MissingExtraError` without the extra and
    :class:`~crystal_eval.io.InputError` for missing reference files.
    """
    cfg = config or StabilityConfig()
    cfg.validate()
    cache = cache if cache is not None else FeatureCache(None)
    _check_extra(cfg)
    items = list(crystals)
    if items and not all(isinstance(x, Item) for x in items):
        items = items_from_structures(items)  # type: ignore[arg-type]
    hull = reference_hull(reference, cfg, cache)
    keys = [f"{_relax_key(cfg)}:{item_key(it)}" for it in items]
    got = cache.get_many(keys)
    limit = cfg.time_limit if cfg.time_limit and cfg.time_limit > 0 else None
    got = {  # a cached time-out stands only for the same clock and a limit no longer than the one it ran into
        k: v
        for k, v in got.items()
        if not (v.time_limit is not None and (limit is None or limit > v.time_limit or v.time_clock != cfg.time_clock))
    }
    todo = [i for i, k in enumerate(keys) if k not in got]
    tasks = [[todo[j] for j in r] for r in relax_chunks(len(todo), cfg.n_jobs)]
    work = partial(_work_relax_chunk, factory=cfg.potential, potential_id=cfg.potential_id, cfg=cfg)
    results = pimap(work, [[items[i] for i in t] for t in tasks], cfg.n_jobs, desc=f"relaxations ({len(todo)})",
                    progress=cfg.progress, chunksize=1, weights=[len(t) for t in tasks],
                    min_items_for_pool=2)  # fmt: skip
    for task, res in zip(tasks, results, strict=True):  # stored task by task: an interrupted run keeps its work
        new = {keys[i]: r for i, r in zip(task, res, strict=True)}
        cache.put_many(new)
        got.update(new)
    recs: list[RelaxRecord] = [got[k] for k in keys]

    e_hull = np.full(len(recs), np.nan)
    errors: list[str] = []
    for i, r in enumerate(recs):
        err = r.error or ""
        if not err:
            try:
                e_hull[i] = hull.e_above_hull(r.composition, r.energy_per_atom)
            except ValueError as exc:
                err = f"E_hull: {exc}"
        errors.append(err)
    ok = np.isfinite(e_hull)
    stable = ok & (np.nan_to_num(e_hull, nan=np.inf) <= cfg.threshold)
    stable0 = ok & (np.nan_to_num(e_hull, nan=np.inf) <= 0.0)
    relaxed = [r for r in recs if not r.error]
    rmsds = [r.rmsd for r in relaxed if math.isfinite(r.rmsd)]
    kept = [r.sg_before == r.sg_after for r in relaxed if r.sg_before is not None and r.sg_after is not None]
    ref_eh = reference_sanity(hull, cfg, cache)
    ref_ok = np.isfinite(ref_eh)
    n = len(recs)
    n_stable, n_stable0, n_kept = int(stable.sum()), int(stable0.sum()), sum(kept)
    report: dict[str, Any] = {
        "stable_rate": _pct(n_stable, n),
        "stable_rate_0": _pct(n_stable0, n),
        "sun_rate": _pct(n_stable, n_draw),
        "sun_rate_0": _pct(n_stable0, n_draw),
        "relax_rmsd_median": float(np.median(rmsds)) if rmsds else None,
        "sg_kept_rate": _pct(n_kept, len(kept)),
    }
    report["stability_meta"] = {
        "label": cfg.label,
        "potential": cfg.potential_id,
        "n_evaluated": n,
        "n_draw": n_draw,
        "n_stable": n_stable,
        "n_stable_0": n_stable0,
        "n_relaxed": len(relaxed),
        "n_failed": int(sum(bool(e) for e in errors)),
        "n_time_limit": sum(r.time_limit is not None for r in recs),
        "n_not_converged": sum(not r.converged for r in relaxed),
        "n_space_group_compared": len(kept),
        "e_hull_median": float(np.nanmedian(e_hull)) if ok.any() else None,
        "intervals_95": {
            "stable_rate": wilson_interval(n_stable, n),
            "stable_rate_0": wilson_interval(n_stable0, n),
            "sun_rate": wilson_interval(n_stable, n_draw),
            "sun_rate_0": wilson_interval(n_stable0, n_draw),
            "sg_kept_rate": wilson_interval(n_kept, len(kept)),
        },
        "relax_seconds": relax_time_split(recs),
        "config": {
            "hull": cfg.hull,
            "reference": [str(p) for p in reference],
            "threshold_ev_per_atom": cfg.threshold,
            "fmax_ev_per_angstrom": cfg.fmax,
            "max_steps": cfg.max_steps,
            "time_limit_s": limit,
            "time_limit_clock": cfg.time_clock,
            "optimizer": OPTIMIZERS[cfg.optimizer],
            "prerelax_volume": PRERELAX if cfg.prerelax_volume else None,
            "relax_cell": RELAX_CELLS[cfg.relax_cell],
            "symprec": cfg.symprec,
            "angle_tolerance": cfg.angle_tolerance,
        },
        "hull": {
            "n_reference": len(ref_eh),
            "n_reference_failed": int((~ref_ok).sum()),
            "reference_within_0.1_of_own_hull": float(np.mean(ref_eh[ref_ok] <= 0.1)) if ref_ok.any() else None,
            "reference_on_own_hull_1e-6": float(np.mean(ref_eh[ref_ok] <= 1e-6)) if ref_ok.any() else None,
            "fitted_mu_rms_ev_per_atom": hull.mu_rms if math.isfinite(hull.mu_rms) else None,
            "n_fitted_elemental_references": len(set(hull.mu) - hull._elemental) if cfg.hull == "ml" else None,
        },
        "definitions": {
            "stable_rate": f"% of evaluated (U.N.) crystals with E_hull <= {cfg.threshold} eV/atom after relaxation",
            "stable_rate_0": "% of evaluated (U.N.) crystals with E_hull <= 0",
            "sun_rate": "stable U.N. crystals as a % of the whole draw (n_draw)",
            "sun_rate_0": "the same with E_hull <= 0",
            "relax_rmsd_median": "median RMS displacement of the relaxation (Å), drift removed, relaxed lattice",
            "sg_kept_rate": f"% of relaxed crystals with the same space group before and after (symprec {cfg.symprec})",
            "intervals_95": "95 % Wilson score intervals (percent) of the model's rates from these counts "
            "(crystal_eval.metrics.wilson_interval); the crystals are taken as a random draw from the model",
            "failures": "failed or timed-out relaxations and crystals with an element outside the hull are not stable",
            "relax_seconds": "seconds of relaxation charged to the crystals (their share of each batched potential "
            "call and update, the time the limit is checked against), summed by outcome and by the shortest "
            f"interatomic distance before relaxation (below / at least {NEAR_TOUCHING} Å); a cached crystal keeps "
            "the time of the run that relaxed it, on that run's clock ('clocks'), and one cached by an older "
            "version has none ('n_unknown')",
        },
    }
    details = pd.DataFrame(
        {
            "e_hull": e_hull,
            "stable": stable,
            "relax_energy_per_atom": [r.energy_per_atom for r in recs],
            "relax_rmsd": [r.rmsd for r in recs],
            "relax_steps": [r.steps for r in recs],
            "relax_atoms": [r.n_atoms_relaxed for r in recs],
            "relax_converged": [r.converged for r in recs],
            "relax_prerelax_scale": [r.prerelax_scale for r in recs],
            "shortest_distance_before_relax": [r.shortest_distance for r in recs],
            "relax_seconds": [r.seconds for r in recs],
            "space_group_relaxed": pd.array([r.sg_after for r in recs], dtype="Int64"),
            "space_group_before_relax": pd.array([r.sg_before for r in recs], dtype="Int64"),
            "stability_error": errors,
        }
    )
    return StabilityResult(report=report, details=details, hull=hull, reference_e_hull=np.asarray(ref_eh, float))


def format_stability(report: dict[str, Any]) -> str:
    """A one-block text summary of the stability figures with their label."""
    from crystal_eval.evaluation import format_intervals

    meta = report["stability_meta"]

    def f(k: str, fmt: str) -> str:
        return fmt.format(report[k]) if report.get(k) is not None else "n/a"

    return (
        f"{meta['label']}; hull '{meta['config']['hull']}' from {len(meta['config']['reference'])} file(s)\n"
        f"  stable {f('stable_rate', '{:.2f}')} %  stable_0 {f('stable_rate_0', '{:.2f}')} %  "
        f"S.U.N. {f('sun_rate', '{:.2f}')} %  S.U.N._0 {f('sun_rate_0', '{:.2f}')} %  "
        f"RMSD median {f('relax_rmsd_median', '{:.3f}')} Å  space group kept {f('sg_kept_rate', '{:.1f}')} %\n"
        f"  {meta['n_evaluated']} crystals evaluated of a draw of {meta['n_draw']}; {meta['n_failed']} failed "
        f"({meta['n_time_limit']} time limit), {meta['n_not_converged']} stopped at the step cap"
        + format_intervals(meta.get("intervals_95"), STABILITY_INTERVAL_NAMES, "\n  ")
        + _time_line(meta.get("relax_seconds"))
    )


STABILITY_INTERVAL_NAMES = {"stable_rate": "stable", "stable_rate_0": "stable_0", "sun_rate": "S.U.N.",
                            "sun_rate_0": "S.U.N._0", "sg_kept_rate": "space group kept"}


def _time_line(split: dict[str, Any] | None) -> str:
    """The relaxation-time line of :func:`format_stability` (empty when no time is known)."""
    if not split or split["total"] <= 0:
        return ""
    total = split["total"]

    def share(key: str) -> str:
        return f"{split[key]['n']} crystals {100 * split[key]['seconds'] / total:.0f} %"

    unknown = f"; {split['n_unknown']} without a recorded time" if split["n_unknown"] else ""
    clocks = split.get("clocks") or ["wall"]  # reports written before the clocks were recorded: wall clock
    seconds = {("cpu",): "s of CPU time", ("wall",): "s"}.get(tuple(clocks), "s (wall-clock and CPU time mixed)")
    return (
        f"\n  relaxation time {total:,.0f} {seconds} charged: converged {share('converged')}, "
        f"step cap {share('step_cap')}, failed {share('failed')}; "
        f"shortest distance below {NEAR_TOUCHING:g} Å: {share('shortest_below_1A')}"
        + unknown
    )
