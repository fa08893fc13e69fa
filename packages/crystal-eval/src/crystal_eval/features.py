"""Per-crystal features: validity, density, element count, symmetry, CrystalNN and Magpie fingerprints.

Everything here is a plain function of one crystal so that it can run in worker processes and be cached
by content hash (see :mod:`crystal_eval.cache`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from pymatgen.core import Composition, Structure

from crystal_eval._data import comp_scaler, wyckoff_dof
from crystal_eval.io import Item, item_to_structure
from crystal_eval.timelimit import TimeLimitExceeded, time_limit
from crystal_eval.validity import DEFAULT_CUTOFF, DEFAULT_MIN_VOLUME, composition_validity, structure_validity

CNN_DIM = 61
MAGPIE_DIM = 132
CNN_SYMMETRY_SYMPREC = 1e-3


@dataclass
class BasicRecord:
    """Cheap per-crystal facts, computed for every generated crystal."""

    constructed: bool
    error: str | None = None
    struct_valid: bool = False
    comp_valid: bool = False
    formula: str = ""  # reduced element composition, the novelty/uniqueness bucket key
    density: float = float("nan")  # g/cm^3
    n_elements: int = 0
    n_atoms: int = 0


@dataclass
class RichRecord:
    """Expensive per-crystal features, computed for the evaluation subset and the test set."""

    space_group: int = 1
    wyckoff_dims: list[int] = field(default_factory=list)  # one entry per occupied orbit
    symmetry_error: str | None = None
    cnn: np.ndarray | None = None  # (61,) site-averaged CrystalNN 'ops' fingerprint
    cnn_error: str | None = None
    cnn_time_limit: float | None = None  # the limit (s) the fingerprint ran into, if it did
    magpie: np.ndarray | None = None  # (132,) raw Magpie fingerprint (NaN possible)


def formula_key(structure: Structure) -> str:
    """Reduced element composition as a canonical string (exact bucket key for StructureMatcher)."""
    comp = structure.composition.element_composition.reduced_composition
    return " ".join(f"{el.symbol}{amt:g}" for el, amt in sorted(comp.items(), key=lambda x: x[0].Z))


def basic_record(
    structure: Structure | None, cutoff: float = DEFAULT_CUTOFF, min_volume: float = DEFAULT_MIN_VOLUME
) -> BasicRecord:
    """Validity flags, composition key, density and element count of one crystal (never raises)."""
    if structure is None:
        return BasicRecord(constructed=False, error="no structure")
    rec = BasicRecord(constructed=True, n_atoms=len(structure))
    rec.struct_valid = structure_validity(structure, cutoff, min_volume)
    try:
        rec.formula = formula_key(structure)
        rec.n_elements = len(structure.composition.element_composition.elements)
        rec.comp_valid = composition_validity(structure.composition)
    except Exception as exc:
        rec.comp_valid = False
        rec.error = f"composition: {type(exc).__name__}: {exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = float(structure.density)
        rec.density = d if np.isfinite(d) else float("nan")
    except Exception:
        rec.density = float("nan")
    return rec


def basic_record_from_item(item: Item, cutoff: float = DEFAULT_CUTOFF, min_volume: float = DEFAULT_MIN_VOLUME
                           ) -> BasicRecord:
    """Parse an item and compute its :class:`BasicRecord`; parse failures give ``constructed=False``."""
    try:
        s = item_to_structure(item)
    except Exception as exc:
        return BasicRecord(constructed=False, error=str(exc) or type(exc).__name__)
    return basic_record(s, cutoff, min_volume)


def _check_cell(structure: Structure) -> None:
    """Raise ValueError for cells that spglib/CrystalNN cannot handle (spglib segfaults on NaN)."""
    m = np.asarray(structure.lattice.matrix, dtype=float)
    f = np.asarray(structure.frac_coords, dtype=float)
    if len(structure) == 0 or not (np.all(np.isfinite(m)) and np.all(np.isfinite(f))):
        raise ValueError("empty cell or non-finite lattice/coordinates")
    if abs(float(np.linalg.det(m))) < 1e-6:
        raise ValueError("degenerate (zero-volume) cell")


def check_positive(**named: float) -> None:
    """``ValueError`` naming the first of ``named`` that is not a positive finite number. Tolerances are checked
    so: spglib kills the process on a negative or NaN ``symprec``, and a bad StructureMatcher tolerance makes
    every comparison fail (every crystal would count as unique and novel)."""
    for name, v in named.items():
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 < v < math.inf):
            raise ValueError(f"{name} must be a positive number, got {v!r}")


def symmetry_features(
    structure: Structure, symprec: float = 0.1, angle_tolerance: float = 5.0
) -> tuple[int, list[int], str | None]:
    """Space group number and the Wyckoff dimension (free coordinates, 0-3) of each occupied orbit.

    Uses pymatgen's SpacegroupAnalyzer (spglib) with the given tolerances. On failure the crystal is
    P1: space group 1 and one orbit of dimension 3 per atom. Returns ``(sg, dims, error_or_None)``.
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    check_positive(symprec=symprec, angle_tolerance=angle_tolerance)
    try:
        _check_cell(structure)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=angle_tolerance).get_symmetry_dataset()
        if ds is None:
            raise ValueError("spglib found no symmetry")
        sg = int(ds.number)
        table = wyckoff_dof()[str(sg)]
        reps = sorted(set(int(i) for i in ds.equivalent_atoms))
        dims = [int(table[ds.wyckoffs[i]]) for i in reps]
        return sg, dims, None
    except Exception as exc:
        return 1, [3] * len(structure), f"{type(exc).__name__}: {exc}"


