"""Symmetry fidelity of generated crystals: do the sampled group's operations hold, and what does spglib find?

* :func:`operations_hold`: every operation (R, t) of the sampled space group maps the conventional cell onto
  itself, each atom onto an atom of the same element within ``tol`` (fractional units, modulo lattice
  translations). A crystal built from an exact ASU description satisfies this by construction; the check
  guards the whole path (sampling, normal form, expansion).
* :func:`spglib_relation`: spglib's operation set S at ``symprec``, found on the conventional cell and so
  expressed in the same basis as the sampled group's operations G, compared as sets of (R, t mod 1):
  ``"same"`` (S = G), ``"supergroup"`` (S strictly contains G: the crystal is more symmetric than sampled,
  e.g. a free coordinate landed on a special value within symprec), ``"subgroup"`` (S strictly inside G:
  spglib misses operations that hold exactly, which can only happen when atoms are closer than symprec and get
  merged or the tolerance is too tight), ``"other"`` (neither contains the other) or ``"none"`` (spglib found
  no symmetry). Comparing operations in one basis avoids group-subgroup tables, whose number-level relations
  are ambiguous (P2 and C2 are each a subgroup of the other at the number level, through cell enlargement).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

RELATIONS = ("same", "supergroup", "subgroup", "other", "none")


def _species_codes(crystal: Any, site: np.ndarray) -> np.ndarray:
    elements = sorted({s.element for s in crystal.sites})
    code = {e: i for i, e in enumerate(elements)}
    return np.array([code[crystal.sites[k].element] for k in site.tolist()], dtype=np.int64)


def _cell(crystal: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lattice matrix rows, fractional coordinates, species codes) of the conventional cell."""
    from asu_geometry.writers import expand_sites
    from pymatgen.core import Lattice

    frac, site, _ = expand_sites([crystal])
    return Lattice.from_parameters(*crystal.lattice).matrix, frac, _species_codes(crystal, site)


def max_operation_error(crystal: Any) -> float:
    """max over operations g and atoms i of the fractional distance (infinity norm, modulo 1) from g(x_i) to the
    nearest atom of the same element; 0 for an exactly symmetric cell."""
    import asu_geometry as ag

    g = ag.space_group(crystal.space_group)
    _, frac, species = _cell(crystal)
    images = g.apply(frac)  # (n, |G/T|, 3)
    d = images[:, :, None, :] - frac[None, None, :, :]  # (n, ops, n, 3)
    d -= np.round(d)
    err = np.abs(d).max(-1)
    err = np.where(species[None, None, :] == species[:, None, None], err, np.inf)
    return float(err.min(-1).max()) if len(frac) else 0.0


def operations_hold(crystal: Any, tol: float = 1e-6) -> bool:
    """Every operation of the crystal's space group maps its conventional cell onto itself within ``tol``."""
    return max_operation_error(crystal) <= tol


def _op_keys(rotations: np.ndarray, translations: np.ndarray, tol: float) -> set[tuple]:
    t = np.mod(translations, 1.0)
    t[t > 1.0 - tol] = 0.0
    return {(r.astype(int).tobytes(), tuple(np.round(v / tol).astype(np.int64).tolist())) for r, v in
            zip(rotations, t, strict=True)}


def spglib_relation(crystal: Any, symprec: float, angle_tolerance: float = -1.0) -> tuple[str, int]:
    """How spglib's symmetry at ``symprec`` (Angstrom) relates to the sampled group: ``(relation, number)``
    with ``relation`` in :data:`RELATIONS` and ``number`` the space group spglib reports (0 when none)."""
    import asu_geometry as ag
    import spglib

    lattice, frac, species = _cell(crystal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = spglib.get_symmetry_dataset((lattice, frac, species), symprec=symprec, angle_tolerance=angle_tolerance)
    if ds is None:
        return "none", 0
    g = ag.space_group(crystal.space_group)
    key_tol = 1e-3  # translations of both sets are exact multiples of 1/24 up to spglib's symmetrisation
    ours = _op_keys(g.rotations, g.translations, key_tol)
    found = _op_keys(np.asarray(ds.rotations), np.asarray(ds.translations), key_tol)
    if found == ours:
        rel = "same"
    elif ours < found:
        rel = "supergroup"
    elif found < ours:
        rel = "subgroup"
    else:
        rel = "other"
    return rel, int(ds.number)


def fidelity_table(crystals: Sequence[Any], symprecs: Sequence[float] = (0.1, 0.01, 0.001),
                   tol: float = 1e-6, progress: bool = False) -> dict[str, Any]:
    """Counts and percentages over many crystals: operations holding within ``tol`` and the spglib relation
    at each ``symprec``."""
    it: Any = crystals
    if progress:
        from tqdm import tqdm

        it = tqdm(crystals, desc="symmetry fidelity", unit="crystal")
    n = len(crystals)
    holds = 0
    counts = {p: dict.fromkeys(RELATIONS, 0) for p in symprecs}
    for c in it:
        holds += operations_hold(c, tol)
        for p in symprecs:
            counts[p][spglib_relation(c, p)[0]] += 1
    pct = (lambda k: 100.0 * k / n) if n else (lambda k: float("nan"))
    return {
        "n": n,
        "operations_hold_pct": pct(holds),
        "tolerance": tol,
        "spglib": {str(p): {r: pct(k) for r, k in counts[p].items()} for p in symprecs},
    }
