"""Hard constraints for sampling, parsed and validated before any sampling starts.

``crystal-ar sample`` takes

* ``--space-group``: numbers, Hermann-Mauguin symbols or both, comma separated (``225``, ``Fm-3m``,
  ``P6_3/mmc``, ``221,225,229``); symbols are matched without spaces and underscores, case-insensitively;
* ``--elements``: the allowed elements (the composition space C is a subset);
* ``--require-elements``: elements every crystal must contain (C is a superset);
* ``--partial``: a partial crystal kept verbatim (space group, optionally the lattice, some sites), as JSON
  (an ``AsuCrystal`` record whose ``lattice`` may be null and whose sites may omit ``shape_index``) or a CIF;
* ``--max-atoms``: atoms per primitive cell.

Everything that can be checked without the model is checked here and reported as a
:class:`ConstraintError` naming the problem (unknown element or group, a required element outside the
allowed set, a partial site that is not on a Wyckoff position of its group, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CrystalARError


class ConstraintError(CrystalARError, ValueError):
    """Sampling constraints that are malformed, contradictory or impossible."""


# --------------------------------------------------------------------------------------- space groups
def _norm_symbol(s: str) -> str:
    return re.sub(r"[\s_]", "", s).lower()


@cache
def _symbol_table() -> dict[str, int]:
    import asu_geometry as ag

    return {_norm_symbol(ag.space_group(n).symbol): n for n in range(1, 231)}


def parse_space_groups(text: str | Sequence[str | int]) -> tuple[int, ...]:
    """Space-group numbers (sorted, unique) from ``'225'``, ``'Fm-3m'``, ``'221,225,229'`` or a list of them."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: set[int] = set()
    for item in items:
        s = str(item).strip()
        if not s:
            continue
        if re.fullmatch(r"[+-]?\d+", s):
            n = int(s)
            if not 1 <= n <= 230:
                raise ConstraintError(f"space group {n} is outside 1..230")
        else:
            n = _symbol_table().get(_norm_symbol(s), 0)
            if not n:
                raise ConstraintError(f"unknown space-group symbol {s!r} (use a number 1..230 or a Hermann-Mauguin "
                                      "symbol such as Fm-3m or P6_3/mmc)")
        out.add(n)
    if not out:
        raise ConstraintError(f"no space group in {text!r}")
    return tuple(sorted(out))


# ------------------------------------------------------------------------------------------- elements
@cache
def _z_of() -> dict[str, int]:
    from pymatgen.core import Element

    return {e.symbol: int(e.Z) for e in Element if e.Z <= 118}


def parse_elements(text: str | Sequence[str]) -> tuple[int, ...]:
    """Atomic numbers (sorted, unique) from ``'Li,Fe,P,O'`` or a list of symbols; symbols are case-sensitive."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: set[int] = set()
    for item in items:
        s = str(item).strip()
        if not s:
            continue
        z = _z_of().get(s)
        if z is None:
            hint = f" (did you mean {s.capitalize()}?)" if s.capitalize() in _z_of() else ""
            raise ConstraintError(f"unknown element symbol {s!r}{hint}")
        out.add(z)
    if not out:
        raise ConstraintError(f"no element in {text!r}")
    return tuple(sorted(out))


def symbols(zs: Sequence[int]) -> str:
    """``'Li,Fe,O'`` for atomic numbers (for messages)."""
    from pymatgen.core import Element

    return ",".join(Element.from_Z(int(z)).symbol for z in zs)


# --------------------------------------------------------------------------------------- partial crystal
@dataclass(frozen=True)
class PartialSite:
    """A site kept verbatim: element, Wyckoff letter, shape index and coordinates of its ASU representative."""

    element: str
    wyckoff: str
    shape_index: int
    frac_coords: tuple[float, float, float]


@dataclass(frozen=True)
class PartialCrystal:
    """The part of a crystal fixed by the user: its space group, optionally its lattice, and some sites."""

    space_group: int
    lattice: tuple[float, ...] | None
    sites: tuple[PartialSite, ...]

    @property
    def elements(self) -> tuple[int, ...]:
        """Atomic numbers of the sites' elements, distinct and ascending."""
        return tuple(sorted({_z_of()[s.element] for s in self.sites}))


