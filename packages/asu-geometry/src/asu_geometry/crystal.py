"""Crystal <-> asymmetric-unit representation.

:func:`to_asu` turns a pymatgen :class:`~pymatgen.core.Structure` into an :class:`AsuCrystal`: the space
group (spglib, called with the Hall number of the table's setting so that origin choice 2 and hexagonal
axes are used), the conventional lattice parameters (with the crystal family's equalities imposed
exactly), and one site per orbit: element, Wyckoff letter, shape index and fractional coordinates of
the orbit's unique representative inside the exact ASU. :meth:`AsuCrystal.to_structure` expands it back.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .canonical import to_asu_points
from .errors import (
    CanonicalizationError,
    CifReadError,
    DisorderedStructureError,
    SymmetryNotFoundError,
)
from .tables import space_group

DICT_FORMAT = "asu-crystal/1"


@dataclass(frozen=True)
class AsuSite:
    """One orbit of the crystal: its element and its representative inside the exact ASU."""

    element: str
    wyckoff: str
    shape_index: int
    frac_coords: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"element": self.element, "wyckoff": self.wyckoff, "shape_index": self.shape_index,
                "frac_coords": list(self.frac_coords)}


@dataclass(frozen=True)
class AsuCrystal:
    """A crystal as its space group, conventional lattice and asymmetric-unit sites.

    Lengths in Angstrom, angles in degrees. Sites are ordered by Wyckoff position (table order: 'a'
    first), then atomic number, then coordinates.
    """

    space_group: int
    lattice: tuple[float, float, float, float, float, float]
    sites: tuple[AsuSite, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        g = space_group(self.space_group)  # validates the number
        for s in self.sites:
            if s.element not in _element_symbols():
                raise ValueError(f"unknown element symbol {s.element!r}")
            wp = g.wyckoff(s.wyckoff)
            if not 0 <= s.shape_index < len(wp.shapes):
                raise ValueError(f"shape index {s.shape_index} out of range for {g.number}{wp.label}")
        if len(self.lattice) != 6 or not all(np.isfinite(self.lattice)):
            raise ValueError(f"lattice must be six finite numbers (a, b, c, alpha, beta, gamma), got {self.lattice}")

    @property
    def a(self) -> float:
        return self.lattice[0]

    @property
    def b(self) -> float:
        return self.lattice[1]

    @property
    def c(self) -> float:
        return self.lattice[2]

    @property
    def alpha(self) -> float:
        return self.lattice[3]

    @property
    def beta(self) -> float:
        return self.lattice[4]

    @property
    def gamma(self) -> float:
        return self.lattice[5]

    @property
    def num_atoms(self) -> int:
        """Atoms in the conventional cell."""
        g = space_group(self.space_group)
        return sum(g.wyckoff(s.wyckoff).multiplicity for s in self.sites)

    def to_structure(self) -> Any:
        """The conventional-cell pymatgen ``Structure`` (each orbit expanded once, no duplicate sites)."""
        from pymatgen.core import Lattice, Structure

        g = space_group(self.space_group)
        species, coords = [], []
        for s in self.sites:
            orbit = expand_orbit(self.space_group, np.asarray(s.frac_coords))
            mult = g.wyckoff(s.wyckoff).multiplicity
            if len(orbit) != mult:
                raise CanonicalizationError(
                    f"site {s.element} {mult}{s.wyckoff} at {s.frac_coords} expands to {len(orbit)} positions")
            species += [s.element] * len(orbit)
            coords.append(orbit)
        lat = Lattice.from_parameters(*self.lattice)
        xyz = np.concatenate(coords) if coords else np.zeros((0, 3))
        return Structure(lat, species, xyz)

    def to_dict(self) -> dict[str, Any]:
        return {"@format": DICT_FORMAT, "space_group": self.space_group, "lattice": list(self.lattice),
                "sites": [s.to_dict() for s in self.sites]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AsuCrystal:
        if d.get("@format", DICT_FORMAT) != DICT_FORMAT:
            raise ValueError(f"unsupported AsuCrystal format {d.get('@format')!r}")
        sites = tuple(AsuSite(s["element"], s["wyckoff"], int(s["shape_index"]),
                              tuple(float(v) for v in s["frac_coords"]))  # type: ignore[arg-type]
                      for s in d["sites"])
        return cls(int(d["space_group"]), tuple(float(v) for v in d["lattice"]), sites)  # type: ignore[arg-type]

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)


def expand_orbit(sg: int, frac: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Distinct images of a point in the unit cell [0, 1)^3 (duplicates merged within ``tol``)."""
    g = space_group(sg)
    imgs = g.apply(frac)
    imgs = imgs - np.floor(imgs)
    imgs[imgs >= 1.0 - 1e-12] = 0.0  # float noise only: 1 - 1e-16 is the lattice point 0
    out: list[np.ndarray] = []
    for p in imgs:
        if not any(np.all(np.abs((p - q) - np.round(p - q)) < tol) for q in out):
            out.append(p)
    return np.array(out)


