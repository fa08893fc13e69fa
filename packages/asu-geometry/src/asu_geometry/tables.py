"""The shipped tables: space groups, their exact ASUs and Wyckoff positions with their shapes.

Everything is read once from ``data/space_groups.json.gz`` (written by
:mod:`asu_geometry.build.generate`) and cached. Coordinates are fractional coordinates of the
conventional cell in the ITA standard setting used by pyxtal ``Group(n)`` (origin choice 2,
hexagonal axes for R groups). Exact values are :class:`fractions.Fraction`; float views are numpy.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, cached_property
from importlib.resources import files
from typing import Any

import numpy as np

from ._rational import Vec3, vec
from .cuts import CompiledCuts, Cut, node_from_dict
from .errors import InvalidSpaceGroupError, UnknownWyckoffPositionError
from .geometry import polytope_faces, polytope_volume

FORMAT_VERSION = 2
SHAPE_KINDS = {0: "point", 1: "segment", 2: "polygon", 3: "interior"}


def _as_float(v: Sequence[Fraction]) -> np.ndarray:
    return np.array([float(x) for x in v], dtype=float)


@dataclass(frozen=True, eq=False)
class AsymmetricUnit:
    """The exact asymmetric unit of a space group: a convex polytope with exact boundary rules.

    ``contains`` is exact (rational arithmetic) when ``tol == 0``; with ``tol > 0`` it is vectorised in
    floats and points within ``tol`` of a cut plane are treated as lying on it (so the plane's
    inclusion rule decides), which keeps symmetry-related boundary points consistent.
    """

    space_group: int
    cuts: tuple[Cut, ...]
    vertices: tuple[Vec3, ...]

    @cached_property
    def vertices_array(self) -> np.ndarray:
        """Float vertices, shape (V, 3)."""
        return np.array([_as_float(v) for v in self.vertices])

    @cached_property
    def box_min(self) -> Vec3:
        """Exact lower corner of the ASU's bounding box (the smallest vertex coordinate per axis)."""
        return tuple(min(v[i] for v in self.vertices) for i in range(3))  # type: ignore[return-value]

    @cached_property
    def box_max(self) -> Vec3:
        """Exact upper corner of the ASU's bounding box (the largest vertex coordinate per axis)."""
        return tuple(max(v[i] for v in self.vertices) for i in range(3))  # type: ignore[return-value]

    @cached_property
    def box_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Float (box_min, box_max) of the closure, for vectorised pre-filters."""
        lo, hi = _as_float(self.box_min), _as_float(self.box_max)
        lo.setflags(write=False)
        hi.setflags(write=False)
        return lo, hi

    @cached_property
    def planes(self) -> tuple[tuple[tuple[int, int, int], Fraction], ...]:
        """Every distinct plane ``(n, c)`` of the cuts, top-level and nested."""
        seen: dict[tuple, None] = {}
        for top in self.cuts:
            for c in top.iter_cuts():
                seen.setdefault((c.normal, c.offset), None)
        return tuple(seen)

    @cached_property
    def faces(self) -> list[list[Vec3]]:
        """Facets of the closed polytope, each an ordered list of vertices."""
        return polytope_faces(self.vertices, [(c.normal, c.offset) for c in self.cuts])

    @cached_property
    def volume(self) -> Fraction:
        """Exact volume in fractional units (equals 1 / general multiplicity)."""
        return polytope_volume(self.vertices, [(c.normal, c.offset) for c in self.cuts])

    def contains_exact(self, frac: Sequence[Any]) -> bool:
        """Exact membership of one point given as rationals (str/int/Fraction, or floats taken exactly)."""
        x = tuple(Fraction(v) for v in frac)
        return all(c.contains(x) for c in self.cuts)

    def contains(self, frac: Any, tol: float = 0.0) -> bool | np.ndarray:
        """Membership of one point (shape (3,)) or many (shape (n, 3)) in the exact ASU."""
        if tol < 0:
            raise ValueError("tol must be >= 0")
        if tol == 0:
            arr = np.asarray(frac, dtype=object)
            if arr.ndim == 1:
                return self.contains_exact(arr)
            return np.array([self.contains_exact(row) for row in arr], dtype=bool)
        out = self._compiled.contains(frac, tol)
        return bool(out) if out.ndim == 0 else out

    @cached_property
    def _compiled(self) -> CompiledCuts:
        return CompiledCuts(self.cuts)

    @cached_property
    def _compiled_in_box(self) -> CompiledCuts:
        """The cuts plus the six inclusive faces of the bounding box ``[box_min, box_max]``."""
        box = [Cut(tuple(int(i == k) for i in range(3)), -self.box_min[k]) for k in range(3)]  # type: ignore[misc]
        box += [Cut(tuple(-int(i == k) for i in range(3)), self.box_max[k]) for k in range(3)]  # type: ignore[misc]
        return CompiledCuts(self.cuts + tuple(box))

    def contains_in_box(self, frac: np.ndarray, tol: float) -> np.ndarray:
        """``contains(frac, tol)`` and, within ``tol``, inside the bounding box (one vectorised pass)."""
        return self._compiled_in_box.contains(frac, tol)

    def margin(self, frac: np.ndarray) -> np.ndarray:
        """min over top-level cuts of ``n.x + c`` (positive inside the closed polytope)."""
        x = np.asarray(frac, dtype=float)
        vals = [x @ np.asarray(c.normal, float) + float(c.offset) for c in self.cuts]
        return np.min(np.stack(vals, axis=-1), axis=-1)

    def describe(self) -> list[str]:
        """The ASU's top-level cuts as text, one inequality (or nested expression) per entry."""
        return [str(c) for c in self.cuts]