def _site_on_position(sg: int, element: str, letter: str | None, frac: Sequence[float], where: str) -> PartialSite:
    """Map a user site onto its ASU representative and check it lies on the Wyckoff position it claims."""
    import asu_geometry as ag

    if element not in _z_of():
        raise ConstraintError(f"{where}: unknown element symbol {element!r}")
    try:
        x = np.asarray(frac, dtype=float)
    except (TypeError, ValueError):
        raise ConstraintError(f"{where}: frac_coords must be three finite numbers, got {frac!r}") from None
    if x.shape != (3,) or not np.all(np.isfinite(x)):
        raise ConstraintError(f"{where}: frac_coords must be three finite numbers, got {list(frac)}")
    pts = ag.to_asu_points(sg, x[None, :], tol=1e-4)
    found = pts.letters[0]
    g = ag.space_group(sg)
    if letter is not None:
        try:
            g.wyckoff(letter)
        except ag.UnknownWyckoffPositionError as exc:
            raise ConstraintError(f"{where}: {exc}") from exc
        if found != letter:
            wp = g.wyckoff(letter)
            raise ConstraintError(
                f"{where}: {element} at {np.round(x, 6).tolist()} is on Wyckoff position "
                f"{g.wyckoff(found).label} of {g.symbol} ({sg}), not on {wp.label} "
                f"({', '.join(wp.ops[0].split(','))})")
    rep = tuple(float(v) for v in np.where(np.abs(pts.frac[0]) < 1e-12, 0.0, pts.frac[0]))
    return PartialSite(element, found, int(pts.shape_index[0]), rep)  # type: ignore[arg-type]


def partial_from_dict(d: dict[str, Any], where: str = "partial crystal") -> PartialCrystal:
    """A :class:`PartialCrystal` from an ``AsuCrystal``-like record (``lattice`` may be null or absent)."""
    import asu_geometry as ag

    if "space_group" not in d:
        raise ConstraintError(f"{where}: needs a 'space_group'")
    sg = parse_space_groups(str(d["space_group"]))
    if len(sg) != 1:
        raise ConstraintError(f"{where}: 'space_group' must be one group, got {d['space_group']!r}")
    lat = d.get("lattice")
    if lat is not None:
        try:
            lat = tuple(float(v) for v in lat)
            ag.check_lattice_parameters(lat)
        except (TypeError, ValueError) as exc:
            raise ConstraintError(f"{where}: lattice must be a, b, c > 0 and three angles in (0, 180) that make a "
                                  f"cell with volume, got {d.get('lattice')!r} ({exc})") from None
    sites = []
    raw_sites = d.get("sites", [])
    if not isinstance(raw_sites, list) or not all(isinstance(s, dict) for s in raw_sites):
        raise ConstraintError(f"{where}: 'sites' must be a list of objects, got {raw_sites!r}")
    for i, s in enumerate(raw_sites):
        if "element" not in s or "frac_coords" not in s:
            raise ConstraintError(f"{where}: site {i} needs 'element' and 'frac_coords'")
        sites.append(_site_on_position(sg[0], s["element"], s.get("wyckoff"), s["frac_coords"], f"{where}, site {i}"))
    if not sites:
        raise ConstraintError(f"{where}: has no sites")
    return PartialCrystal(sg[0], lat, tuple(sites))


def read_partial(path: str | Path) -> PartialCrystal:
    """Read ``--partial``: a JSON record (see :func:`partial_from_dict`) or a CIF (its normal form, every site)."""
    import asu_geometry as ag

    p = Path(path)
    if p.is_dir():
        raise ConstraintError(f"{p}: is a folder; --partial takes one JSON or CIF file")
    if not p.is_file():
        raise ConstraintError(f"{p}: no such file")
    if p.suffix.lower() == ".json":
        try:
            d = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConstraintError(f"{p}: not valid JSON ({exc})") from exc
        if not isinstance(d, dict):
            raise ConstraintError(f"{p}: expected one JSON object")
        return partial_from_dict(d, str(p))
    c = ag.to_asu(ag.read_structure(p))
    return partial_from_dict(c.to_dict(), str(p))