def symmetrize_lattice(crystal_system: str, params: Any) -> tuple[float, ...]:
    """Impose the crystal family's equalities exactly on (a, b, c, alpha, beta, gamma)."""
    a, b, c, al, be, ga = (float(v) for v in params)
    if crystal_system == "cubic":
        m = (a + b + c) / 3
        return (m, m, m, 90.0, 90.0, 90.0)
    if crystal_system in ("hexagonal", "trigonal"):
        m = (a + b) / 2
        return (m, m, c, 90.0, 90.0, 120.0)
    if crystal_system == "tetragonal":
        m = (a + b) / 2
        return (m, m, c, 90.0, 90.0, 90.0)
    if crystal_system == "orthorhombic":
        return (a, b, c, 90.0, 90.0, 90.0)
    if crystal_system == "monoclinic":
        return (a, b, c, 90.0, be, 90.0)
    return (a, b, c, al, be, ga)


def _dataset(cell: tuple, symprec: float, angle_tolerance: float, hall_number: int = 0) -> Any:
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spglib.get_symmetry_dataset(cell, symprec=symprec, angle_tolerance=angle_tolerance,
                                           hall_number=hall_number)


@cache
def _element_symbols() -> frozenset[str]:
    from pymatgen.core import Element

    return frozenset(e.symbol for e in Element)


@cache
def _symbol(z: int) -> str:
    from pymatgen.core import Element

    return Element.from_Z(z).symbol


