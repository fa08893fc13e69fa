"""Structural and compositional validity (the CDVAE definitions, written down exactly).

Structural validity
    A crystal is structurally valid iff it was built (parsed), its lattice and coordinates are finite,
    its cell volume ``|det L|`` is >= ``min_volume`` (0.1 Å^3) and every minimum-image distance between
    two *distinct* sites is >= ``cutoff`` (0.5 Å; equality passes). A one-atom cell passes the distance
    test (the CDVAE blind spot: the distance of a site to its own periodic image is not checked). We do
    not add SymmCD's extra rejections (frac coords outside [0, 1], lengths > 40 Å, > 30 atoms).

Compositional validity (CDVAE ``smact_validity`` logic, our code)
    With the distinct elements and their gcd-reduced counts:

    1. one distinct element -> valid;
    2. all elements in SMACT's metal list -> valid (the alloy rule);
    3. otherwise, if the product of the numbers of oxidation states exceeds 1e7 -> invalid (guard);
       else valid iff some assignment of one oxidation state per element is charge neutral
       (``sum ox_i * n_i == 0``) and passes the Pauling test: for every pair (in element order) of a
       cation and an anion, the cation's Pauling electronegativity is strictly lower than the anion's.
       A pair with an unknown electronegativity makes that assignment pass (this is what CDVAE's
       ``except TypeError: True`` did with SMACT < 3).

    The oxidation states are the **SMACT14** set frozen in ``data/smact14.json`` (SMACT < 3 default,
    what CDVAE/DiffCSP/SymmCD used), so the result does not drift with the installed SMACT version.
    Elements with no SMACT14 oxidation state (He, Ne, Ar, ...) make rule 3 fail.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import reduce

import numpy as np
from pymatgen.core import Composition, Structure

from crystal_eval._data import smact14

DEFAULT_CUTOFF = 0.5
DEFAULT_MIN_VOLUME = 0.1
MAX_OX_COMBINATIONS = 10_000_000


def structure_validity(
    structure: Structure | None, cutoff: float = DEFAULT_CUTOFF, min_volume: float = DEFAULT_MIN_VOLUME
) -> bool:
    """True iff the crystal is built, finite, has volume >= ``min_volume`` Å^3 and no two distinct sites
    closer than ``cutoff`` Å (minimum image). Never raises: anything odd counts as invalid."""
    if structure is None or len(structure) == 0:
        return False
    try:
        m = np.asarray(structure.lattice.matrix, dtype=float)
        f = np.asarray(structure.frac_coords, dtype=float)
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(f))):
            return False
        volume = abs(float(np.linalg.det(m)))
        if not math.isfinite(volume) or volume < min_volume:
            return False
        if len(structure) == 1:
            return True
        d = np.array(structure.distance_matrix, dtype=float)
        np.fill_diagonal(d, cutoff + 10.0)
        return bool(np.all(np.isfinite(d)) and d.min() >= cutoff)
    except Exception:
        return False


def _reduced_counts(composition: Composition | Mapping[str, float]) -> tuple[list[str], list[int]]:
    from pymatgen.core import Element

    if not isinstance(composition, Composition):
        for sp, amt in dict(composition).items():  # Composition drops a NaN amount silently
            if not (isinstance(amt, (int, float)) and math.isfinite(amt) and amt >= 0):
                raise ValueError(f"amount of {sp} must be a finite number >= 0, got {amt!r}")
    comp = composition if isinstance(composition, Composition) else Composition(composition)
    for sp, amt in comp.items():
        if not math.isfinite(amt) or amt < 0:
            raise ValueError(f"amount of {sp} must be a finite number >= 0, got {amt}")
    comp = comp.element_composition
    unknown = [str(el) for el in comp if not isinstance(el, Element)]
    if unknown:
        raise ValueError(f"unknown element(s) {', '.join(unknown)} in the composition")
    items = sorted(((el.Z, el.symbol, amt) for el, amt in comp.items() if amt > 0))
    symbols = [sym for _, sym, _ in items]
    counts = [round(amt) for _, _, amt in items]
    if any(abs(c - amt) > 1e-6 for c, (_, _, amt) in zip(counts, items, strict=True)):
        raise ValueError(f"non-integer composition {comp} (disordered?)")
    g = reduce(math.gcd, counts) if counts else 1
    return symbols, [c // g for c in counts]


def _pauling_ok(ox: Sequence[int], eneg: Sequence[float | None]) -> bool:
    for (o1, e1), (o2, e2) in itertools.combinations(zip(ox, eneg, strict=True), 2):
        if (o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0):
            if e1 is None or e2 is None:
                return True  # CDVAE: a TypeError in the comparison counts as a pass
            if (o1 > 0 and e1 >= e2) or (o1 < 0 and e1 <= e2):
                return False
    return True


def composition_validity(composition: Composition | Mapping[str, float] | Structure) -> bool:
    """CDVAE compositional validity (SMACT14 oxidation states, alloy and single-element rules).

    Accepts a pymatgen Composition, a ``{element: amount}`` mapping or a Structure.
    Raises ValueError for unknown elements or non-integer amounts.
    """
    if isinstance(composition, Structure):
        composition = composition.composition
    symbols, counts = _reduced_counts(composition)
    if not symbols:
        return False
    if len(symbols) == 1:
        return True
    table = smact14()
    if all(s in table["metals"] for s in symbols):
        return True
    ox_lists = [table["oxidation_states"].get(s, []) for s in symbols]
    n_comb = math.prod(len(x) for x in ox_lists)
    if n_comb == 0 or n_comb > MAX_OX_COMBINATIONS:
        return False
    enegs = [table["pauling_eneg"].get(s) for s in symbols]
    for ox in itertools.product(*ox_lists):
        if sum(o * c for o, c in zip(ox, counts, strict=True)) != 0:
            continue
        if _pauling_ok(ox, enegs):
            return True
    return False


def validity_rate(flags: Sequence[bool]) -> float:
    """Percentage of True among ``flags`` (NaN for an empty sequence)."""
    return float(100.0 * np.mean(np.asarray(flags, dtype=bool))) if len(flags) else float("nan")
