"""Fast orbit expansion and writers for :class:`~asu_geometry.AsuCrystal`: symmetric CIF and extended XYZ.

Expansion. A site on a piece (point, segment, polygon, interior) of a Wyckoff position has the same
site-symmetry group S at every point of the piece, so its orbit is ``{g x : g in R}`` for one fixed set R
of coset representatives of G/S (|R| = the multiplicity). R is found once per piece, exactly, at a generic
rational point of the piece (:func:`coset_operations`); expanding a batch of sites is then one gather and
one ``einsum`` over all of them (:func:`expand_sites`), with no duplicate test.

CIF. :func:`to_cif` writes the space group (Hermann-Mauguin symbol, number, Hall symbol), all |G/T|
operations of the standard setting, and one ``_atom_site`` row per ASU site with its multiplicity and
Wyckoff letter, not a P1 dump: any CIF reader expands it to the conventional cell.

Extended XYZ. :func:`to_extxyz` writes conventional cells in the format ASE reads
(``Lattice="..." Properties=species:S:1:pos:R:3 pbc="T T T"``) with optional per-frame key=value pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CanonicalizationError
from .tables import WyckoffShape, space_group

if TYPE_CHECKING:
    from .crystal import AsuCrystal

WRAP_EPS = 1e-12  # 1 - 1e-16 after reduction modulo 1 is the lattice point 0


# ------------------------------------------------------------------------------------------ expansion
def _generic_point(shape: WyckoffShape) -> tuple[list[int], int]:
    """An exact rational point ``X / L`` in the relative interior of a piece, as the integers ``(X, L)`` (irregular
    weights, so not a vertex, an edge midpoint or a centre, where a higher site symmetry could sit)."""
    verts = shape.vertices
    den = math.lcm(*(v.denominator for vert in verts for v in vert))
    nums = [[int(v * den) for v in vert] for vert in verts]
    if shape.dim == 0:
        return nums[0], den
    weights = [7, 12] if shape.dim == 1 else [2 * i + 3 for i in range(len(verts))]
    total = sum(weights)
    return [sum(w * n[k] for w, n in zip(weights, nums, strict=True)) for k in range(3)], den * total


@cache
def _ops_integer(sg: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The operations of ``sg`` as integers: rotations (K, 3, 3), translations times ``den`` (K, 3) and ``den``
    (the least common denominator of the translations)."""
    g = space_group(sg)
    t24 = g.translations24.astype(np.int64)  # the exact translations are t24 / 24
    den = 24 // math.gcd(24, *(int(v) for v in np.unique(t24)))
    return g.rotations.astype(np.int64), t24 // (24 // den), den


_COSETS: dict[int, np.ndarray] = {}


