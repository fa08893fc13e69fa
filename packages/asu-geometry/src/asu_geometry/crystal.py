"""Crystal <-> asymmetric-unit representation.

:func:`to_asu` turns a pymatgen :class:`~pymatgen.core.Structure` into an :class:`AsuCrystal`: the space
group (spglib, called with the Hall number of the table's setting so that origin choice 2 and hexagonal
axes are used), the conventional lattice parameters (with the crystal family's equalities imposed
exactly), and one site per orbit: element, Wyckoff letter, shape index and fractional coordinates of
the orbit's unique representative inside the exact ASU, in the normal form of
:mod:`asu_geometry.normalform` (one description per crystal). :meth:`AsuCrystal.to_structure` expands it
back.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
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
    InvalidAsuCrystalError,
    SymmetryNotFoundError,
    UnknownSpeciesError,
)
from .normalizer import lattice_parameters_of_metric
from .tables import WyckoffShape, space_group

DICT_FORMAT = "asu-crystal/2"  # 2: the "anchored" flag (site 0 of a polar group on the anchor)
LEGACY_DICT_FORMAT = "asu-crystal/1"  # asu-geometry 0.1: never anchored


def _finite_numbers(values: Sequence[Any], n: int) -> bool:
    """``values`` are ``n`` finite real numbers (Python or numpy ints and floats)."""
    return len(values) == n and all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)
                                    for v in values)


def check_lattice_parameters(lattice: Sequence[float]) -> None:
    """``ValueError`` unless ``lattice`` is (a, b, c, alpha, beta, gamma) of a real cell: lengths > 0 (Angstrom),
    angles in (0, 180) degrees and a positive volume, i.e. ``1 - cos²α - cos²β - cos²γ + 2 cosα cosβ cosγ > 0``
    (three angles such as 120, 120, 120 lie in one plane)."""
    if not _finite_numbers(lattice, 6):
        raise ValueError(f"lattice must be six finite numbers (a, b, c, alpha, beta, gamma), got {tuple(lattice)}")
    a, b, c, al, be, ga = (float(v) for v in lattice)
    if min(a, b, c) <= 0:
        raise ValueError(f"lattice lengths must be positive, got {a}, {b}, {c}")
    if not all(0 < t < 180 for t in (al, be, ga)):
        raise ValueError(f"lattice angles must lie strictly between 0 and 180 degrees, got {al}, {be}, {ga}")
    ca, cb, cg = (math.cos(math.radians(t)) for t in (al, be, ga))
    if not 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg > 1e-12:
        raise ValueError(f"lattice angles {al}, {be}, {ga} do not make a cell with volume")


@dataclass(frozen=True)
class AsuSite:
    """One orbit of the crystal: its element and its representative inside the exact ASU."""

    element: str
    wyckoff: str
    shape_index: int
    frac_coords: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``element``, ``wyckoff`` letter, ``shape_index`` and ``frac_coords``."""
        return {"element": self.element, "wyckoff": self.wyckoff, "shape_index": self.shape_index,
                "frac_coords": list(self.frac_coords)}