@dataclass(frozen=True, eq=False)
class WyckoffShape:
    """One piece of the intersection of a Wyckoff position with the exact ASU.

    The piece is parametrised affinely by ``x = origin + sum_i params[i] * basis[i]`` (fractional
    coordinates): dim 0 a point (no parameters), dim 1 a segment (``s`` in [0, 1] from ``vertices[0]`` to
    ``vertices[1]``), dim 2 a convex polygon (``chart_vertices`` counterclockwise in (u, v), the first at
    the origin), dim 3 the ASU interior (identity chart).
    """

    dim: int
    origin: Vec3
    basis: tuple[Vec3, ...]
    vertices: tuple[Vec3, ...]
    chart_vertices: tuple[tuple[Fraction, ...], ...]
    include_start: bool = True
    include_end: bool = True
    isolated: bool = False

    @property
    def kind(self) -> str:
        """``"point"``, ``"segment"``, ``"polygon"`` or ``"interior"`` (by ``dim``)."""
        return SHAPE_KINDS[self.dim]

    @cached_property
    def origin_array(self) -> np.ndarray:
        """``origin`` as floats, shape (3,)."""
        return _as_float(self.origin)

    @cached_property
    def basis_array(self) -> np.ndarray:
        """Shape (dim, 3)."""
        return np.array([_as_float(b) for b in self.basis]).reshape(self.dim, 3)

    @cached_property
    def vertices_array(self) -> np.ndarray:
        """``vertices`` as floats, shape (V, 3) (fractional coordinates)."""
        return np.array([_as_float(v) for v in self.vertices])

    @cached_property
    def chart_vertices_array(self) -> np.ndarray:
        """``chart_vertices`` as floats, shape (V, dim): the vertices in the piece's own parameters."""
        rows = [[float(x) for x in v] for v in self.chart_vertices]
        return np.array(rows).reshape(len(rows), self.dim)

    def to_frac(self, params: Any) -> np.ndarray:
        """Chart parameters (..., dim) -> fractional coordinates (..., 3)."""
        p = np.asarray(params, dtype=float)
        if self.dim == 0:
            if p.ndim > 1:
                return np.broadcast_to(self.origin_array, p.shape[:-1] + (3,)).copy()
            return self.origin_array.copy()
        return self.origin_array + p @ self.basis_array

    def to_params(self, frac: Any) -> np.ndarray:
        """Fractional coordinates (..., 3) -> chart parameters (..., dim), by least squares on the chart."""
        x = np.asarray(frac, dtype=float) - self.origin_array
        if self.dim == 0:
            return np.zeros(x.shape[:-1] + (0,))
        return x @ self._pseudo_inverse

    @cached_property
    def _pseudo_inverse(self) -> np.ndarray:
        """(3, dim): least-squares chart parameters are ``(x - origin) @ pinv``."""
        return np.linalg.pinv(self.basis_array)

    def __str__(self) -> str:
        fmt = lambda v: "(" + ", ".join(str(c) for c in v) + ")"  # noqa: E731
        if self.dim == 0:
            return f"point {fmt(self.origin)}" + (" [isolated contact point]" if self.isolated else "")
        if self.dim == 1:
            lb = "[" if self.include_start else "("
            rb = "]" if self.include_end else ")"
            return f"segment {lb}{fmt(self.vertices[0])} -- {fmt(self.vertices[1])}{rb}"
        if self.dim == 2:
            return f"polygon ({len(self.vertices)} vertices) " + " -> ".join(fmt(v) for v in self.vertices)
        return "ASU interior"


