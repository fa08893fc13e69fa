"""Deterministic feature vectors of space groups (62) and Wyckoff positions (231) for the model.

Everything is derived from the shipped table (operations, point group, crystal system, Wyckoff
representatives and exact shapes); nothing is random and nothing needs cctbx. Results are cached per
group (read-only arrays). What the package hands out, :func:`space_group_features`, :func:`wyckoff_features` and
:func:`wyckoff_feature_matrix`, is read from the shipped ``data/space_group_features.npy.gz`` and
``data/wyckoff_features.npy.gz`` (:mod:`asu_geometry.build.feature_tables`), which a test checks against
:func:`computed_space_group_feature_matrix` and :func:`computed_wyckoff_feature_matrix` (within 1e-12; the
files hold the computation's bits), so a new process does not spend ~1.5 s deriving them.

Space-group features, ``space_group_features(sg)`` (62 values, all in [0, 1]):

===========  =====  ==========================================================================
slice        size   block
===========  =====  ==========================================================================
``0:7``      7      centring one-hot: P, A, B, C, I, F, R (first letter of the symbol)
``7:13``     6      crystal family one-hot: triclinic, monoclinic, orthorhombic, tetragonal,
                    hexagonal (trigonal + hexagonal systems), cubic
``13:45``    32     point-group (geometric crystal class) one-hot, ITA order :data:`POINT_GROUPS`
``45``       1      chiral (Sohncke group: every operation is proper, det R = +1)
``46``       1      centrosymmetric (the inversion -1 is a linear part)
``47``       1      symmorphic (some point has the whole point group as its site symmetry;
                    73 groups)
``48:59``    11     screw axes: 2_1, 3_1, 3_2, 4_1, 4_2, 4_3, 6_1, 6_2, 6_3, 6_4, 6_5
``59:62``    3      glide planes: axial (a, b, c or e), diagonal n, diamond d
===========  =====  ==========================================================================

Screw and glide values are *fractions of symmetry directions*, not only presence bits: for a rotation
order k, the value of screw type k_p is the fraction of the group's k-fold proper linear parts R whose
operations are screws of type k_p; for glides, the fraction of the reflection linear parts whose planes
are glides of that type. A value is > 0 exactly when the group has that element, and it also tells
e.g. P222_1 (1/3 of the 2-fold directions are 2_1) from P2_12_12_1 (all three).

How an element is classified (:func:`symmetry_elements`). Let Λ be the conventional lattice with its
centring vectors, (R, t) an operation whose linear part R has order k, and P_R = (1/k) Σ_i R^i the
projector onto the fixed space of R (the axis of a rotation, the plane of a reflection). The intrinsic
(screw or glide) translation is w = P_R t. Every operation with linear part R has intrinsic translation
in the coset w + P_R(Λ) (add lattice and centring vectors to t); so the group has a *pure* rotation
or mirror of that orientation iff w ∈ P_R(Λ). Only when it has none is the orientation counted as a
screw or glide, which is the Hermann-Mauguin convention (the symbol shows the mirror or the plain
rotation when one exists, e.g. P2/m: neither; C2/m: neither, although its centring also creates 2_1
axes and a glides; P2_1/c: a 2_1 and a c glide; Fd-3m: 4_1 and 4_3 screws and d glides).

* Screws: with u the primitive lattice direction of the axis oriented so that R turns counterclockwise
  about it (right-hand rule) and T the shortest lattice (or centring) vector along u, every element
  w' of the coset is (p/k) T + (lattice) for some p; each such p ≠ 0 marks type k_p. Centring can
  give two types on one orientation (I4_1 has 4_1 and 4_3); enantiomorphic pairs (P4_1 / P4_3,
  P6_1 / P6_5, P3_121 / P3_221, ...) get different vectors.
* Glides: among the short coset vectors (all components in [-1/2, 1/2]), the plane is *axial* when one
  is ±1/2 of a single basis vector, else *diagonal n* when one has only 0, ±1/2 components, else
  *diamond d* when one has only 0, ±1/4 components (this is the HM preference m > e, a, b, c > n > d).

The 230 groups give 208 distinct vectors. The 21 sets of groups that share one
(:func:`space_group_feature_collisions`) differ only in how the same kinds of elements are oriented
relative to the lattice, e.g. P312 / P321, P3_112 / P3_121, P-42m / P-4m2, Pcc2 / Pba2,
P6_3/mcm / P6_3/mmc; the Wyckoff features (representative coordinates, shapes) separate most of
their positions. The symmorphic bit separates I222 / I2_12_12_1 and I23 / I2_13, whose screw and
glide content is equal (both contain pure 2-fold axes; the second symbol uses 2_1 by convention).

Wyckoff-position features, ``wyckoff_features(sg, letter)`` (231 values):

===========  =====  ==========================================================================
slice        size   block
===========  =====  ==========================================================================
``0:4``      4      multiplicity m: m/192, ln m / ln 192, 1/|S| = m/|G/T|, ln |S| / ln 48
                    (S: site-symmetry group, |S| = |G/T| / m)
``4:8``      4      dimensionality one-hot: 0 (point), 1 (line), 2 (plane), 3 (general)
``8:40``     32     site-symmetry point group one-hot (same class order as the group block)
``40:49``    9      site-symmetry element counts / |S| for 2, 3, 4, 6, -1, m, -3, -4, -6
``49:61``    12     the ITA representative ``ops[0]`` (x' = M x + t): M row-major (9), t (3)
``61:123``   62     the space-group features of its group
``123:135``  12     shapes: piece count one-hot (1, 2, 3, >=4), mean vertices per piece / 10,
                    has an isolated contact point, mean of the pieces' centres of mass (3),
                    mean of all their vertices (3)
``135:183``  48     Fourier features of all the pieces' vertices: mean over vertices of
                    sin(2πk x_j), cos(2πk x_j) for k = 1..8 and j = x, y, z
``183:231``  48     the same Fourier features of the pieces' centres of mass (mean over pieces)
===========  =====  ==========================================================================

Centres of mass are those of the uniform measure on each piece (segment midpoint, polygon area
centroid, polytope volume centroid for the ASU interior), in fractional coordinates. The exact site
symmetry is computed from the operations (the stabilizer of a generic point of the position) and must
have order |G/T| / m; its point group is recognised by its element counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from itertools import product

import numpy as np

from .tables import (
    SpaceGroup,
    WyckoffPosition,
    WyckoffShape,
    _check_number,
    all_wyckoff_positions,
    parse_xyz,
    space_group,
)

__all__ = [
    "CENTRINGS", "CRYSTAL_FAMILIES", "FOURIER_FREQUENCIES", "GLIDE_TYPES", "POINT_GROUPS", "SCREW_TYPES",
    "SPACE_GROUP_FEATURE_DIM", "WYCKOFF_FEATURE_DIM", "SymmetryElements", "point_group_of",
    "space_group_feature_collisions", "space_group_feature_names", "space_group_features",
    "symmetry_elements", "wyckoff_feature_matrix", "wyckoff_feature_names", "wyckoff_features",
]

SPACE_GROUP_FEATURE_DIM = 62
WYCKOFF_FEATURE_DIM = 231

CENTRINGS: tuple[str, ...] = ("P", "A", "B", "C", "I", "F", "R")
CRYSTAL_FAMILIES: tuple[str, ...] = (
    "triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
POINT_GROUPS: tuple[str, ...] = (
    "1", "-1", "2", "m", "2/m", "222", "mm2", "mmm", "4", "-4", "4/m", "422", "4mm", "-42m", "4/mmm",
    "3", "-3", "32", "3m", "-3m", "6", "-6", "6/m", "622", "6mm", "-62m", "6/mmm",
    "23", "m-3", "432", "-43m", "m-3m",
)
SCREW_TYPES: tuple[str, ...] = ("2_1", "3_1", "3_2", "4_1", "4_2", "4_3", "6_1", "6_2", "6_3", "6_4", "6_5")
GLIDE_TYPES: tuple[str, ...] = ("axial", "n", "d")
#: Rotation types counted in the site-symmetry block (the identity is left out: its count is 1).
ELEMENT_TYPES: tuple[str, ...] = ("2", "3", "4", "6", "-1", "m", "-3", "-4", "-6")
FOURIER_FREQUENCIES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

_MAX_MULTIPLICITY = 192  # Fm-3m, general position
_MAX_SITE_ORDER = 48  # m-3m

# (det, trace) -> rotation type of a 3x3 integer crystallographic matrix
_TYPE_OF = {(1, 3): "1", (1, -1): "2", (1, 0): "3", (1, 1): "4", (1, 2): "6",
            (-1, -3): "-1", (-1, 1): "m", (-1, 0): "-3", (-1, -1): "-4", (-1, -2): "-6"}
_ALL_TYPES = ("1",) + ELEMENT_TYPES
_SCALE = 288  # common denominator: translations are in 1/24, projectors divide by k | 12


def rotation_type(r: np.ndarray) -> str:
    """ITA type of a crystallographic rotation matrix: one of '1', '2', '3', '4', '6', '-1', 'm', '-3',
    '-4', '-6' (from its determinant and trace)."""
    key = (round(float(np.linalg.det(r))), int(np.trace(r)))
    try:
        return _TYPE_OF[key]
    except KeyError as exc:
        raise ValueError(f"not a crystallographic rotation matrix: {r.tolist()}") from exc


def _order(r: np.ndarray) -> int:
    m = np.eye(3, dtype=np.int64)
    for k in range(1, 7):
        m = m @ r
        if np.array_equal(m, np.eye(3, dtype=np.int64)):
            return k
    raise ValueError(f"rotation of order > 6: {r.tolist()}")


def _type_signature(rotations: Sequence[np.ndarray]) -> tuple[int, ...]:
    counts = dict.fromkeys(_ALL_TYPES, 0)
    seen: set[bytes] = set()
    for r in rotations:
        r = np.asarray(r, dtype=np.int64)
        key = r.tobytes()
        if key in seen:
            continue
        seen.add(key)
        counts[rotation_type(r)] += 1
    return tuple(counts[t] for t in _ALL_TYPES)


@cache
def _signature_to_point_group() -> dict[tuple[int, ...], str]:
    """Element-type counts -> point-group class, learnt from the 230 groups (checked to be injective)."""
    out: dict[tuple[int, ...], str] = {}
    for n in range(1, 231):
        g = space_group(n)
        sig = _type_signature(list(g.rotations))
        if out.setdefault(sig, g.point_group) != g.point_group:
            raise RuntimeError(f"point groups {out[sig]} and {g.point_group} share the element counts {sig}")
    if sorted(out.values(), key=POINT_GROUPS.index) != list(POINT_GROUPS):
        raise RuntimeError(f"expected the 32 point groups, found {sorted(out.values())}")
    return out


def point_group_of(rotations: Sequence[np.ndarray]) -> str:
    """Point-group class (one of :data:`POINT_GROUPS`) of a finite group of integer rotation matrices."""
    sig = _type_signature(rotations)
    try:
        return _signature_to_point_group()[sig]
    except KeyError as exc:
        counts = dict(zip(_ALL_TYPES, sig, strict=True))
        raise ValueError(f"element counts {counts} are no point group") from exc


class SymmetryElements:
    """Screw and glide content of a space group (see the module docstring for the definitions).

    ``screws[k_p]`` and ``glides[type]`` are the fractions of proper k-fold, respectively reflection,
    linear parts of that type; ``n_rotations[k]`` and ``n_reflections`` are their counts.
    """

    def __init__(self, screws: dict[str, float], glides: dict[str, float], n_rotations: dict[int, int],
                 n_reflections: int) -> None:
        self.screws = screws
        self.glides = glides
        self.n_rotations = n_rotations
        self.n_reflections = n_reflections

    def has_screw(self, kind: str) -> bool:
        """Whether the group has a screw axis of this kind (a key of ``screws``)."""
        return self.screws[kind] > 0

    def has_glide(self, kind: str) -> bool:
        """Whether the group has a glide plane of this kind (a key of ``glides``)."""
        return self.glides[kind] > 0

    def __repr__(self) -> str:
        s = {k: v for k, v in self.screws.items() if v}
        gl = {k: v for k, v in self.glides.items() if v}
        return f"SymmetryElements(screws={s}, glides={gl})"


def _lattice_vectors(g: SpaceGroup, reach: int = 2) -> np.ndarray:
    """Lattice plus centring vectors in a box, in units of 1/_SCALE, shape (L, 3)."""
    eye = np.eye(3, dtype=np.int64)
    cents = [t for r, t in zip(g.rotations, g.translations24, strict=True) if np.array_equal(r, eye)]
    cents24 = np.unique(np.array(cents, dtype=np.int64) % 24, axis=0)
    box = np.array(list(product(range(-reach, reach + 1), repeat=3)), dtype=np.int64) * 24
    vecs = (box[:, None, :] + cents24[None, :, :]).reshape(-1, 3)
    return vecs * (_SCALE // 24)


def _axis(r: np.ndarray) -> np.ndarray:
    """Primitive integer vector spanning the fixed line of a proper rotation of order >= 2."""
    m = r - np.eye(3, dtype=np.int64)
    # the fixed line is spanned by any nonzero cross product of two rows of (R - I)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        u = np.cross(m[i], m[j])
        if np.any(u):
            u = u // np.gcd.reduce(np.abs(u))
            return u
    raise ValueError(f"no unique axis for {r.tolist()}")


@cache
def symmetry_elements(sg: int) -> SymmetryElements:
    """Screw axes and glide planes of space group ``sg`` (cached); exact integer arithmetic."""
    g = space_group(sg)
    lat = _lattice_vectors(g)
    eye = np.eye(3, dtype=np.int64)
    screw_counts = dict.fromkeys(SCREW_TYPES, 0)
    glide_counts = dict.fromkeys(GLIDE_TYPES, 0)
    n_rot = {2: 0, 3: 0, 4: 0, 6: 0}
    n_refl = 0
    seen: set[bytes] = set()
    # translations of the centring vectors mod 1, to find the shortest lattice vector along an axis
    cent_mod = {tuple(t % 24) for r, t in zip(g.rotations, g.translations24, strict=True)
                if np.array_equal(r, eye)}
    for r, t24 in zip(g.rotations, g.translations24, strict=True):
        r = np.asarray(r, dtype=np.int64)
        key = r.tobytes()
        if key in seen:
            continue
        seen.add(key)
        kind = rotation_type(r)
        if kind not in ("2", "3", "4", "6", "m"):
            continue
        k = _order(r)
        powers = [np.linalg.matrix_power(r, i) for i in range(k)]
        proj_num = sum(powers)  # k * P_R (integer)
        w = proj_num @ (np.asarray(t24, dtype=np.int64) * (_SCALE // 24)) // k  # P_R t in 1/_SCALE
        coset = w[None, :] - (lat @ proj_num.T) // k  # w - P_R(L) for the box of lattice vectors
        if (lat @ proj_num.T % k).any() or (proj_num @ t24 * (_SCALE // 24) % k).any():
            raise AssertionError("projector arithmetic not exact; increase _SCALE")
        pure = bool(np.any(np.all(coset == 0, axis=1)))
        if kind == "m":
            n_refl += 1
            if pure:
                continue
            short = coset[np.all(np.abs(coset) * 2 <= _SCALE, axis=1)]
            glide_counts[_glide_type(short)] += 1
            continue
        n_rot[k] += 1
        if pure:
            continue
        u = _axis(r)
        v = eye[np.argmin(np.abs(u))]  # a basis vector not parallel to u
        if np.linalg.det(np.stack([u, v, r @ v])) < 0:
            u = -u
        period = next(Fraction(j, 24) for j in range(1, 25)
                      if tuple(int(x) for x in (j * u) % 24) in cent_mod)
        # coset elements are multiples of u: s = (w' . u) / (u . u) in units of the period
        s = (coset @ u) / (u @ u) / _SCALE / float(period)
        ps = sorted({int(round(p)) % k for p in np.asarray(s) * k})
        if not np.allclose(np.asarray(s) * k, np.round(np.asarray(s) * k), atol=1e-9):
            raise AssertionError(f"screw component not a multiple of 1/{k} in group {sg}")
        for p in ps:
            if p:
                screw_counts[f"{k}_{p}"] += 1
    screws = {name: (screw_counts[name] / n_rot[int(name[0])]) if n_rot[int(name[0])] else 0.0
              for name in SCREW_TYPES}
    glides = {name: glide_counts[name] / n_refl if n_refl else 0.0 for name in GLIDE_TYPES}
    return SymmetryElements(screws, glides, n_rot, n_refl)


def _glide_type(short: np.ndarray) -> str:
    """Classify a glide from its short intrinsic translations (rows, in units of 1/_SCALE)."""
    half, quarter = _SCALE // 2, _SCALE // 4
    a = np.abs(short)
    nz = (a != 0).sum(axis=1)
    if np.any((nz == 1) & np.all((a == 0) | (a == half), axis=1)):
        return "axial"
    if np.any((nz >= 2) & np.all((a == 0) | (a == half), axis=1)):
        return "n"
    if np.any((nz >= 2) & np.all((a == 0) | (a == quarter), axis=1)):
        return "d"
    raise AssertionError(f"unclassified glide with translations {(short / _SCALE).tolist()}")


def space_group_feature_names() -> list[str]:
    """Names of the 62 space-group features, in order."""
    return ([f"centring={c}" for c in CENTRINGS] + [f"family={f}" for f in CRYSTAL_FAMILIES]
            + [f"point_group={p}" for p in POINT_GROUPS] + ["chiral", "centrosymmetric", "symmorphic"]
            + [f"screw={s}" for s in SCREW_TYPES] + [f"glide={s}" for s in GLIDE_TYPES])


def _is_symmorphic(g: SpaceGroup) -> bool:
    pg_order = len({r.tobytes() for r in g.rotations})
    return max(wp.stabilizer_order for wp in g.wyckoff_positions) == pg_order


@cache
def _space_group_features(sg: int) -> np.ndarray:
    g = space_group(sg)
    out = np.zeros(SPACE_GROUP_FEATURE_DIM)
    out[CENTRINGS.index(g.centering)] = 1.0
    out[7 + CRYSTAL_FAMILIES.index(g.crystal_family)] = 1.0
    pg = point_group_of(list(g.rotations))
    if pg != g.point_group:
        raise AssertionError(f"group {sg}: operations give point group {pg}, table says {g.point_group}")
    out[13 + POINT_GROUPS.index(pg)] = 1.0
    dets = np.round(np.linalg.det(g.rotations.astype(float)))
    out[45] = float(np.all(dets > 0))
    out[46] = float(any(np.array_equal(r, -np.eye(3, dtype=np.int64)) for r in g.rotations))
    out[47] = float(_is_symmorphic(g))
    el = symmetry_elements(sg)
    out[48:59] = [el.screws[s] for s in SCREW_TYPES]
    out[59:62] = [el.glides[s] for s in GLIDE_TYPES]
    out.setflags(write=False)
    return out


SPACE_GROUP_TABLE = "space_group_features.npy.gz"
"""Shipped space-group features (in ``asu_geometry/data``; ``python -m asu_geometry.build.feature_tables``)."""
WYCKOFF_TABLE = "wyckoff_features.npy.gz"
"""The shipped :func:`wyckoff_feature_matrix` (in ``asu_geometry/data``; the same command)."""


def _load_table(name: str, shape: tuple[int, int]) -> np.ndarray:
    """A shipped float64 matrix (read-only), checked for its shape."""
    import gzip
    import io
    from importlib.resources import files

    raw = gzip.decompress(files("asu_geometry").joinpath("data", name).read_bytes())
    mat = np.load(io.BytesIO(raw), allow_pickle=False)
    if mat.shape != shape or mat.dtype != np.float64:
        raise AssertionError(f"the shipped {name} has shape {mat.shape} and dtype {mat.dtype}, expected {shape} "
                             "float64; rebuild it with python -m asu_geometry.build.feature_tables")
    mat.setflags(write=False)
    return mat


@cache
def shipped_space_group_feature_matrix() -> np.ndarray:
    """The shipped (230, 62) space-group feature matrix (read-only): the bits of
    :func:`computed_space_group_feature_matrix` (a test checks that they agree within 1e-12)."""
    return _load_table(SPACE_GROUP_TABLE, (230, SPACE_GROUP_FEATURE_DIM))


def computed_space_group_feature_matrix() -> np.ndarray:
    """The (230, 62) space-group features derived here from the space-group table (what the shipped file holds)."""
    return np.stack([_space_group_features(n) for n in range(1, 231)])


def space_group_features(sg: int | SpaceGroup) -> np.ndarray:
    """The 62 space-group features of group ``sg`` (float64, shape (62,), read-only; see module doc), read from
    the shipped table."""
    n = sg.number if isinstance(sg, SpaceGroup) else _check_number(sg)  # no need to load the group's table
    return shipped_space_group_feature_matrix()[n - 1]


def space_group_feature_matrix() -> np.ndarray:
    """All 230 space-group feature vectors, shape (230, 62); row ``n - 1`` is group ``n`` (a new, writable array)."""
    return shipped_space_group_feature_matrix().copy()


def space_group_feature_collisions() -> list[tuple[int, ...]]:
    """Groups of space-group numbers that share one feature vector (sorted)."""
    by_vec: dict[bytes, list[int]] = {}
    for n in range(1, 231):
        by_vec.setdefault(space_group_features(n).tobytes(), []).append(n)
    return sorted(tuple(v) for v in by_vec.values() if len(v) > 1)


# ---------------------------------------------------------------------------------------------- Wyckoff

def _fourier_names(what: str) -> list[str]:
    return [f"{what}_{fn}({k}*2pi*{c})" for k in FOURIER_FREQUENCIES for c in "xyz" for fn in ("sin", "cos")]


def wyckoff_feature_names() -> list[str]:
    """Names of the 231 Wyckoff features, in order."""
    names = ["mult/192", "ln(mult)/ln(192)", "1/site_order", "ln(site_order)/ln(48)"]
    names += [f"dim={d}" for d in range(4)]
    names += [f"site_point_group={p}" for p in POINT_GROUPS]
    names += [f"site_count={t}" for t in ELEMENT_TYPES]
    names += [f"rep_M[{i}{j}]" for i in range(3) for j in range(3)] + [f"rep_t[{i}]" for i in range(3)]
    names += [f"sg:{n}" for n in space_group_feature_names()]
    names += ["pieces=1", "pieces=2", "pieces=3", "pieces>=4", "mean_vertices_per_piece/10",
              "has_isolated_point", "com_mean_x", "com_mean_y", "com_mean_z",
              "vertex_mean_x", "vertex_mean_y", "vertex_mean_z"]
    names += _fourier_names("vertex") + _fourier_names("com")
    return names


def _fourier(points: np.ndarray) -> np.ndarray:
    """Mean over points (n, 3) of sin/cos(2π k x_j), ordered k, then coordinate, then (sin, cos)."""
    ks = np.asarray(FOURIER_FREQUENCIES, dtype=float)
    ang = 2 * np.pi * points[:, None, :] * ks[None, :, None]  # (n, K, 3)
    both = np.stack([np.sin(ang), np.cos(ang)], axis=-1)  # (n, K, 3, 2)
    return both.mean(axis=0).reshape(-1)


def shape_centroid(shape: WyckoffShape,
                   faces: Sequence[Sequence[Sequence[Fraction]]] | None = None) -> np.ndarray:
    """Centre of mass of the uniform measure on a piece (float, fractional coordinates).

    ``faces`` (the ASU facets) is needed for the 3-D interior only.
    """
    v = shape.vertices_array
    if shape.dim <= 1:
        return v.mean(axis=0)
    if shape.dim == 2:
        a = v[0]
        tri = [(a, v[i], v[i + 1]) for i in range(1, len(v) - 1)]
        w = np.array([np.linalg.norm(np.cross(b - a, c - a)) for a, b, c in tri])
        cs = np.array([(a + b + c) / 3 for a, b, c in tri])
        return (w[:, None] * cs).sum(0) / w.sum()
    if faces is None:
        raise ValueError("the ASU faces are needed for the centroid of the interior")
    centre = v.mean(axis=0)
    vols, cs = [], []
    for face in faces:
        f = np.array([[float(x) for x in p] for p in face])
        for i in range(1, len(f) - 1):
            a, b, c = f[0], f[i], f[i + 1]
            vols.append(abs(np.dot(a - centre, np.cross(b - centre, c - centre))) / 6)
            cs.append((a + b + c + centre) / 4)
    w = np.array(vols)
    return (w[:, None] * np.array(cs)).sum(0) / w.sum()


def _representative(wp: WyckoffPosition) -> tuple[np.ndarray, np.ndarray]:
    """The ITA representative ``ops[0]`` as (M, t) floats."""
    m, t = parse_xyz(wp.ops[0])
    return m.astype(float), np.array([float(x) for x in t])


def _site_rotations(g: SpaceGroup, wp: WyckoffPosition) -> list[np.ndarray]:
    """Linear parts of the stabilizer of a generic point of ``wp`` (checked against |G/T| / m)."""
    m0, t0 = _representative(wp)
    generic = np.array([0.1173, 0.2861, 0.4127])
    p = m0 @ generic + t0
    d = g.apply(p) - p
    d -= np.round(d)
    fixed = np.linalg.norm(d, axis=-1) < 1e-6
    rots = [r for r, f in zip(g.rotations, fixed, strict=True) if f]
    if len(rots) != wp.stabilizer_order:
        raise AssertionError(f"{g.number}{wp.label}: stabilizer has {len(rots)} operations, "
                             f"expected {wp.stabilizer_order}")
    return rots


def _wyckoff_features(g: SpaceGroup, wp: WyckoffPosition) -> np.ndarray:
    out = np.zeros(WYCKOFF_FEATURE_DIM)
    m, s = wp.multiplicity, wp.stabilizer_order
    out[0:4] = [m / _MAX_MULTIPLICITY, np.log(m) / np.log(_MAX_MULTIPLICITY), 1.0 / s,
                np.log(s) / np.log(_MAX_SITE_ORDER)]
    out[4 + wp.dim] = 1.0
    rots = _site_rotations(g, wp)
    out[8 + POINT_GROUPS.index(point_group_of(rots))] = 1.0
    sig = _type_signature(rots)
    out[40:49] = np.asarray(sig[1:], dtype=float) / s
    m0, t0 = _representative(wp)
    out[49:58] = m0.reshape(-1)
    out[58:61] = t0
    out[61:123] = _space_group_features(g.number)  # the computation, independent of the shipped tables
    shapes = wp.shapes
    out[123 + min(len(shapes), 4) - 1] = 1.0
    out[127] = np.mean([len(sh.vertices) for sh in shapes]) / 10.0
    out[128] = float(any(sh.isolated for sh in shapes))
    coms = np.array([shape_centroid(sh, g.asu.faces if sh.dim == 3 else None) for sh in shapes])
    verts = np.concatenate([sh.vertices_array for sh in shapes])
    out[129:132] = coms.mean(axis=0)
    out[132:135] = verts.mean(axis=0)
    out[135:183] = _fourier(verts)
    out[183:231] = _fourier(coms)
    return out


@cache
def _wyckoff_rows(sg: int) -> tuple[np.ndarray, ...]:
    g = space_group(sg)
    rows = []
    for wp in g.wyckoff_positions:
        row = _wyckoff_features(g, wp)
        row.setflags(write=False)
        rows.append(row)
    return tuple(rows)


def wyckoff_features(sg: int | SpaceGroup, letter: str) -> np.ndarray:
    """The 231 features of Wyckoff position ``letter`` of group ``sg`` (float64, read-only; module doc), its row of
    the shipped :func:`wyckoff_feature_matrix`."""
    g = sg if isinstance(sg, SpaceGroup) else space_group(sg)
    return _wyckoff_matrix()[g.wyckoff(letter).index]


def computed_wyckoff_feature_matrix() -> np.ndarray:
    """:func:`wyckoff_feature_matrix` derived here from the space-group table (about 1.5 s; the shipped file
    holds its bits)."""
    mat = np.stack([row for n in range(1, 231) for row in _wyckoff_rows(n)])
    if mat.shape != (len(all_wyckoff_positions()), WYCKOFF_FEATURE_DIM):
        raise AssertionError(f"unexpected Wyckoff feature matrix shape {mat.shape}")
    return mat


@cache
def _wyckoff_matrix() -> np.ndarray:
    return _load_table(WYCKOFF_TABLE, (len(all_wyckoff_positions()), WYCKOFF_FEATURE_DIM))


def wyckoff_feature_matrix() -> np.ndarray:
    """All Wyckoff feature vectors, shape (1731, 231); row ``i`` is the position with global ``index`` i.

    Read from the shipped ``data/wyckoff_features.npy.gz``, the bits of :func:`computed_wyckoff_feature_matrix`
    (a test checks that they agree within 1e-12). The array is read-only; copy it before modifying."""
    return _wyckoff_matrix()