# ------------------------------------------------------------------------------------------ all together
@dataclass(frozen=True)
class SamplingConstraints:
    """Validated hard constraints of one sampling run (``None`` = unconstrained)."""

    space_groups: tuple[int, ...] | None = None
    elements: tuple[int, ...] | None = None
    required: tuple[int, ...] = ()
    partial: PartialCrystal | None = None
    max_atoms: int | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_atoms is not None and (isinstance(self.max_atoms, bool)
                                           or not isinstance(self.max_atoms, (int, np.integer))):
            raise ConstraintError(f"--max-atoms must be a whole number, got {self.max_atoms!r}")
        if self.max_atoms is not None and self.max_atoms < 1:
            raise ConstraintError(f"--max-atoms must be at least 1, got {self.max_atoms}")
        if self.space_groups is not None:
            if not self.space_groups:
                raise ConstraintError("no space group allowed: the list of space groups is empty")
            bad = [g for g in self.space_groups if isinstance(g, bool) or not isinstance(g, (int, np.integer))
                   or not 1 <= g <= 230]
            if bad:
                raise ConstraintError(f"space group(s) {bad} are not numbers 1..230")
        for what, zs in (("allowed", self.elements), ("required", self.required)):
            if zs is None:
                continue
            bad = [z for z in zs if isinstance(z, bool) or not isinstance(z, (int, np.integer)) or not 1 <= z <= 118]
            if bad:
                raise ConstraintError(f"{what} element(s) {bad} are not atomic numbers 1..118")
        if self.elements is not None and not self.elements:
            raise ConstraintError("no element allowed: the set of allowed elements is empty")
        if self.elements is not None:
            outside = sorted(set(self.required) - set(self.elements))
            if outside:
                raise ConstraintError(f"required element(s) {symbols(outside)} are not among the allowed elements "
                                      f"{symbols(self.elements)}")
        if self.partial is not None:
            if self.space_groups is not None and self.partial.space_group not in self.space_groups:
                raise ConstraintError(f"the partial crystal is in space group {self.partial.space_group}, which is not "
                                      f"among --space-group {','.join(map(str, self.space_groups))}")
            if self.elements is not None:
                outside = sorted(set(self.partial.elements) - set(self.elements))
                if outside:
                    raise ConstraintError(f"the partial crystal contains {symbols(outside)}, outside the allowed "
                                          f"elements {symbols(self.elements)}")

    @property
    def groups(self) -> tuple[int, ...]:
        """The space groups a sample may have."""
        if self.partial is not None:
            return (self.partial.space_group,)
        return self.space_groups if self.space_groups is not None else tuple(range(1, 231))

    @property
    def must_contain(self) -> tuple[int, ...]:
        """Elements every sample contains: the required ones and those of the partial crystal."""
        extra = self.partial.elements if self.partial is not None else ()
        return tuple(sorted(set(self.required) | set(extra)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the constraints (what the sample files store)."""
        return {
            "space_groups": list(self.space_groups) if self.space_groups is not None else None,
            "elements": symbols(self.elements).split(",") if self.elements is not None else None,
            "required": symbols(self.required).split(",") if self.required else [],
            "partial": None if self.partial is None else {
                "space_group": self.partial.space_group, "lattice": self.partial.lattice,
                "sites": [s.__dict__ | {"frac_coords": list(s.frac_coords)} for s in self.partial.sites]},
            "max_atoms": self.max_atoms,
        }


def build_constraints(
    space_group: str | None = None,
    elements: str | None = None,
    require_elements: str | None = None,
    partial: str | Path | None = None,
    max_atoms: int | None = None,
) -> SamplingConstraints:
    """Parse the CLI strings into validated :class:`SamplingConstraints` (raises :class:`ConstraintError`)."""
    return SamplingConstraints(
        space_groups=parse_space_groups(space_group) if space_group is not None else None,
        elements=parse_elements(elements) if elements is not None else None,
        required=parse_elements(require_elements) if require_elements is not None else (),
        partial=read_partial(partial) if partial is not None else None,
        max_atoms=max_atoms,
    )


# ---------------------------------------------------------------------------------- against the model
@dataclass(frozen=True)
class SamplerMasks:
    """:class:`SamplingConstraints` checked against one model, as the sampler's arguments (tensors on the CPU):
    ``space_groups`` (230,) bool, ``elements`` / ``required`` (V,) bool over the vocabulary (``None`` when
    unconstrained), the atom ``budget`` and the prepared partial crystal (:class:`.infill.PartialSites`)."""

    space_groups: Any
    elements: Any
    required: Any
    budget: int
    partial: Any

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`.sampling.sample`."""
        return {"space_groups": self.space_groups, "elements": self.elements, "required": self.required,
                "max_atoms": self.budget, "partial": self.partial}


def _vocab_mask(zs: Sequence[int], model: Any, what: str) -> Any:
    import torch

    index = {z: i for i, z in enumerate(model.vocabulary)}
    outside = [z for z in zs if z not in index]
    if outside:
        lo, hi = model.vocabulary[0], model.vocabulary[-1]
        raise ConstraintError(f"{what}: {symbols(outside)} outside the model's element vocabulary "
                              f"({symbols([lo])}..{symbols([hi])}, Z = {lo}..{hi})")
    m = torch.zeros(len(model.vocabulary), dtype=torch.bool)
    m[[index[z] for z in zs]] = True
    return m


def for_model(constraints: SamplingConstraints, model: Any, min_distance: float | None = None) -> SamplerMasks:
    """Check ``constraints`` against ``model`` before any sampling and turn them into the sampler's masks.

    Raises :class:`ConstraintError` for: ``--max-atoms`` above the model's limit; an element outside the model's
    vocabulary; more required elements (``--require-elements`` and the partial crystal's) than any allowed
    space group can hold within the atom budget (``model.group_capacity``); a partial crystal the model cannot
    complete (see :func:`.infill.prepare_partial`), or whose given lattice puts two of its atoms closer than
    ``min_distance``.
    """
    import torch

    from .infill import prepare_partial

    limit = int(model.cfg.max_atoms)
    if constraints.max_atoms is not None and constraints.max_atoms > limit:
        raise ConstraintError(f"--max-atoms {constraints.max_atoms} exceeds the model's limit of {limit} atoms per "
                              "primitive cell")
    budget = limit if constraints.max_atoms is None else int(constraints.max_atoms)
    elements = None if constraints.elements is None else _vocab_mask(constraints.elements, model, "--elements")
    required = _vocab_mask(constraints.required, model, "--require-elements") if constraints.required else None
    groups = None
    if constraints.space_groups is not None:
        groups = torch.zeros(230, dtype=torch.bool)
        groups[[g - 1 for g in constraints.space_groups]] = True
    partial = None
    if constraints.partial is not None:
        partial = prepare_partial(constraints.partial, model, budget)
        need = len(constraints.must_contain)
        if need > partial.capacity:
            raise ConstraintError(
                f"the partial crystal and --require-elements need {need} distinct elements "
                f"({symbols(constraints.must_contain)}), but with the partial crystal's {partial.size} site(s) in "
                f"place a crystal of space group {partial.space_group} holds at most {partial.capacity} within "
                f"{budget} atoms per primitive cell")
        if min_distance is not None and partial.lattice is not None:
            _check_partial_distances(model, partial, min_distance)
    else:
        cap = model.group_capacity(budget).cpu()
        allowed = groups if groups is not None else torch.ones(230, dtype=torch.bool)
        need = max(1, len(constraints.required))
        best = int(cap[allowed].max())
        if best < need:
            where = "the allowed space groups hold" if groups is not None else "every space group holds"
            raise ConstraintError(
                f"--require-elements asks for {need} distinct elements, but {where} at most {best} within "
                f"{budget} atoms per primitive cell (--max-atoms)" if best else
                f"none of the allowed space groups fits an atom within {budget} atoms per primitive cell")
    return SamplerMasks(groups, elements, required, budget, partial)


def _check_partial_distances(model: Any, partial: Any, threshold: float) -> None:
    import torch

    from .distances import nearest_distances

    n = partial.size
    anchored = torch.zeros(n, dtype=torch.bool)
    anchored[0] = partial.anchored
    piece = model.heads.piece_offset.cpu()[partial.wyckoff, anchored.long()] + partial.shape
    sg = torch.full((n,), partial.space_group)
    lat = torch.tensor([partial.lattice] * n, dtype=torch.float64)
    others = torch.arange(n).repeat_interleave(n)  # query i against every site j (its own images included)
    cols = torch.arange(n).repeat(n)
    keep = others != cols
    d = nearest_distances(partial.frac, piece, torch.arange(n), partial.frac[cols[keep]], piece[cols[keep]],
                          others[keep], sg, lat)
    if bool((d < threshold).any()):
        i = int(torch.argmin(d))
        raise ConstraintError(f"the partial crystal's site {i} has an atom {float(d[i]):.3f} A away, closer than "
                              f"--min-distance {threshold}")