@cache
def _cnn_featurizer():
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops")


@cache
def _magpie_featurizer():
    from matminer.featurizers.composition.composite import ElementProperty

    return ElementProperty.from_preset("magpie", impute_nan=False)


def crystalnn_fingerprint(structure: Structure, symmetry_reduce: bool = True) -> np.ndarray:
    """Unweighted mean over all sites of matminer's ``CrystalNNFingerprint.from_preset('ops')`` (61-d).

    With ``symmetry_reduce`` the fingerprint is computed once per symmetry orbit (spglib at a tight
    ``symprec=1e-3``) and weighted by the orbit size, which equals the all-site mean because symmetry-
    equivalent sites have identical environments; it is ~2x faster on MP-20. Raises on failure.
    """
    _check_cell(structure)
    cnn = _cnn_featurizer()
    n = len(structure)
    sites, weights = list(range(n)), np.ones(n)
    if symmetry_reduce and n > 1:
        try:
            from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = SpacegroupAnalyzer(structure, symprec=CNN_SYMMETRY_SYMPREC).get_symmetry_dataset()
            eq = np.asarray(ds.equivalent_atoms)
            sites, counts = np.unique(eq, return_counts=True)
            sites, weights = [int(i) for i in sites], counts.astype(float)
        except Exception:
            sites, weights = list(range(n)), np.ones(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fps = np.array([cnn.featurize(structure, i) for i in sites], dtype=float)
    fp = (weights[:, None] * fps).sum(axis=0) / weights.sum()
    if fp.shape != (CNN_DIM,) or not np.all(np.isfinite(fp)):
        raise ValueError("CrystalNN fingerprint is not a finite 61-vector")
    return fp


def magpie_fingerprint(composition: Composition) -> np.ndarray:
    """Raw 132-d Magpie ``ElementProperty`` fingerprint of a composition (NaN for missing data); ``ValueError``
    for an empty composition or one with a species that is not an element."""
    from pymatgen.core import Element

    comp = composition.element_composition
    if not comp or comp.num_atoms <= 0:
        raise ValueError("an empty composition has no Magpie fingerprint")
    unknown = [str(el) for el in comp if not isinstance(el, Element)]
    if unknown:
        raise ValueError(f"unknown element(s) {', '.join(unknown)}: no Magpie fingerprint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = _magpie_featurizer().featurize(comp)
    return np.asarray(v, dtype=float)


def standardise_magpie(x: np.ndarray) -> np.ndarray:
    """CDVAE CompScaler: ``(x - mean) / std`` with its fixed constants; NaN -> 0 after scaling. ``x`` is one
    132-d fingerprint or rows of them."""
    means, stds = comp_scaler()
    x = np.asarray(x, dtype=float)
    if x.shape[-1:] != means.shape:
        raise ValueError(f"Magpie fingerprints have {means.shape[0]} values, got shape {x.shape}")
    z = (x - means) / stds
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def rich_record(
    structure: Structure,
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    with_cnn: bool = True,
    with_magpie: bool = True,
    symmetry_reduce: bool = True,
    cnn_time_limit: float | None = None,
) -> RichRecord:
    """Symmetry, CrystalNN and Magpie features of one crystal (never raises; errors are recorded).

    ``cnn_time_limit`` (seconds, None = none) bounds the CrystalNN fingerprint; a crystal that runs into
    it gets ``cnn=None``, ``cnn_error='TimeLimitExceeded: ...'`` and ``cnn_time_limit`` set (it then
    counts as a failed fingerprint, i.e. not valid in CDVAE's sense).
    """
    rec = RichRecord()
    rec.space_group, rec.wyckoff_dims, rec.symmetry_error = symmetry_features(structure, symprec, angle_tolerance)
    if with_cnn:
        try:
            with time_limit(cnn_time_limit, "CrystalNN fingerprint"):
                rec.cnn = crystalnn_fingerprint(structure, symmetry_reduce)
        except TimeLimitExceeded as exc:
            rec.cnn_error, rec.cnn_time_limit = f"TimeLimitExceeded: {exc}", cnn_time_limit
        except Exception as exc:
            rec.cnn_error = f"{type(exc).__name__}: {exc}"
    if with_magpie:
        try:
            rec.magpie = magpie_fingerprint(structure.composition)
        except Exception:
            rec.magpie = np.full(MAGPIE_DIM, np.nan)
    return rec