def coset_operations(sg: int, shape: WyckoffShape, multiplicity: int) -> np.ndarray:
    """Indices into ``space_group(sg)``'s operations of one coset representative of G/S per orbit point,
    S the site-symmetry group of the piece (computed exactly at a generic point; cached per piece).

    Raises :class:`CanonicalizationError` when the piece's orbit does not have ``multiplicity`` points.
    """
    key = id(shape)
    out = _COSETS.get(key)
    if out is None:
        # exact in integers: x = X / L and t = T / L with L a common denominator; g x mod 1 <-> (R X + T) mod L
        num, point_den = _generic_point(shape)
        rot, tr, den = _ops_integer(sg)
        big = math.lcm(den, point_den)
        xi = np.array(num, dtype=np.int64) * (big // point_den)
        img = np.mod(rot @ xi + tr * (big // den), big)  # (K, 3), one row per operation
        _, first = np.unique((img[:, 0] * big + img[:, 1]) * big + img[:, 2], return_index=True)
        out = np.sort(first).astype(np.int64)  # the first operation of each distinct image, in table order
        out.setflags(write=False)
        _COSETS[key] = out  # shapes live as long as the cached tables, so id() is a stable key
    if len(out) != multiplicity:
        raise CanonicalizationError(
            f"space group {sg}: a piece ({shape}) has an orbit of {len(out)} points, expected {multiplicity}")
    return out


@cache
def _all_operations() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operation of the 230 groups stacked: rotations (N, 3, 3), translations (N, 3), group offsets."""
    from .tables import _raw_table

    # the operations straight from the shipped table (as SpaceGroup.rotations / .translations, without building
    # the 230 groups' Wyckoff shapes)
    ops = [np.asarray(g["ops"], dtype=np.int64) for g in _raw_table()["groups"]]
    offsets = np.cumsum([0] + [len(o) for o in ops])
    rot = np.concatenate([o[:, :9].reshape(-1, 3, 3) for o in ops]).astype(float)
    tr = np.concatenate([o[:, 9:] for o in ops]) / 24.0
    return rot, tr, offsets


def expand_sites(crystals: Sequence[AsuCrystal]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conventional-cell atoms of many crystals at once.

    Returns:
        ``(frac, site, crystal)``: fractional coordinates in [0, 1)^3 of every atom (n_atoms, 3), the index of
        its ASU site within its crystal, and the index of its crystal in ``crystals``; atoms are grouped by
        crystal and, within a crystal, by site in site order.
    """
    rot, tr, offsets = _all_operations()
    op_idx, site_of, crystal_of, coords = [], [], [], []
    for c_i, c in enumerate(crystals):
        g = space_group(c.space_group)
        for s_i, s in enumerate(c.sites):
            ops = coset_operations(g.number, c.shape(s_i), g.wyckoff(s.wyckoff).multiplicity)
            op_idx.append(ops + offsets[g.number - 1])
            site_of.append(np.full(len(ops), s_i))
            crystal_of.append(np.full(len(ops), c_i))
            coords.append(np.broadcast_to(np.asarray(s.frac_coords, dtype=float), (len(ops), 3)))
    if not op_idx:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    idx = np.concatenate(op_idx)
    x = np.concatenate(coords)
    y = np.einsum("nij,nj->ni", rot[idx], x) + tr[idx]
    y -= np.floor(y)
    y[y >= 1.0 - WRAP_EPS] = 0.0
    return y, np.concatenate(site_of).astype(np.int64), np.concatenate(crystal_of).astype(np.int64)


def to_structures(crystals: Sequence[AsuCrystal]) -> list[Any]:
    """pymatgen conventional-cell ``Structure`` of each crystal (one batched expansion for all)."""
    from pymatgen.core import Lattice, Structure

    frac, site, which = expand_sites(crystals)
    bounds = np.searchsorted(which, np.arange(len(crystals) + 1))
    out = []
    for c_i, c in enumerate(crystals):
        a, b = bounds[c_i], bounds[c_i + 1]
        species = [c.sites[k].element for k in site[a:b].tolist()]
        out.append(Structure(Lattice.from_parameters(*c.lattice), species, frac[a:b]))
    return out


def to_cells(crystals: Sequence[AsuCrystal]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Conventional cells as arrays, ``(lattice (3, 3) rows in Angstrom, frac (n, 3), atomic numbers (n,))``: the
    arrays of :func:`to_structures`' ``Structure`` objects (same lattice matrix, coordinates and atom order), for
    :func:`asu_geometry.to_asu_cell` without building pymatgen objects."""
    return [cell[:3] for cell in cells_with_sites(crystals)]


def cells_with_sites(crystals: Sequence[AsuCrystal]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`to_cells` with a fourth array per crystal: the index of each atom's ASU site (its orbit)."""
    from pymatgen.core import Lattice

    from .crystal import atomic_number

    frac, site, which = expand_sites(crystals)
    bounds = np.searchsorted(which, np.arange(len(crystals) + 1))
    out = []
    for c_i, c in enumerate(crystals):
        a, b = bounds[c_i], bounds[c_i + 1]
        z = np.array([atomic_number(s.element) for s in c.sites], dtype=np.int64)
        out.append((Lattice.from_parameters(*c.lattice).matrix, frac[a:b], z[site[a:b]], site[a:b]))
    return out


# ---------------------------------------------------------------------------------------------- CIF
def _fmt_term(coef: int, var: str) -> str:
    if coef == 1:
        return f"+{var}"
    if coef == -1:
        return f"-{var}"
    return f"{coef:+d}*{var}"


def operation_xyz(rotation: np.ndarray, translation: Sequence[Fraction]) -> str:
    """An operation as a CIF coordinate triplet, e.g. ``'-y,x-y,z+1/3'``."""
    rows = []
    for i in range(3):
        s = "".join(_fmt_term(int(rotation[i, j]), "xyz"[j]) for j in range(3) if rotation[i, j] != 0)
        t = Fraction(translation[i]) % 1
        if t:
            s += f"+{t.numerator}/{t.denominator}" if t.denominator != 1 else f"+{t.numerator}"
        rows.append(s.lstrip("+") or "0")
    return ",".join(rows)


@cache
def _symop_lines(sg: int) -> str:
    g = space_group(sg)
    return "".join(f" {k + 1} '{operation_xyz(r, t)}'\n" for k, (r, t) in enumerate(g.exact_ops()))


def _num(v: float) -> str:
    return f"{v:.10f}".rstrip("0").rstrip(".") if math.isfinite(v) else "?"


def to_cif(crystal: AsuCrystal, name: str = "crystal", comments: Mapping[str, Any] | None = None) -> str:
    """A CIF of the crystal in its space group: all operations and one row per ASU site, with the
    site's multiplicity and Wyckoff letter (``_atom_site_symmetry_multiplicity``, ``_atom_site_Wyckoff_symbol``).

    ``comments`` become ``# key: value`` lines after the data block header (e.g. a log-likelihood).
    """
    g = space_group(crystal.space_group)
    a, b, c, al, be, ga = crystal.lattice
    lines = [f"data_{''.join(ch if ch.isalnum() or ch in '-_.' else '_' for ch in name) or 'crystal'}"]
    for k, v in (comments or {}).items():
        lines.append(f"# {k}: {v}")
    formula = _formula(crystal)
    lines += [
        f"_chemical_formula_sum '{formula}'",
        f"_cell_length_a {_num(a)}",
        f"_cell_length_b {_num(b)}",
        f"_cell_length_c {_num(c)}",
        f"_cell_angle_alpha {_num(al)}",
        f"_cell_angle_beta {_num(be)}",
        f"_cell_angle_gamma {_num(ga)}",
        f"_symmetry_space_group_name_H-M '{g.symbol}'",
        f"_space_group_name_Hall '{g.hall_symbol.strip()}'",
        f"_symmetry_Int_Tables_number {g.number}",
        f"_space_group_IT_number {g.number}",
        "loop_",
        "_symmetry_equiv_pos_site_id",
        "_symmetry_equiv_pos_as_xyz",
        _symop_lines(g.number).rstrip("\n"),
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_symmetry_multiplicity",
        "_atom_site_Wyckoff_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_occupancy",
    ]
    counts: dict[str, int] = {}
    for s in crystal.sites:
        counts[s.element] = counts.get(s.element, 0) + 1
        x, y, z = s.frac_coords
        mult = g.wyckoff(s.wyckoff).multiplicity
        lines.append(f"{s.element}{counts[s.element]} {s.element} {mult} {s.wyckoff} "
                     f"{_num(x)} {_num(y)} {_num(z)} 1")
    return "\n".join(lines) + "\n"


def _formula(crystal: AsuCrystal) -> str:
    g = space_group(crystal.space_group)
    counts: dict[str, int] = {}
    for s in crystal.sites:
        counts[s.element] = counts.get(s.element, 0) + g.wyckoff(s.wyckoff).multiplicity
    return " ".join(f"{el}{n}" for el, n in sorted(counts.items()))


# ------------------------------------------------------------------------------------------ extxyz
def _info_value(v: Any) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    s = str(v)
    return '"' + s.replace('"', "'") + '"' if (not s or any(ch in s for ch in ' ="\t')) else s


def to_extxyz(crystals: Sequence[AsuCrystal], info: Iterable[Mapping[str, Any]] | None = None) -> str:
    """Extended-XYZ text of the conventional cells (Cartesian positions in Angstrom), one frame per crystal.

    ``info`` gives per-frame key=value pairs (numbers, strings, booleans); ``space_group`` is always written.
    """
    from pymatgen.core import Lattice

    frac, site, which = expand_sites(crystals)
    bounds = np.searchsorted(which, np.arange(len(crystals) + 1))
    infos = list(info) if info is not None else [{} for _ in crystals]
    if len(infos) != len(crystals):
        raise ValueError(f"info has {len(infos)} entries for {len(crystals)} crystals")
    out: list[str] = []
    for c_i, c in enumerate(crystals):
        a, b = bounds[c_i], bounds[c_i + 1]
        m = Lattice.from_parameters(*c.lattice).matrix
        cart = frac[a:b] @ m
        lat = " ".join(f"{v:.10f}" for v in m.reshape(-1))
        extra = " ".join(f"{k}={_info_value(v)}" for k, v in {"space_group": c.space_group, **infos[c_i]}.items())
        out.append(f"{b - a}\nLattice=\"{lat}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\" {extra}\n")
        out.extend(f"{c.sites[k].element} {p[0]:.10f} {p[1]:.10f} {p[2]:.10f}\n"
                   for k, p in zip(site[a:b].tolist(), cart, strict=True))
    return "".join(out)