@dataclass(frozen=True)
class AsuCrystal:
    """A crystal as its space group, conventional lattice and asymmetric-unit sites.

    Lengths in Angstrom, angles in degrees. In the normal form (what :func:`to_asu` returns) sites are
    ordered by Wyckoff position (table order: 'a' first), then atomic number, then coordinates; in a polar
    group site 0 is the anchored site and comes first.

    ``anchored`` (polar groups; always True for the others): site 0 lies on the anchor
    (``SpaceGroup.anchor`` along the free directions) and its ``shape_index`` indexes
    ``wp.anchored_shapes``; every other site's indexes ``wp.shapes``. Only ``to_asu(..., canonical=False)``
    and dictionaries written by asu-geometry 0.1 give ``anchored=False``.
    """

    space_group: int
    lattice: tuple[float, float, float, float, float, float]
    sites: tuple[AsuSite, ...] = field(default_factory=tuple)
    anchored: bool = True

    def __post_init__(self) -> None:
        g = space_group(self.space_group)  # validates the number
        if not g.is_polar and not self.anchored:
            object.__setattr__(self, "anchored", True)  # nothing to anchor: one meaning only
        check_lattice_parameters(self.lattice)
        for i, s in enumerate(self.sites):
            if s.element not in _element_symbols():
                raise ValueError(f"unknown element symbol {s.element!r}")
            x = s.frac_coords
            if not _finite_numbers(x, 3):
                raise ValueError(f"site {i}: frac_coords must be three finite numbers, got {list(x)}")
            if isinstance(s.shape_index, bool) or not isinstance(s.shape_index, (int, np.integer)):
                raise ValueError(f"site {i}: shape_index must be an integer, got {s.shape_index!r}")
            wp = g.wyckoff(s.wyckoff)
            pieces = wp.anchored_shapes if self.is_anchored(i) else wp.shapes
            if not 0 <= s.shape_index < len(pieces):
                kind = "anchored shape" if self.is_anchored(i) else "shape"
                raise ValueError(f"{kind} index {s.shape_index} out of range for {g.number}{wp.label} (site {i})")
        if self.sites and self.is_anchored(0):
            x = self.sites[0].frac_coords
            off = [abs(x[k] - float(v)) for k, v in zip(g.free_axes, g.anchor, strict=True)]
            if max(off) > 1e-8:
                raise ValueError(f"site 0 of an anchored crystal in polar group {g.number} must lie on the anchor "
                                 f"{g.anchor_description}, got {list(x)}")

    def check(self, tol: float = 1e-6) -> None:
        """Raise :class:`InvalidAsuCrystalError` unless the parts of this description fit together.

        The constructor checks each part on its own (a real cell, elements, Wyckoff letters, shape indexes). This
        checks them against each other, within ``tol`` (Angstrom and degrees for the lattice, fractional units for
        coordinates), e.g. for a description written by hand or by another program:

        - the lattice has the equalities of the group's crystal family (``a = b = c`` and right angles for a cubic
          group, ``gamma = 120`` for a hexagonal one, ...);
        - every site lies on the Wyckoff position it names, and its coordinates are its orbit's representative in
          the exact ASU (within ``tol`` of :func:`to_asu_points`' one, or a point of the exact ASU itself: a site a
          hair inside an excluded face, which snapping would move onto it), on the shape piece its
          ``shape_index`` names (the anchored site of a polar group: its ``anchored_shapes`` piece);
        - no two sites are the same orbit.

        Every result of :func:`to_asu` passes. A description that passes expands (:meth:`to_structure`) to a cell
        with the symmetry of its group.
        """
        if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and 0 < tol < math.inf):
            raise ValueError(f"tol must be a positive finite number, got {tol!r}")
        g = space_group(self.space_group)
        want = symmetrize_lattice(g.crystal_system, self.lattice)
        if not np.allclose(want, self.lattice, rtol=0, atol=tol):
            raise InvalidAsuCrystalError(
                f"lattice {list(self.lattice)} does not have the {g.crystal_system} form of {g.symbol} ({g.number}) "
                f"within {tol:g}; the nearest such lattice is {[round(v, 6) for v in want]}")
        if not self.sites:
            return
        x = np.array([s.frac_coords for s in self.sites], dtype=float)
        pts = to_asu_points(g.number, x, tol=tol)
        for i, s in enumerate(self.sites):
            where = f"site {i} ({s.element} {g.wyckoff(s.wyckoff).label} at {list(s.frac_coords)})"
            if pts.letters[i] != s.wyckoff:
                raise InvalidAsuCrystalError(f"{where} is on Wyckoff position {g.wyckoff(pts.letters[i]).label} "
                                             f"of {g.symbol} ({g.number}), not on {s.wyckoff}")
            shape = self.shape(i)
            rep = pts.frac[i] - x[i]
            is_rep = float(np.abs(rep - np.round(rep)).max()) <= tol or g.asu.contains(x[i].tolist())
            if not (is_rep and _in_closure(g.asu.cuts, x[i], tol) and _on_shape(shape, x[i], tol)):
                kind = "anchored shape" if self.is_anchored(i) else "shape"
                raise InvalidAsuCrystalError(f"{where} does not lie on its {kind} {s.shape_index} ({shape}) in the "
                                             f"exact ASU of {g.symbol} ({g.number}); its orbit's representative "
                                             f"there is {[round(float(v), 9) for v in pts.frac[i]]}")
        for i, j in zip(*np.triu_indices(len(self.sites), 1), strict=True):
            if pts.letters[i] == pts.letters[j] and float(np.abs(pts.frac[i] - pts.frac[j]).max()) <= tol:
                raise InvalidAsuCrystalError(f"sites {int(i)} and {int(j)} are the same orbit "
                                             f"({g.wyckoff(pts.letters[i]).label} at "
                                             f"{[round(float(v), 9) for v in pts.frac[i]]})")

    def is_anchored(self, i: int) -> bool:
        """True when site ``i`` is the anchored site: site 0 of an anchored crystal of a polar group."""
        return i == 0 and self.anchored and space_group(self.space_group).is_polar

    def shape(self, i: int) -> WyckoffShape:
        """The shape piece site ``i`` lies on (``wp.anchored_shapes`` for the anchored site, else ``wp.shapes``)."""
        s = self.sites[i]
        wp = space_group(self.space_group).wyckoff(s.wyckoff)
        return (wp.anchored_shapes if self.is_anchored(i) else wp.shapes)[s.shape_index]

    @property
    def a(self) -> float:
        """Lattice parameter a (Angstrom) of the conventional cell."""
        return self.lattice[0]

    @property
    def b(self) -> float:
        """Lattice parameter b (Angstrom) of the conventional cell."""
        return self.lattice[1]

    @property
    def c(self) -> float:
        """Lattice parameter c (Angstrom) of the conventional cell."""
        return self.lattice[2]

    @property
    def alpha(self) -> float:
        """Lattice angle alpha (degrees), between b and c."""
        return self.lattice[3]

    @property
    def beta(self) -> float:
        """Lattice angle beta (degrees), between a and c."""
        return self.lattice[4]

    @property
    def gamma(self) -> float:
        """Lattice angle gamma (degrees), between a and b."""
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
        """JSON-ready dict (format ``@format``): space group, lattice parameters, whether the description is
        anchored, and the sites (:meth:`AsuSite.to_dict`); :meth:`from_dict` reads it back."""
        return {"@format": DICT_FORMAT, "space_group": self.space_group, "lattice": list(self.lattice),
                "anchored": self.anchored, "sites": [s.to_dict() for s in self.sites]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AsuCrystal:
        """Inverse of :meth:`to_dict`; also reads the format of asu-geometry 0.1 (``asu-crystal/1``, never
        anchored)."""
        if not isinstance(d, dict):
            raise ValueError(f"an AsuCrystal dict is a JSON object, got {type(d).__name__}")
        fmt = d.get("@format", DICT_FORMAT)
        if fmt not in (DICT_FORMAT, LEGACY_DICT_FORMAT):
            raise ValueError(f"unsupported AsuCrystal format {d.get('@format')!r}")
        anchored = d.get("anchored", True) if fmt == DICT_FORMAT else False
        if not isinstance(anchored, bool):
            raise ValueError(f"'anchored' must be true or false, got {anchored!r}")
        missing = [k for k in ("space_group", "lattice", "sites") if k not in d]
        if missing:
            raise ValueError(f"an AsuCrystal dict needs {', '.join(map(repr, missing))}")
        try:
            sites = tuple(AsuSite(str(s["element"]), str(s["wyckoff"]), _whole(s["shape_index"], "shape_index"),
                                  tuple(float(v) for v in s["frac_coords"]))  # type: ignore[arg-type]
                          for s in d["sites"])
            lattice = tuple(float(v) for v in d["lattice"])
        except KeyError as exc:
            raise ValueError(f"every site needs 'element', 'wyckoff', 'shape_index' and 'frac_coords'; missing "
                             f"{exc}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed AsuCrystal dict ({exc})") from None
        return cls(_whole(d["space_group"], "space_group"), lattice, sites, anchored=anchored)  # type: ignore[arg-type]

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as a JSON string (keyword arguments go to ``json.dumps``)."""
        return json.dumps(self.to_dict(), **kw)


def _in_closure(cuts: Sequence[Any], x: np.ndarray, tol: float) -> bool:
    """``x`` lies within ``tol`` (fractional units) of the closed ASU, the intersection of its cuts' closed
    half-spaces (which image of an orbit is its representative is checked apart)."""
    return all(float(np.dot(c.normal, x)) + float(c.offset) >= -tol * math.sqrt(float(np.dot(c.normal, c.normal)))
               for c in cuts)


def _on_shape(shape: WyckoffShape, x: np.ndarray, tol: float) -> bool:
    """``x`` lies within ``tol`` (fractional units) of the closed shape piece: its point, segment, polygon (on its
    plane and inside every edge) or, for the ASU interior, anywhere (the caller checks the ASU)."""
    if shape.dim == 3:
        return True
    params = shape.to_params(x)
    foot = shape.to_frac(params)
    if float(np.abs(foot - x).max()) > tol:  # off the point, line or plane
        return False
    if shape.dim == 1:
        s, length = float(params[0]), float(np.linalg.norm(shape.basis_array[0]))
        return -tol <= s * length and (s - 1) * length <= tol
    if shape.dim == 2:
        normal = np.cross(shape.basis_array[0], shape.basis_array[1])  # the chart is counter-clockwise about it
        v = shape.vertices_array
        for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
            inward = np.cross(normal, b - a)
            if float(np.dot(foot - a, inward)) < -tol * float(np.linalg.norm(inward)):
                return False
    return True


def _whole(v: Any, name: str) -> int:
    """``v`` as an int when it is a whole number (``225`` or ``225.0``); ``ValueError`` otherwise (no truncation)."""
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
        raise ValueError(f"{name} must be a whole number, got {v!r}")
    return int(v)


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


@cache
def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol; :class:`UnknownSpeciesError` when it is not an element."""
    from pymatgen.core import Element

    if symbol not in _element_symbols():
        raise UnknownSpeciesError(f"{symbol!r} is not a chemical element")
    return int(Element(symbol).Z)


@cache
def _pymatgen_species_types() -> tuple[type, type]:
    from pymatgen.core import DummySpecies, Element

    return DummySpecies, Element


def _species_number(species: Any, frac: Any) -> int:
    """Atomic number of a pymatgen species (Element or Species); dummy species are rejected by name."""
    dummy, element_type = _pymatgen_species_types()
    if type(species) is element_type:
        return int(species.Z)
    if isinstance(species, dummy):
        raise UnknownSpeciesError(f"site at {np.round(frac, 6).tolist()} has species {str(species)!r}, which is "
                                  "not a chemical element (a dummy species, e.g. an unknown symbol in a CIF)")
    element = species if isinstance(species, element_type) else getattr(species, "element", None)
    if not isinstance(element, element_type) or not 1 <= int(element.Z) <= 118:
        raise UnknownSpeciesError(f"site at {np.round(frac, 6).tolist()} has species {str(species)!r}, which is "
                                  "not a chemical element")
    return int(element.Z)


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


def symmetrized_metric(g: Any, lattice: np.ndarray) -> np.ndarray:
    """The metric tensor of a lattice basis (rows) averaged over the point group of ``g``:
    ``(1/|PG|) sum_R R^T M R``, the nearest metric with the group's symmetry. It depends only on the basis
    up to the group's rotations, unlike an idealisation that keeps some vectors fixed."""
    m = np.asarray(lattice, dtype=float) @ np.asarray(lattice, dtype=float).T
    rots = g.point_group_rotations
    return np.einsum("rji,jk,rkl->il", rots, m, rots) / len(rots)


def orbit_means(g: Any, frac: np.ndarray, orbit: np.ndarray, first: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Symmetrised representative of each orbit: the mean of every atom pulled back onto the first one.

    Atom ``j`` of orbit ``o`` lies near ``g(x_o) + L`` for the operation ``g = (R, t)`` that maps the orbit's
    first atom ``x_o`` closest to it; ``R^-1 (x_j - t - L)`` is then near ``x_o``, and the mean of these
    over the orbit does not depend on which atom came first nor (for non-polar groups, to first order)
    on a small error of the origin, which the pull-backs average out. (The snap onto the special position
    follows in :func:`~asu_geometry.to_asu_points`.)
    """
    x0 = frac[first][orbit]  # (n, 3): each atom's orbit representative
    images = g.apply(x0)  # (n, N, 3)
    d = frac[:, None, :] - images
    shift = np.round(d)
    dc = (d - shift) @ np.asarray(lattice, dtype=float)
    op = np.argmin(np.einsum("nki,nki->nk", dc, dc), axis=1)
    rows = np.arange(len(frac))
    pulled = np.einsum("nij,nj->ni", g.inverse_rotations[op], frac - g.translations[op] - shift[rows, op])
    sums = np.zeros((len(first), 3))
    np.add.at(sums, orbit, pulled)
    return sums / np.bincount(orbit, minlength=len(first))[:, None]


def project_to_site_symmetry(g: Any, frac: np.ndarray, orders: np.ndarray, lattice: np.ndarray,
                             rounds: int = 3) -> np.ndarray:
    """Move points onto the fixed subspace of a site-symmetry group of known order.

    For a point ``x`` whose site symmetry has ``k`` operations (spglib's orbit size in the conventional cell
    is ``|G/T| / k``), the ``k`` operations that move ``x`` least (in Angstrom, modulo lattice translations)
    are taken as that group and ``x`` is replaced by the mean of its images under them, the orthogonal
    projection onto their fixed subspace (repeated ``rounds`` times). This agrees with spglib's decision
    about the site symmetry even where the averaged point lies a little more than ``symprec`` from it.
    """
    x = np.asarray(frac, dtype=float).copy()
    lat = np.asarray(lattice, dtype=float)
    orders = np.asarray(orders, dtype=int)
    todo = np.nonzero(orders > 1)[0]
    for _ in range(rounds):
        if len(todo) == 0:
            break
        d = g.apply(x[todo]) - x[todo][:, None, :]
        d -= np.round(d)
        dc = d @ lat
        dist = np.einsum("nki,nki->nk", dc, dc)
        k = orders[todo]
        kth = np.take_along_axis(np.sort(dist, axis=1), (k - 1)[:, None], axis=1)  # the k-th smallest
        mask = dist <= kth
        step = (d * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        x[todo] += step
        todo = todo[np.max(np.abs(step), axis=1) > 1e-14]
    return x


def to_asu(structure: Any, symprec: float = 0.1, angle_tolerance: float = 5.0, canonical: bool = True) -> AsuCrystal:
    """The normal form (one description per crystal) of an ordered crystal structure.

    spglib determines the space group, the conventional basis and the orbits at ``symprec`` (Angstrom) and
    ``angle_tolerance`` (degrees). In spglib's conventional basis before its idealisation, each orbit is
    represented by the mean of all its atoms pulled back onto one (:func:`orbit_means`), moved onto the
    fixed subspace of the site symmetry that spglib's orbit size implies
    (:func:`project_to_site_symmetry`); the metric is averaged over the point group
    (:func:`symmetrized_metric`) and the family's equalities imposed. Each orbit's atom count in the
    conventional cell must equal the multiplicity of the Wyckoff position found for it.

    With ``canonical=True`` (default) the description is then made the normal form of
    :mod:`asu_geometry.normalform`: the least image under the metric-preserving, orientation-preserving
    affine normalizer of the group, anchored along the free directions in polar groups; two descriptions
    of one crystal (any cell, origin, Cartesian frame or site order) give the same result. With
    ``canonical=False`` the representatives are those of spglib's standardised basis and origin, snapped within
    ``symprec`` and sorted (debugging; marked ``anchored=False`` in a polar group, the only groups with an anchor).

    Raises :class:`DisorderedStructureError` for partial occupancies, :class:`UnknownSpeciesError` for a
    species that is not an element (e.g. a dummy ``Xx``), :class:`SymmetryNotFoundError` when spglib finds
    no space group, :class:`CanonicalizationError` if an orbit cannot be mapped.
    """
    numbers = []
    for site in structure:  # one pass: ordered sites carry exactly one species at occupancy 1
        comp = site.species
        if len(comp) != 1 or comp.num_atoms != 1:
            raise DisorderedStructureError(f"disordered site {comp} at {site.frac_coords.tolist()}: "
                                           "an ASU crystal needs fully occupied single-species sites")
        numbers.append(_species_number(next(iter(comp)), site.frac_coords))
    return to_asu_cell(structure.lattice.matrix, structure.frac_coords, numbers, symprec, angle_tolerance, canonical)


def _check_tolerances(symprec: float, angle_tolerance: float) -> None:
    if not 0 < symprec < math.inf:  # spglib crashes the process on a negative or NaN tolerance
        raise ValueError(f"symprec must be a positive distance in Angstrom, got {symprec}")
    if not math.isfinite(angle_tolerance):  # a negative one is spglib's "use its default"
        raise ValueError(f"angle_tolerance must be a finite angle in degrees, got {angle_tolerance}")


def to_asu_cell(lattice: Any, frac: Any, numbers: Sequence[int], symprec: float = 0.1, angle_tolerance: float = 5.0,
                canonical: bool = True) -> AsuCrystal:
    """:func:`to_asu` of a cell given as arrays, without a pymatgen ``Structure``: ``lattice`` (3, 3) with the
    basis vectors as rows (Angstrom), ``frac`` (n, 3) fractional coordinates and ``numbers`` (n,) atomic
    numbers. ``to_asu(structure)`` is ``to_asu_cell(structure.lattice.matrix, structure.frac_coords, Z)``: the
    same arrays give the same result, bit for bit."""
    _check_tolerances(symprec, angle_tolerance)
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac, dtype=float)
    numbers = [int(z) for z in numbers]
    if not numbers:
        raise ValueError("empty structure")
    if lattice.shape != (3, 3) or frac.shape != (len(numbers), 3):
        raise ValueError(f"a cell needs a (3, 3) lattice and (n, 3) coordinates for n numbers; got {lattice.shape}, "
                         f"{frac.shape} and {len(numbers)}")
    if not (np.isfinite(lattice).all() and np.isfinite(frac).all()):  # spglib crashes the process on NaN / inf
        raise ValueError("the lattice and the coordinates must be finite numbers (got NaN or inf)")
    if not abs(np.linalg.det(lattice)) > 1e-9:
        raise ValueError(f"the lattice has no volume (determinant {np.linalg.det(lattice):.3g})")
    for z in set(numbers):
        if not 1 <= z <= 118:
            raise UnknownSpeciesError(f"atomic number {z} is not a chemical element")
    cell = (lattice, frac, numbers)
    ds = _dataset(cell, symprec, angle_tolerance)
    if ds is None:
        raise SymmetryNotFoundError(f"spglib found no symmetry (symprec={symprec}, angle_tolerance={angle_tolerance})")
    g = space_group(int(ds.number))
    origin = np.zeros(3)
    if ds.hall_number != g.hall_number:
        shift = _origin_shift(int(ds.hall_number), g.hall_number)
        if shift is not None:  # same conventional cell, other origin choice: move the origin
            origin = shift
        else:
            ds = _dataset(cell, symprec, angle_tolerance, g.hall_number)
            if ds is None or int(ds.number) != g.number:
                raise SymmetryNotFoundError(
                    f"spglib could not standardise to Hall setting {g.hall_number} of group {g.number}")
    # the input atoms in spglib's conventional basis before its idealisation: x_s = P x + p (spglib's
    # transformation_matrix and origin_shift), with the basis (a_s b_s c_s) = (a b c) P^-1
    transform = np.asarray(ds.transformation_matrix, dtype=float)
    raw_lattice = np.linalg.inv(transform).T @ lattice
    raw_frac = frac @ transform.T + np.asarray(ds.origin_shift) - origin
    # orbit sizes in the conventional cell: spglib's orbits of the input atoms, carried to the conventional
    # cell through the shared primitive cell
    prim_orbit = np.empty(len(ds.mapping_to_primitive), dtype=int)  # primitive atoms <= input atoms
    prim_orbit[ds.mapping_to_primitive] = ds.crystallographic_orbits
    count_of: dict[int, int] = {}
    for o in prim_orbit[ds.std_mapping_to_primitive].tolist():
        count_of[o] = count_of.get(o, 0) + 1
    orbit_ids = {o: k for k, o in enumerate(count_of)}
    atom_orbit = np.array([orbit_ids[o] for o in np.asarray(ds.crystallographic_orbits).tolist()])
    return asu_from_orbits(g, raw_lattice, raw_frac, numbers, atom_orbit, list(count_of.values()), symprec,
                           canonical)


def asu_from_orbits(g: Any, lattice: np.ndarray, frac: np.ndarray, numbers: Sequence[int], atom_orbit: np.ndarray,
                    counts: Sequence[int], symprec: float = 0.1, canonical: bool = True) -> AsuCrystal:
    """The second half of :func:`to_asu_cell`, once the space group ``g`` and the orbits are known.

    ``lattice`` (3, 3, rows) and ``frac`` (n, 3) describe the atoms in the conventional basis of ``g``'s standard
    setting, up to the tolerance; ``atom_orbit`` (n,) numbers each atom's orbit 0, 1, ... in order of first
    appearance and ``counts`` gives each orbit's atom count in the conventional cell (its Wyckoff multiplicity).
    Each orbit becomes the mean of its atoms pulled back onto its first one (:func:`orbit_means`) moved onto the
    fixed subspace of the site symmetry its count implies (:func:`project_to_site_symmetry`); the metric is
    averaged over the point group (:func:`symmetrized_metric`) with the family's equalities imposed. ``to_asu_cell``
    passes spglib's findings; :func:`to_asu_crystal` passes a crystal's own group and sites when it can prove
    that spglib would find exactly those.
    """
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac, dtype=float)
    atom_orbit = np.asarray(atom_orbit, dtype=int)
    counts = list(counts)
    params = symmetrize_lattice(g.crystal_system, lattice_parameters_of_metric(symmetrized_metric(g, lattice)))
    first = np.array([int(np.argmax(atom_orbit == k)) for k in range(len(counts))])  # first atom of each orbit
    means = orbit_means(g, frac, atom_orbit, first, lattice)
    site_orders = np.array([g.order // c if c and g.order % c == 0 else 1 for c in counts])
    means = project_to_site_symmetry(g, means, site_orders, lattice)
    types = np.asarray(numbers)[first].tolist()
    if canonical:
        return _canonical_crystal(g, params, means, types, counts)
    pts = to_asu_points(g.number, means, tol=symprec, lattice=lattice)
    _check_orbits(g, pts.frac, pts.wyckoff_index, types, counts)
    reps = np.where(np.abs(pts.frac) < 1e-12, 0.0, pts.frac)
    sites = []
    for z, wi, si, frac_row in zip(types, pts.wyckoff_index.tolist(), pts.shape_index.tolist(), reps.tolist(),
                                   strict=True):
        wp = g.wyckoff_positions[wi]
        sites.append((wi, z, tuple(round(v, 12) for v in frac_row), AsuSite(_symbol(z), wp.letter, si,
                                                                            tuple(frac_row))))
    sites.sort(key=lambda t: t[:3])
    return AsuCrystal(g.number, params, tuple(s[3] for s in sites), anchored=False)  # type: ignore[arg-type]


def to_asu_crystal(crystal: AsuCrystal, symprec: float = 0.1, angle_tolerance: float = 5.0,
                   canonical: bool = True) -> AsuCrystal:
    """:func:`to_asu_cell` of ``crystal``'s conventional cell (:func:`asu_geometry.writers.to_cells`), i.e. what
    :func:`to_asu` derives from its CIF file: usually the normal form of ``crystal``, but the group or the Wyckoff
    positions of a more symmetric arrangement when its atoms lie within ``symprec`` of one.

    For a cubic crystal whose sites lie on their Wyckoff positions, spglib's symmetry search is skipped when
    :func:`asu_geometry.certificate.own_group_certified` proves that it would find exactly the crystal's group
    with its sites as orbits; the rest of :func:`to_asu_cell` then runs on the crystal's own group and sites, so
    the result agrees with :func:`to_asu_cell` to rounding (about 1e-15). Otherwise this is :func:`to_asu_cell`.
    Raises what :func:`to_asu_cell` raises.
    """
    from .writers import cells_with_sites

    _check_tolerances(symprec, angle_tolerance)
    lattice, frac, numbers, site = cells_with_sites([crystal])[0]
    if _own_group_proved(crystal, frac, numbers, symprec, angle_tolerance):
        g = space_group(crystal.space_group)
        counts = [g.wyckoff(s.wyckoff).multiplicity for s in crystal.sites]
        return asu_from_orbits(g, lattice, frac, numbers, site, counts, symprec, canonical)
    return to_asu_cell(lattice, frac, numbers, symprec, angle_tolerance, canonical)


def needs_symmetry_search(crystal: AsuCrystal, symprec: float = 0.1, angle_tolerance: float = 5.0) -> bool:
    """Whether :func:`to_asu_crystal` calls spglib for ``crystal`` (``False``: it proved the search's outcome)."""
    from .writers import to_cells

    _check_tolerances(symprec, angle_tolerance)
    _, frac, numbers = to_cells([crystal])[0]
    return not _own_group_proved(crystal, frac, numbers, symprec, angle_tolerance)


def _own_group_proved(crystal: AsuCrystal, frac: np.ndarray, numbers: np.ndarray, symprec: float,
                      angle_tolerance: float) -> bool:
    """An exactly cubic cell, every site on its Wyckoff position, and the proof of
    :func:`asu_geometry.certificate.own_group_certified` for its conventional cell ``frac``, ``numbers``."""
    from .certificate import own_group_certified

    g = space_group(crystal.space_group)
    a, b, c, al, be, ga = crystal.lattice
    return (a == b == c and al == be == ga == 90.0 and _on_their_positions(g, crystal)
            and own_group_certified(g, a, frac, numbers, symprec, angle_tolerance))


def _on_their_positions(g: Any, crystal: AsuCrystal, tol: float = 1e-9) -> bool:
    """Whether every site's orbit under ``g`` has as many distinct points (within ``tol``, fractional) as its
    Wyckoff multiplicity, i.e. the site lies on its Wyckoff position and the conventional cell is ``g``-symmetric."""
    for s in crystal.sites:
        images = g.apply(np.asarray(s.frac_coords, dtype=float))
        images -= np.floor(images)
        key = np.round(images / tol).astype(np.int64) % int(round(1 / tol))
        if len(np.unique(key, axis=0)) != g.wyckoff(s.wyckoff).multiplicity:
            return False
    return True


def _check_orbits(g: Any, reps: np.ndarray, wyckoff_index: np.ndarray, types: list[int], counts: list[int]) -> None:
    """Distinct orbits, each with as many atoms in the conventional cell as its Wyckoff multiplicity."""
    if len(reps) > 1:
        close = np.max(np.abs(reps[:, None, :] - reps[None, :, :]), axis=-1) < 1e-4
        np.fill_diagonal(close, False)
        if close.any():
            i, j = np.argwhere(close)[0]
            raise CanonicalizationError(
                f"atoms of {_symbol(types[j])} and {_symbol(types[i])} occupy the same "
                f"position {np.round(reps[i], 4).tolist()} after symmetrisation (overlapping sites)")
    for z, wi, count in zip(types, np.asarray(wyckoff_index).tolist(), counts, strict=True):
        wp = g.wyckoff_positions[wi]
        if count != wp.multiplicity:
            raise CanonicalizationError(
                f"orbit of {_symbol(z)} at {wp.label} has {count} atoms in the "
                f"conventional cell, expected {wp.multiplicity}")


def _canonical_crystal(g: Any, lattice: tuple[float, ...], means: np.ndarray, types: list[int], counts: list[int]
                       ) -> AsuCrystal:
    """The normal form of the orbits found by :func:`to_asu` (already on their special positions)."""
    from .normalform import normal_form_sites

    form, lattice, _, _ = normal_form_sites(
        g, lattice, means - np.floor(means), np.asarray(types),
        check=lambda reps, wyck: _check_orbits(g, reps, wyck, types, counts))
    wps = g.wyckoff_positions
    frac = np.where(np.abs(form.frac) < 1e-12, 0.0, form.frac)
    sites = tuple(AsuSite(_symbol(int(z)), wps[int(w)].letter, int(si), tuple(float(v) for v in row))  # type: ignore[arg-type]
                  for z, w, si, row in zip(form.z.tolist(), form.wyckoff.tolist(), form.shape.tolist(), frac,
                                           strict=True))
    return AsuCrystal(g.number, lattice, sites, anchored=True)  # type: ignore[arg-type]


def _parse_failure(exc: Exception, caught: Sequence[warnings.WarningMessage]) -> str:
    """``(<Error>: <message>)`` of a failed pymatgen parse, followed by the reasons pymatgen only gave as warnings
    (e.g. ``Occupancy 2.0 exceeded tolerance``, ``Singular matrix``): without them the error alone often says no
    more than "no structures"."""
    reasons: list[str] = []
    for w in caught:
        text = " ".join(str(w.message).split())
        if text and text not in reasons:
            reasons.append(text)
    summary = "Issues encountered while parsing CIF:"  # pymatgen's summary repeats the warnings before it
    if any(not r.startswith(summary) for r in reasons):
        reasons = [r for r in reasons if not r.startswith(summary)]
    out = f"({type(exc).__name__}: {exc})"
    if reasons:
        out += "; the parser reported: " + "; ".join(r if len(r) <= 200 else r[:197] + "..." for r in reasons[:3])
    return out


def read_structure(path: str | Path) -> Any:
    """Read a structure file (CIF or anything pymatgen reads); :class:`CifReadError` when that fails, with the
    reasons the parser gave (also those it only gave as warnings)."""
    from pymatgen.core import Structure

    path = Path(path)
    if path.is_dir():
        raise CifReadError(f"{path}: is a folder, not a structure file")
    if not path.is_file():
        raise CifReadError(f"{path}: no such file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            s = Structure.from_file(str(path))
        except Exception as exc:  # pymatgen raises many types for malformed input
            raise CifReadError(f"{path}: cannot read a structure {_parse_failure(exc, caught)}") from exc
    if len(s) == 0:
        raise CifReadError(f"{path}: the file contains no atoms")
    return s


def structure_from_cif_string(text: str) -> Any:
    """Parse a CIF given as a string; :class:`CifReadError` when that fails (with the parser's reasons)."""
    from pymatgen.core import Structure

    if not text.strip():
        raise CifReadError("cannot parse CIF: the text is empty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return Structure.from_str(text, fmt="cif")
        except Exception as exc:
            raise CifReadError(f"cannot parse CIF {_parse_failure(exc, caught)}") from exc