def lattice_parameters(matrix: Any) -> tuple[float, float, float, float, float, float]:
    """(a, b, c, alpha, beta, gamma) of a lattice whose rows are the basis vectors (Angstrom, degrees)."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = np.asarray(matrix, dtype=float).reshape(3, 3).tolist()
    a, b, c = math.sqrt(ax * ax + ay * ay + az * az), math.sqrt(bx * bx + by * by + bz * bz), \
        math.sqrt(cx * cx + cy * cy + cz * cz)

    def angle(dot: float, nu: float, nv: float) -> float:
        return math.degrees(math.acos(min(1.0, max(-1.0, dot / (nu * nv)))))

    return (a, b, c, angle(bx * cx + by * cy + bz * cz, b, c), angle(ax * cx + ay * cy + az * cz, a, c),
            angle(ax * bx + ay * by + az * bz, a, b))


@cache
def _origin_shift(default_hall: int, hall: int) -> np.ndarray | None:
    """Origin ``o`` of Hall setting ``hall`` in the coordinates of ``default_hall`` (same group, same
    basis, e.g. origin choices 1 and 2), so that ``x_hall = x_default - o``; None if there is none.

    Found exactly on the 1/8 grid: the operations ``(R, t)`` of ``default_hall`` become
    ``(R, t + (R - I) o)`` in the shifted origin, and must equal those of ``hall`` modulo 1.
    """
    import spglib

    a = spglib.get_symmetry_from_database(default_hall)
    b = spglib.get_symmetry_from_database(hall)
    if a is None or b is None or len(a["rotations"]) != len(b["rotations"]):
        return None
    rotation_id = {r.tobytes(): i for i, r in enumerate(np.unique(b["rotations"], axis=0))}
    if any(r.tobytes() not in rotation_id for r in a["rotations"]):
        return None

    def keys(rotations: np.ndarray, t24: np.ndarray) -> np.ndarray:
        """One integer per operation: rotation id and translation in 24ths (modulo 1)."""
        ids = np.array([rotation_id[r.tobytes()] for r in rotations])
        t = np.mod(t24, 24)
        return ids * 24**3 + t[..., 0] * 24**2 + t[..., 1] * 24 + t[..., 2]

    target = np.sort(keys(b["rotations"], np.round(np.asarray(b["translations"]) * 24).astype(int)))
    origins = np.array(list(product(range(8), repeat=3)))  # candidate origins o = k / 8, i.e. 3k in 24ths
    eye = np.eye(3, dtype=int)
    t24 = np.round(np.asarray(a["translations"]) * 24).astype(int)  # (N, 3)
    moved = t24[None] + np.einsum("nij,kj->kni", a["rotations"] - eye, 3 * origins)  # (512, N, 3)
    match = np.all(np.sort(keys(a["rotations"], moved), axis=1) == target, axis=1)
    return origins[np.argmax(match)] / 8.0 if match.any() else None


def to_asu(structure: Any, symprec: float = 0.1, angle_tolerance: float = 5.0) -> AsuCrystal:
    """Canonical ASU representation of an ordered crystal structure.

    spglib determines the space group and the standardised conventional cell at ``symprec`` (Angstrom)
    and ``angle_tolerance`` (degrees); atoms whose symmetry images lie within ``symprec`` of themselves
    are snapped onto their special position, as spglib itself decides site symmetry. The orbits are
    spglib's (``crystallographic_orbits``); the first atom of each orbit in the conventional cell is mapped
    to its representative, and the orbit's atom count must equal the multiplicity of the Wyckoff position
    found for it.

    Raises :class:`DisorderedStructureError` for partial occupancies, :class:`SymmetryNotFoundError`
    when spglib finds no space group, :class:`CanonicalizationError` if an orbit cannot be mapped.
    """
    numbers = []
    for site in structure:  # one pass: ordered sites carry exactly one species at occupancy 1
        comp = site.species
        if len(comp) != 1 or comp.num_atoms != 1:
            raise DisorderedStructureError(f"disordered site {comp} at {site.frac_coords.tolist()}: "
                                           "an ASU crystal needs fully occupied single-species sites")
        numbers.append(next(iter(comp)).Z)
    if not numbers:
        raise ValueError("empty structure")
    cell = (structure.lattice.matrix, structure.frac_coords, numbers)
    ds = _dataset(cell, symprec, angle_tolerance)
    if ds is None:
        raise SymmetryNotFoundError(f"spglib found no symmetry (symprec={symprec}, angle_tolerance={angle_tolerance})")
    g = space_group(int(ds.number))
    std_positions = ds.std_positions
    if ds.hall_number != g.hall_number:
        shift = _origin_shift(int(ds.hall_number), g.hall_number)
        if shift is not None:  # same conventional cell, other origin choice: move the origin
            std_positions = std_positions - shift
        else:
            ds = _dataset(cell, symprec, angle_tolerance, g.hall_number)
            if ds is None or int(ds.number) != g.number:
                raise SymmetryNotFoundError(
                    f"spglib could not standardise to Hall setting {g.hall_number} of group {g.number}")
            std_positions = ds.std_positions
    lattice = symmetrize_lattice(g.crystal_system, lattice_parameters(ds.std_lattice))
    # one representative per orbit: spglib's orbits of the input atoms, carried to the conventional cell
    # through the shared primitive cell (the first conventional atom of each orbit represents it)
    prim_orbit = np.empty(len(ds.mapping_to_primitive), dtype=int)  # primitive atoms <= input atoms
    prim_orbit[ds.mapping_to_primitive] = ds.crystallographic_orbits
    first_of: dict[int, int] = {}
    count_of: dict[int, int] = {}
    for j, o in enumerate(prim_orbit[ds.std_mapping_to_primitive].tolist()):
        first_of.setdefault(o, j)
        count_of[o] = count_of.get(o, 0) + 1
    first = list(first_of.values())
    counts = [count_of[o] for o in first_of]
    pts = to_asu_points(g.number, std_positions[first], tol=symprec, lattice=ds.std_lattice)
    types = np.asarray(ds.std_types)[first].tolist()
    reps = pts.frac
    if len(reps) > 1:
        close = np.max(np.abs(reps[:, None, :] - reps[None, :, :]), axis=-1) < 1e-4
        np.fill_diagonal(close, False)
        if close.any():
            i, j = np.argwhere(close)[0]
            raise CanonicalizationError(
                f"atoms of {_symbol(types[j])} and {_symbol(types[i])} occupy the same "
                f"position {np.round(reps[i], 4).tolist()} after symmetrisation (overlapping sites)")
    reps = np.where(np.abs(reps) < 1e-12, 0.0, reps)
    sites = []
    for z, wi, si, count, frac in zip(types, pts.wyckoff_index.tolist(), pts.shape_index.tolist(),
                                      counts, reps.tolist(), strict=True):
        wp = g.wyckoff_positions[wi]
        if count != wp.multiplicity:
            raise CanonicalizationError(
                f"orbit of {_symbol(z)} at {wp.label} has {count} atoms in the "
                f"conventional cell, expected {wp.multiplicity}")
        sites.append((wi, z, tuple(round(v, 12) for v in frac), AsuSite(_symbol(z), wp.letter, si, tuple(frac))))
    sites.sort(key=lambda t: t[:3])
    return AsuCrystal(g.number, lattice, tuple(s[3] for s in sites))  # type: ignore[arg-type]


def read_structure(path: str | Path) -> Any:
    """Read a structure file (CIF or anything pymatgen reads); :class:`CifReadError` when that fails."""
    from pymatgen.core import Structure

    path = Path(path)
    if not path.is_file():
        raise CifReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_file(str(path))
    except Exception as exc:  # pymatgen raises many types for malformed input
        raise CifReadError(f"{path}: cannot read a structure ({type(exc).__name__}: {exc})") from exc
    if len(s) == 0:
        raise CifReadError(f"{path}: the file contains no atoms")
    return s


def structure_from_cif_string(text: str) -> Any:
    """Parse a CIF given as a string; :class:`CifReadError` when that fails."""
    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_str(text, fmt="cif")
    except Exception as exc:
        raise CifReadError(f"cannot parse CIF ({type(exc).__name__}: {exc})") from exc
