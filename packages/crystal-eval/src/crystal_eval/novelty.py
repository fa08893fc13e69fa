"""Uniqueness and novelty with pymatgen's StructureMatcher, bucketed by reduced composition.

StructureMatcher (with its element/species comparator) never matches two structures whose reduced
compositions differ, so comparing only within a reduced-composition bucket is exact.

Per-crystal time limit: :func:`novelty_check` and :func:`uniqueness_checked` bound the StructureMatcher
work of each crystal (all its comparisons together). A crystal that runs into the limit is counted as
*failed*: not novel, respectively not unique (so never unique-and-novel), and the reason is returned.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_eval.features import check_positive, formula_key
from crystal_eval.timelimit import TimeLimitExceeded, time_limit

LTOL, STOL, ANGLE_TOL = 0.2, 0.3, 5.0


@cache
def matcher(ltol: float = LTOL, stol: float = STOL, angle_tol: float = ANGLE_TOL) -> StructureMatcher:
    """``StructureMatcher(ltol, stol, angle_tol)`` with pymatgen's other defaults (primitive cell, scale)."""
    check_positive(ltol=ltol, stol=stol, angle_tol=angle_tol)
    return StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol)


def structures_match(
    a: Structure, b: Structure, ltol: float = LTOL, stol: float = STOL, angle_tol: float = ANGLE_TOL
) -> bool:
    """True if StructureMatcher fits ``a`` and ``b`` (errors count as no match; bad tolerances raise
    ``ValueError``)."""
    check_positive(ltol=ltol, stol=stol, angle_tol=angle_tol)
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


@dataclass(frozen=True)
class NoveltyResult:
    """Outcome of one novelty check: ``novel``, and why it failed when it ran into the time limit."""

    novel: bool
    error: str | None = None
    time_limit: float | None = None  # the limit (s) the check ran into, if it did


def novelty_check(
    structure: Structure,
    candidates: Sequence[Structure | str],
    ltol: float = LTOL,
    stol: float = STOL,
    angle_tol: float = ANGLE_TOL,
    time_limit_s: float | None = None,
) -> NoveltyResult:
    """:func:`is_novel` under a per-crystal time limit; running into it gives ``novel=False`` with the reason."""
    try:
        with time_limit(time_limit_s, "StructureMatcher novelty check"):
            return NoveltyResult(is_novel(structure, candidates, ltol, stol, angle_tol))
    except TimeLimitExceeded as exc:
        return NoveltyResult(False, f"TimeLimitExceeded: {exc}", time_limit_s)


def uniqueness_checked(
    structures: Sequence[Structure],
    keys: Sequence[str] | None = None,
    ltol: float = LTOL,
    stol: float = STOL,
    angle_tol: float = ANGLE_TOL,
    time_limit_s: float | None = None,
) -> tuple[list[bool], list[str | None]]:
    """``(is_unique, errors)``: structure i is unique iff it matches no earlier *kept* (unique) structure.

    Each class of mutually matching structures contributes exactly its first member. ``keys`` are the
    reduced-composition bucket keys (computed when omitted). A structure whose comparisons run past
    ``time_limit_s`` is not unique (failed) and is not kept; ``errors[i]`` says why.
    """
    keys = list(keys) if keys is not None else [formula_key(s) for s in structures]
    kept: dict[str, list[Structure]] = defaultdict(list)
    out: list[bool] = []
    errors: list[str | None] = []
    for s, k in zip(structures, keys, strict=True):
        try:
            with time_limit(time_limit_s, "StructureMatcher uniqueness check"):
                dup = any(structures_match(s, r, ltol, stol, angle_tol) for r in kept[k])
        except TimeLimitExceeded as exc:
            out.append(False)
            errors.append(f"TimeLimitExceeded: {exc}")
            continue
        if not dup:
            kept[k].append(s)
        out.append(not dup)
        errors.append(None)
    return out, errors


def uniqueness(
    structures: Sequence[Structure],
    keys: Sequence[str] | None = None,
    ltol: float = LTOL,
    stol: float = STOL,
    angle_tol: float = ANGLE_TOL,
    time_limit_s: float | None = None,
) -> list[bool]:
    """``is_unique[i]``: True iff structure i matches no earlier *kept* (unique) structure.

    Each class of mutually matching structures contributes exactly its first member.
    ``keys`` are the reduced-composition bucket keys (computed when omitted). See
    :func:`uniqueness_checked` for the time limit.
    """
    return uniqueness_checked(structures, keys, ltol, stol, angle_tol, time_limit_s)[0]
