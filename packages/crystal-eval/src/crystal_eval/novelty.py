"""Uniqueness and novelty with pymatgen's StructureMatcher, bucketed by reduced composition.

StructureMatcher (with its element/species comparator) never matches two structures whose reduced
compositions differ, so comparing only within a reduced-composition bucket is exact.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from functools import cache

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_eval.features import formula_key

LTOL, STOL, ANGLE_TOL = 0.2, 0.3, 5.0


@cache
def matcher(ltol: float = LTOL, stol: float = STOL, angle_tol: float = ANGLE_TOL) -> StructureMatcher:
    """``StructureMatcher(ltol, stol, angle_tol)`` with pymatgen's other defaults (primitive cell, scale)."""
    return StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol)


def structures_match(
    a: Structure, b: Structure, ltol: float = LTOL, stol: float = STOL, angle_tol: float = ANGLE_TOL
) -> bool:
    """True if StructureMatcher fits ``a`` and ``b`` (errors count as no match)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(matcher(ltol, stol, angle_tol).fit(a, b))
    except Exception:
        return False


def is_novel(
    structure: Structure,
    candidates: Sequence[Structure | str],
    ltol: float = LTOL,
    stol: float = STOL,
    angle_tol: float = ANGLE_TOL,
) -> bool:
    """True if no candidate (Structures or CIF texts, pre-filtered to the same reduced composition) matches.

    Stops at the first match. Candidates that fail to parse are skipped.
    """
    from crystal_eval.io import parse_cif

    for c in candidates:
        if isinstance(c, str):
            try:
                c = parse_cif(c)
            except ValueError:
                continue
        if structures_match(structure, c, ltol, stol, angle_tol):
            return False
    return True


def uniqueness(
    structures: Sequence[Structure],
    keys: Sequence[str] | None = None,
    ltol: float = LTOL,
    stol: float = STOL,
    angle_tol: float = ANGLE_TOL,
) -> list[bool]:
    """``is_unique[i]``: True iff structure i matches no earlier *kept* (unique) structure.

    Each class of mutually matching structures contributes exactly its first member.
    ``keys`` are the reduced-composition bucket keys (computed when omitted).
    """
    keys = list(keys) if keys is not None else [formula_key(s) for s in structures]
    kept: dict[str, list[Structure]] = defaultdict(list)
    out = []
    for s, k in zip(structures, keys, strict=True):
        dup = any(structures_match(s, r, ltol, stol, angle_tol) for r in kept[k])
        if not dup:
            kept[k].append(s)
        out.append(not dup)
    return out