_XYZ_TERM = re.compile(r"([+-]?)(\d+(?:/\d+)?)?\*?([xyz])?")


def parse_xyz(expr: str) -> tuple[np.ndarray, tuple[Fraction, Fraction, Fraction]]:
    """Parse an ITA coordinate triplet such as ``'-x+y, 2x, z+1/2'`` into (M, t) with ``x' = M x + t``."""
    parts = [p.strip().replace(" ", "") for p in expr.split(",")]
    if len(parts) != 3:
        raise ValueError(f"not a coordinate triplet: {expr!r}")
    m = np.zeros((3, 3), dtype=np.int64)
    t = [Fraction(0)] * 3
    for i, part in enumerate(parts):
        pos = 0
        while pos < len(part):
            mt = _XYZ_TERM.match(part, pos)
            if mt is None or mt.end() == pos:
                raise ValueError(f"cannot parse {part!r} in {expr!r}")
            sign = -1 if mt.group(1) == "-" else 1
            num = Fraction(mt.group(2)) if mt.group(2) else None
            var = mt.group(3)
            if var:
                m[i, "xyz".index(var)] += sign * int(num if num is not None else 1)
            elif num is not None:
                t[i] += sign * num
            pos = mt.end()
    return m, (t[0], t[1], t[2])


@dataclass(frozen=True, eq=False)
class WyckoffPosition:
    """A Wyckoff position of a space group and its shapes inside the exact ASU.

    ``shapes``: the pieces of the position's point set inside the exact ASU. ``anchored_shapes`` (polar
    groups only, ``()`` otherwise): the pieces of that set inside the exact ASU *and* on the anchor
    (:attr:`SpaceGroup.anchor`), i.e. where the anchored first site of a normal form can lie; same
    representation, one dimension per free direction fewer than ``dim``.
    """

    space_group: int
    letter: str
    multiplicity: int
    dim: int
    site_symmetry: str
    stabilizer_order: int
    index: int
    ops: tuple[str, ...]
    shapes: tuple[WyckoffShape, ...]
    anchored_shapes: tuple[WyckoffShape, ...] = ()

    @property
    def label(self) -> str:
        """Multiplicity and letter, e.g. ``"4a"``."""
        return f"{self.multiplicity}{self.letter}"

    @cached_property
    def orbit_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The coordinate triplets as arrays: ``M`` (m, 3, 3) ints and ``t`` (m, 3) floats."""
        ms, ts = zip(*(parse_xyz(o) for o in self.ops), strict=True)
        return np.stack(ms), np.array([[float(x) for x in t] for t in ts])

    def __repr__(self) -> str:
        return (f"WyckoffPosition({self.space_group}, {self.label}, dim={self.dim}, "
                f"site_symmetry={self.site_symmetry!r})")


@dataclass(frozen=True, eq=False)
class SpaceGroup:
    """A space group in the standard setting, with its operations, exact ASU and Wyckoff positions."""

    number: int
    symbol: str
    hall_number: int
    hall_symbol: str
    crystal_system: str
    point_group: str
    rotations: np.ndarray = field(repr=False)
    translations24: np.ndarray = field(repr=False)
    asu: AsymmetricUnit = field(repr=False)
    wyckoff_positions: tuple[WyckoffPosition, ...] = field(repr=False)
    anchor: tuple[Fraction, ...] = ()

    @cached_property
    def free_directions(self) -> tuple[Vec3, ...]:
        """Exact basis of the subspace fixed by every rotation of the point group: the directions of the
        continuous origin freedom of a polar group (0 vectors for non-polar groups; P1: 3; Pm, Pc, Cm, Cc: 2;
        the other 63 polar groups: 1). In the standard settings these are coordinate axes, and every
        rotation leaves those coordinates unchanged (``(R x)_k = x_k``), which is checked here.
        """
        eye = np.eye(3, dtype=np.int64)
        axes = [k for k in range(3)
                if np.all(self.rotations[:, :, k] == eye[k]) and np.all(self.rotations[:, k, :] == eye[k])]
        stacked = np.concatenate([r - eye for r in self.rotations]).astype(float)
        if len(axes) != 3 - np.linalg.matrix_rank(stacked):
            raise RuntimeError(f"space group {self.number}: free directions are not coordinate axes")
        one, zero = Fraction(1), Fraction(0)
        return tuple(tuple(one if i == k else zero for i in range(3)) for k in axes)  # type: ignore[misc]

    @cached_property
    def free_directions_array(self) -> np.ndarray:
        """Float view of :attr:`free_directions`, shape (k, 3)."""
        out = np.array([_as_float(d) for d in self.free_directions]).reshape(-1, 3)
        out.setflags(write=False)
        return out

    @property
    def is_polar(self) -> bool:
        """True for the 68 groups with a continuous origin freedom (point groups 1, 2, m, mm2, 4, 4mm, 3,
        3m, 6, 6mm)."""
        return len(self.free_directions) > 0

    @cached_property
    def free_axes(self) -> tuple[int, ...]:
        """Coordinate index of each free direction."""
        return tuple(next(i for i in range(3) if d[i]) for d in self.free_directions)

    @property
    def order(self) -> int:
        """|G/T| in the conventional cell: the general multiplicity (centring translations included)."""
        return int(self.rotations.shape[0])

    @cached_property
    def translations(self) -> np.ndarray:
        """Translation part of every operation (float, fractional), shape (|G/T|, 3); the exact values are
        ``translations24 / 24``."""
        return self.translations24 / 24.0

    @cached_property
    def point_group_rotations(self) -> np.ndarray:
        """The distinct rotations (the point group in the conventional basis), float, shape (|PG|, 3, 3)."""
        rots = np.unique(self.rotations, axis=0).astype(float)
        rots.setflags(write=False)
        return rots

    @cached_property
    def inverse_rotations(self) -> np.ndarray:
        """``R^-1`` of every operation (float, exact integers), shape (|G/T|, 3, 3)."""
        inv = np.rint(np.linalg.inv(self.rotations.astype(float)))
        inv.setflags(write=False)
        return inv

    @property
    def centering(self) -> str:
        """The lattice centring letter of the Hermann-Mauguin symbol (P, A, B, C, I, F or R)."""
        return self.symbol[0]

    @cached_property
    def crystal_family(self) -> str:
        """ITA crystal family (trigonal and hexagonal systems form the hexagonal family)."""
        return "hexagonal" if self.crystal_system in ("trigonal", "hexagonal") else self.crystal_system

    def exact_ops(self) -> list[tuple[np.ndarray, Vec3]]:
        """Operations as (integer rotation, exact translation)."""
        pairs = zip(self.rotations, self.translations24, strict=True)
        return [(r, tuple(Fraction(int(v), 24) for v in t)) for r, t in pairs]  # type: ignore[misc]

    def wyckoff(self, letter: str) -> WyckoffPosition:
        """The Wyckoff position with this letter; :class:`UnknownWyckoffPositionError` if the group has none."""
        for wp in self.wyckoff_positions:
            if wp.letter == letter:
                return wp
        raise UnknownWyckoffPositionError(
            f"space group {self.number} ({self.symbol}) has no Wyckoff position {letter!r}; "
            f"it has {''.join(w.letter for w in self.wyckoff_positions)}")

    def apply(self, frac: np.ndarray) -> np.ndarray:
        """All images g(x) of points (..., 3) -> (..., |G/T|, 3), not reduced modulo 1."""
        x = np.asarray(frac, dtype=float)
        y = x @ self._stacked_rotations  # one matmul for all operations: (..., 3) @ (3, 3N)
        return y.reshape(x.shape[:-1] + (self.order, 3)) + self.translations

    @cached_property
    def _stacked_rotations(self) -> np.ndarray:
        """``M[j, 3g + i] = R_g[i, j]``, so that ``(x @ M)[3g + i] = (R_g x)_i``."""
        return np.ascontiguousarray(self.rotations.transpose(2, 0, 1).reshape(3, -1).astype(float))

    def __repr__(self) -> str:
        return f"SpaceGroup({self.number}, {self.symbol!r})"

    @property
    def anchor_description(self) -> str:
        """The anchor as text, e.g. ``'z = 0'`` (empty for non-polar groups)."""
        return ", ".join(f"{'xyz'[k]} = {v}" for k, v in zip(self.free_axes, self.anchor, strict=True))


def _check_number(sg: int) -> int:
    if isinstance(sg, bool) or not isinstance(sg, (int, np.integer)):
        raise InvalidSpaceGroupError(f"space group must be an integer 1..230, got {sg!r}")
    if not 1 <= int(sg) <= 230:
        raise InvalidSpaceGroupError(f"space group number {sg} is outside 1..230")
    return int(sg)


@cache
def _raw_table() -> dict[str, Any]:
    path = files("asu_geometry").joinpath("data/space_groups.json.gz")
    with path.open("rb") as fh:
        data = json.loads(gzip.decompress(fh.read()))
    if data.get("format_version") != FORMAT_VERSION:
        raise RuntimeError(f"shipped table has format {data.get('format_version')}, expected {FORMAT_VERSION}")
    return data


@cache
def _index_offsets() -> tuple[int, ...]:
    offsets, total = [], 0
    for g in _raw_table()["groups"]:
        offsets.append(total)
        total += len(g["wyckoff"])
    return tuple(offsets)


def _shape(d: dict[str, Any], asu: AsymmetricUnit) -> WyckoffShape:
    dim = d["dim"]
    if dim == 0:
        p = vec(d["point"])
        return WyckoffShape(0, p, (), (p,), ((),), isolated=bool(d.get("isolated", False)))
    if dim == 1:
        a, b = vec(d["start"]), vec(d["end"])
        direction = tuple(bi - ai for ai, bi in zip(a, b, strict=True))
        return WyckoffShape(1, a, (direction,), (a, b), ((Fraction(0),), (Fraction(1),)),  # type: ignore[arg-type]
                            include_start=d["include_start"], include_end=d["include_end"])
    if dim == 2:
        o = vec(d["origin"])
        b1, b2 = vec(d["basis"][0]), vec(d["basis"][1])
        chart = tuple((Fraction(u), Fraction(v)) for u, v in d["chart"])
        verts = tuple(tuple(o[i] + u * b1[i] + v * b2[i] for i in range(3)) for u, v in chart)
        return WyckoffShape(2, o, (b1, b2), verts, chart)  # type: ignore[arg-type]
    zero = Fraction(0)
    eye = ((Fraction(1), zero, zero), (zero, Fraction(1), zero), (zero, zero, Fraction(1)))
    return WyckoffShape(3, (zero, zero, zero), eye, asu.vertices, tuple(asu.vertices))


def space_group(sg: int) -> SpaceGroup:
    """The :class:`SpaceGroup` with number ``sg`` (1..230), loaded from the shipped table (cached);
    :class:`InvalidSpaceGroupError` for anything else (checked before the cache, so a list or a string is
    named as such rather than failing as an unhashable cache key)."""
    return _space_group(_check_number(sg))


@cache
def _space_group(n: int) -> SpaceGroup:
    g = _raw_table()["groups"][n - 1]
    assert g["number"] == n
    ops = np.array(g["ops"], dtype=np.int64)
    asu = AsymmetricUnit(n, tuple(node_from_dict(c) for c in g["asu"]["cuts"]),  # type: ignore[misc]
                         tuple(vec(v) for v in g["asu"]["vertices"]))
    order = len(ops)
    offset = _index_offsets()[n - 1]
    wps = tuple(
        WyckoffPosition(n, w["letter"], w["multiplicity"], w["dim"], w["site_symmetry"], order // w["multiplicity"],
                        offset + i, tuple(w["ops"]), tuple(_shape(s, asu) for s in w["shapes"]),
                        tuple(_shape(s, asu) for s in w.get("anchored_shapes", ())))
        for i, w in enumerate(g["wyckoff"])
    )
    anchor = tuple(Fraction(v) for v in g.get("anchor", {}).get("values", ()))
    group = SpaceGroup(n, g["symbol"], g["hall_number"], g["hall_symbol"], g["crystal_system"], g["point_group"],
                       ops[:, :9].reshape(-1, 3, 3), ops[:, 9:], asu, wps, anchor)
    if tuple(g.get("anchor", {}).get("axes", ())) != group.free_axes:
        raise RuntimeError(f"space group {n}: the table's anchor axes differ from the free directions")
    return group


def asu(sg: int) -> AsymmetricUnit:
    """The exact asymmetric unit of space group ``sg``."""
    return space_group(sg).asu


def wyckoff_positions(sg: int) -> list[WyckoffPosition]:
    """Wyckoff positions of ``sg`` in table order (by multiplicity, then letter: 'a' first, general last)."""
    return list(space_group(sg).wyckoff_positions)


def all_wyckoff_positions() -> list[WyckoffPosition]:
    """All 1,731 Wyckoff positions of the 230 groups; ``wp.index`` is the position in this list."""
    return [wp for n in range(1, 231) for wp in space_group(n).wyckoff_positions]


def wyckoff_index(sg: int, letter: str) -> int:
    """Global index (0..1730) of Wyckoff position ``letter`` of group ``sg``."""
    return space_group(sg).wyckoff(letter).index


def load_all() -> list[SpaceGroup]:
    """Load and build all 230 groups (what the loading benchmark times)."""
    return [space_group(n) for n in range(1, 231)]
