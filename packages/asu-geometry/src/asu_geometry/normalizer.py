"""The discrete redescriptions of a crystal in the standard setting of its space group.

Two descriptions ``(M, x)`` and ``(M', x')`` (conventional metric tensor, fractional coordinates) of one
crystal in the standard setting of its group G are related by an affine map ``x' = P x + p`` that

* maps the lattice onto itself: ``P`` is an integer matrix, unimodular, mapping the centred lattice onto
  itself;
* keeps the description standard: ``(P, p) G (P, p)^-1 = G``, i.e. ``(P, p)`` lies in the affine
  normalizer N(G) (ITA Vol. A, part 15; Bilbao NORMALIZER);
* keeps the metric (a rigid motion of the crystal): ``M' = P^-T M P^-1``, equal to ``M`` within a length
  tolerance (the lattice parameters that spglib fixed stay fixed; an axis permutation only counts where the
  lengths it swaps are equal);
* keeps the handedness: ``det P = +1`` (a mirror image is another crystal).

Elements that differ by an element of G give the same description, so this module returns one element
per coset of G (:func:`normalizer_elements`). The continuous translations of the 68 polar groups
(along :attr:`asu_geometry.SpaceGroup.free_directions`) are left out here: translations are solved with
their free components set to zero, and the anchor of the normal form fixes the rest.

How the elements are found (exact, cached per group and linear part):

1. the metric automorphisms ``P`` (integer, ``det P = +1``, ``P^T M P = M`` within the tolerance) are
   enumerated from the lattice vectors with small coordinates whose lengths match the basis vectors
   (:func:`lattice_automorphisms`);
2. for each ``P`` that conjugates the point group of G into itself, the translations ``p`` making
   ``(P, p)`` normalize G are solved exactly on the grid of 48ths (every normalizer translation of a
   standard setting has a denominator dividing 4 or 3, so the grid is fine enough; ``pyxtal`` lists the
   general-metric cosets, which the tests check against);
3. one ``P`` is kept per coset ``P . PG(G)`` and its translations modulo the centring vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import product

import numpy as np

from ._rational import Vec3
from .tables import space_group

GRID = 48  # translations are solved exactly in units of 1/48
# Angstrom: lattice vectors whose lengths (and dot products, scaled) agree this well count as equal. spglib's
# choice among nearly equal cells is itself made at its distance tolerance (e.g. a monoclinic c against
# c + 2a, 0.012 A apart, in mp-6732), so the tolerance is the default symprec: the redescriptions between
# which spglib may choose are all candidates.
LATTICE_TOL = 0.1


@dataclass(frozen=True, eq=False)
class NormalizerElement:
    """An affine map ``x' = P x + p`` of fractional coordinates (``P`` integer, ``det P = +1``)."""

    rotation: np.ndarray  # (3, 3) int64, read-only
    translation: Vec3  # exact, in [0, 1), zero along the free directions of a polar group

    @property
    def translation_array(self) -> np.ndarray:
        """``translation`` as floats, shape (3,)."""
        return np.array([float(v) for v in self.translation])

    @property
    def is_identity(self) -> bool:
        """Whether this is the identity (rotation I, translation 0)."""
        return bool(np.array_equal(self.rotation, np.eye(3, dtype=np.int64))) and not any(self.translation)

    def apply(self, frac: np.ndarray) -> np.ndarray:
        """Image of points (..., 3)."""
        return np.asarray(frac, dtype=float) @ self.rotation.T.astype(float) + self.translation_array

    def metric(self, metric: np.ndarray) -> np.ndarray:
        """The metric tensor of the image description: ``P^-T M P^-1``."""
        inv = np.linalg.inv(self.rotation.astype(float))
        return inv.T @ np.asarray(metric, dtype=float) @ inv

    def as_xyz(self) -> str:
        """The map as an ITA coordinate triplet, e.g. ``'-y,x,z+1/2'``."""
        terms = []
        for row, t in zip(self.rotation.tolist(), self.translation, strict=True):
            s = ""
            for c, name in zip(row, "xyz", strict=True):
                if c:
                    s += ("+" if c > 0 and s else "-" if c < 0 else "") + (str(abs(c)) if abs(c) != 1 else "") + name
            if t:
                s += ("+" if s else "") + str(t)
            terms.append(s or "0")
        return ",".join(terms)

    def __repr__(self) -> str:
        return f"NormalizerElement({self.as_xyz()!r})"


def metric_tensor(lattice: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Metric tensor ``M_ij = a_i . a_j`` of lattice parameters (a, b, c, alpha, beta, gamma) in degrees."""
    a, b, c, al, be, ga = (float(v) for v in lattice)
    ca, cb, cg = (np.cos(np.radians(v)) for v in (al, be, ga))
    if abs(al - 90.0) < 1e-12:
        ca = 0.0
    if abs(be - 90.0) < 1e-12:
        cb = 0.0
    if abs(ga - 90.0) < 1e-12:
        cg = 0.0
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def lattice_parameters_of_metric(metric: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Inverse of :func:`metric_tensor`."""
    m = np.asarray(metric, dtype=float)
    a, b, c = np.sqrt(np.diag(m))

    def angle(dot: float, u: float, v: float) -> float:
        return float(np.degrees(np.arccos(np.clip(dot / (u * v), -1.0, 1.0))))

    return (float(a), float(b), float(c), angle(m[1, 2], b, c), angle(m[0, 2], a, c), angle(m[0, 1], a, b))


@cache
def _small_vectors(radius: int) -> np.ndarray:
    v = np.array([p for p in product(range(-radius, radius + 1), repeat=3) if any(p)], dtype=np.int64)
    v.setflags(write=False)
    return v


def lattice_automorphisms(metric: np.ndarray, length_tol: float = LATTICE_TOL, radius: int = 1) -> np.ndarray:
    """Integer matrices ``P`` with ``det P = +1`` and ``P^T M P = M`` within the tolerance, shape (k, 3, 3).

    The columns of ``P`` are the images of the basis vectors: lattice vectors with coordinates in
    ``[-radius, radius]`` whose lengths and mutual dot products match those of the basis. A metric entry
    counts as equal within ``2 L length_tol`` (``L`` the longest basis vector), i.e. lengths within about
    ``length_tol`` Angstrom and cosines within about ``2 length_tol / L``. ``radius = 1`` finds every
    automorphism of a reduced conventional cell in the orthorhombic, tetragonal, hexagonal and cubic
    families (signed permutations, hexagonal rotations); triclinic and monoclinic cells use ``radius = 2``.
    """
    m = np.asarray(metric, dtype=float)
    v = _small_vectors(radius)
    vf = v.astype(float)
    norms = np.einsum("ki,ij,kj->k", vf, m, vf)
    tol = 2.0 * float(np.sqrt(np.max(np.diag(m)))) * length_tol
    cols = [v[np.abs(norms - m[i, i]) <= tol] for i in range(3)]
    if any(len(c) == 0 for c in cols):
        return np.zeros((0, 3, 3), dtype=np.int64)
    cf = [c.astype(float) for c in cols]
    ok01 = np.abs(cf[0] @ m @ cf[1].T - m[0, 1]) <= tol
    ok02 = np.abs(cf[0] @ m @ cf[2].T - m[0, 2]) <= tol
    ok12 = np.abs(cf[1] @ m @ cf[2].T - m[1, 2]) <= tol
    i, j, k = np.nonzero(ok01[:, :, None] & ok02[:, None, :] & ok12[None, :, :])
    p = np.stack([cols[0][i], cols[1][j], cols[2][k]], axis=-1)  # columns are the images of a, b, c
    det = np.rint(np.linalg.det(p.astype(float))).astype(np.int64)
    return p[det == 1]


@cache
def _group_data(sg: int) -> tuple[dict[bytes, int], list[frozenset[int]], np.ndarray, np.ndarray, np.ndarray]:
    """(rotation -> id, per id the translation codes mod GRID, rotation id per operation, translations in
    GRID units, the centring vectors in GRID units)."""
    g = space_group(sg)
    rot_id: dict[bytes, int] = {}
    ids = []
    for r in g.rotations:
        ids.append(rot_id.setdefault(np.ascontiguousarray(r, dtype=np.int64).tobytes(), len(rot_id)))
    t = (g.translations24.astype(np.int64) * (GRID // 24)) % GRID
    codes: list[set[int]] = [set() for _ in rot_id]
    for i, tt in zip(ids, t.tolist(), strict=True):
        codes[i].add(_code(tt))
    identity = rot_id[np.eye(3, dtype=np.int64).tobytes()]
    centring = t[np.array(ids) == identity]
    return rot_id, [frozenset(c) for c in codes], np.array(ids), t, centring


def _code(t: list[int] | tuple[int, ...]) -> int:
    return (t[0] * GRID + t[1]) * GRID + t[2]


@cache
def free_axes(sg: int) -> tuple[int, ...]:
    """Indices of the free directions of ``sg`` (coordinate axes in the standard settings)."""
    return tuple(int(np.nonzero(np.asarray([float(x) for x in d]))[0][0]) for d in space_group(sg).free_directions)


@cache
def _grid(free: tuple[int, ...]) -> np.ndarray:
    """Every translation in GRID units with zero components along the free axes, shape (K, 3)."""
    sizes = [1 if i in free else GRID for i in range(3)]
    grid = np.indices(sizes, dtype=np.int64).reshape(3, -1).T.copy()
    grid.setflags(write=False)
    return grid


def _row_codes(rows: np.ndarray) -> np.ndarray:
    """:func:`_code` of every row of an (n, 3) integer array with entries in [0, GRID)."""
    return (rows[:, 0] * GRID + rows[:, 1]) * GRID + rows[:, 2]


def _satisfies(cand: np.ndarray, a: np.ndarray, moved: np.ndarray, codes: frozenset[int]) -> np.ndarray:
    """Mask of the candidates ``p`` (GRID units) with ``a p + moved`` congruent modulo GRID to one of ``codes``."""
    u = (moved + cand @ a.T) % GRID
    return np.isin(_row_codes(u), np.fromiter(codes, dtype=np.int64))


def _fixed_codimension(rot: np.ndarray) -> np.ndarray:
    """``rank(I - R)`` of crystallographic rotations ``R`` (n, 3, 3), from their determinant and trace (both
    independent of the basis): the identity 0, another proper rotation 2 (a fixed axis), a mirror 1 (a fixed
    plane), the inversion and the rotoinversions 3 (a fixed point)."""
    det = np.rint(np.linalg.det(rot.astype(float))).astype(np.int64)
    trace = np.trace(rot, axis1=1, axis2=2)
    return np.where(det == 1, np.where(trace == 3, 0, 2), np.where(trace == 1, 1, 3))


@cache
def _generators(sg: int) -> tuple[tuple[int, ...], bool]:
    """Indices of operations of ``sg`` that generate G modulo the lattice, most constraining first (largest rank
    of ``I - R``), and whether the first has full rank. ``(P, p)`` normalizes G when it conjugates these into
    G: conjugation is a homomorphism, and ``P`` maps the lattice onto itself."""
    g = space_group(sg)
    rot = g.rotations.astype(np.int64)
    t = (g.translations24.astype(np.int64) * (GRID // 24)) % GRID
    index = {(rot[n].tobytes(), _code(t[n].tolist())): n for n in range(len(rot))}
    eye = np.eye(3, dtype=np.int64)
    ranks = _fixed_codimension(rot).tolist()

    def product(a: int, b: int) -> int:  # (R_a, t_a)(R_b, t_b) modulo the lattice
        return index[((rot[a] @ rot[b]).tobytes(), _code(((rot[a] @ t[b] + t[a]) % GRID).tolist()))]

    identity = index[(eye.tobytes(), 0)]
    gens: list[int] = []
    reached = {identity}
    for n in sorted(range(len(rot)), key=lambda n: -ranks[n]):
        if n in reached:
            continue
        gens.append(n)
        frontier = list(reached)
        while frontier:  # closure of the subgroup under right multiplication by the generators
            new = []
            for a in frontier:
                for b in gens:
                    c = product(a, b)
                    if c not in reached:
                        reached.add(c)
                        new.append(c)
            frontier = new
    if len(reached) != len(rot):
        raise AssertionError(f"space group {sg}: the operations do not close modulo the lattice")
    return tuple(gens), bool(gens) and ranks[gens[0]] == 3


def _solve_congruence(a: np.ndarray, codes: frozenset[int], moved: np.ndarray) -> np.ndarray:
    """Every grid point ``p`` (GRID units, in [0, GRID)^3, lexicographic order) with ``a p + moved`` congruent
    modulo GRID to one of ``codes``, for an integer ``a`` with ``det a != 0``.

    ``a p = c - moved + GRID k`` gives ``p = adj(a) (c - moved + GRID k) / det a``; ``k`` only matters modulo
    ``a Z^3``, which contains ``|det a| Z^3``, so ``k`` in ``{0 .. |det a| - 1}^3`` reaches every solution (the
    brute-force filter over the whole grid finds the same set)."""
    det = round(float(np.linalg.det(a.astype(float))))
    adj = np.rint(np.linalg.inv(a.astype(float)) * det).astype(np.int64)
    d = abs(det)
    ks = np.indices((d, d, d), dtype=np.int64).reshape(3, -1).T * GRID  # (d^3, 3)
    targets = np.array([[c // (GRID * GRID), c // GRID % GRID, c % GRID] for c in sorted(codes)], dtype=np.int64)
    rhs = (targets - moved)[:, None, :] + ks[None, :, :]  # (C, d^3, 3)
    num = rhs.reshape(-1, 3) @ adj.T
    on_grid = np.all(num % det == 0, axis=1)
    sol = (num[on_grid] // det) % GRID
    if not len(sol):
        return np.zeros((0, 3), dtype=np.int64)
    codes = np.unique(_row_codes(sol))  # rows in lexicographic order
    return np.stack([codes // (GRID * GRID), codes // GRID % GRID, codes % GRID], axis=1)


@cache
def _translations(sg: int, key: bytes, brute_force: bool = False) -> tuple[tuple[int, int, int], ...]:
    """Every ``p`` (GRID units, mod the lattice and the centring vectors, zero along free axes) such that
    ``(P, p)`` normalizes G, for ``P`` given by ``key`` (its int64 bytes). Empty when ``P`` does not
    normalize the point group or no translation works.

    The operations filter the candidates one by one, most constraining first. When that one has a full-rank
    ``I - P R P^-1`` (an inversion or rotoinversion) its congruence is solved directly
    (:func:`_solve_congruence`); otherwise, or with ``brute_force``, the candidates start as the whole grid."""
    p_mat = np.frombuffer(key, dtype=np.int64).reshape(3, 3)
    g = space_group(sg)
    rot_id, codes, op_rot, t, centring = _group_data(sg)
    inv = np.rint(np.linalg.inv(p_mat.astype(float))).astype(np.int64)
    conj = np.einsum("ij,njk,kl->nil", p_mat, g.rotations.astype(np.int64), inv)
    conj_id = []
    for r in conj:
        k = rot_id.get(np.ascontiguousarray(r).tobytes())
        if k is None:
            return ()
        conj_id.append(k)
    free = set(free_axes(sg))
    eye = np.eye(3, dtype=np.int64)
    moved = t @ p_mat.T  # P t for every operation
    if brute_force:
        ranks = [np.linalg.matrix_rank((eye - r).astype(float)) for r in conj]
        order = sorted(range(len(conj)), key=lambda n: -ranks[n])  # most constraining operations first
        cand = _grid(tuple(sorted(free)))  # (K, 3)
    else:
        gens, full_rank = _generators(sg)
        order = list(gens)
        if full_rank:  # e.g. an inversion: solve its congruence instead of searching the grid
            n = order.pop(0)
            cand = _solve_congruence(eye - conj[n], codes[conj_id[n]], moved[n])
        elif not order:  # P1
            cand = _grid(tuple(sorted(free)))
        else:  # a rotation or mirror along an axis leaves coordinates out: search the grid of the others first
            n = order.pop(int(np.argmax([int(np.sum(~np.any(eye - conj[m], axis=0))) for m in order])))
            unused = {i for i in range(3) if not np.any((eye - conj[n])[:, i])} - free
            cand = _grid(tuple(sorted(free | unused)))
            cand = cand[_satisfies(cand, eye - conj[n], moved[n], codes[conj_id[n]])]
            for i in sorted(unused):  # every value along the coordinates that operation does not see
                cand = np.repeat(cand, GRID, axis=0)
                cand[:, i] = np.tile(np.arange(GRID, dtype=np.int64), len(cand) // GRID)
    for n in order:
        cand = cand[_satisfies(cand, eye - conj[n], moved[n], codes[conj_id[n]])]
        if len(cand) == 0:
            return ()
    if not brute_force:
        cand = cand[np.lexsort(cand.T[::-1])]  # the grid's order, as the search over the whole grid leaves it
    # one representative modulo the centring vectors (P maps them onto themselves)
    reps: dict[int, tuple[int, int, int]] = {}
    for p in cand.tolist():
        shifted = (np.asarray(p) + centring) % GRID
        for i in free:
            shifted[:, i] = 0
        key_min = min(_code(s) for s in shifted.tolist())
        reps.setdefault(key_min, tuple(int(x) for x in np.asarray(p) % GRID))  # type: ignore[misc]
    return tuple(sorted(reps.values()))


@cache
def _elements(sg: int, autos_key: bytes) -> tuple[NormalizerElement, ...]:
    autos = np.frombuffer(autos_key, dtype=np.int64).reshape(-1, 3, 3)
    rots = space_group(sg).rotations.astype(np.int64)
    seen: set[bytes] = set()
    out: list[NormalizerElement] = []
    for p in autos:
        if p.tobytes() in seen:
            continue
        coset = np.einsum("ij,njk->nik", p, rots)  # P R for R in PG(G): one coset, same descriptions
        for q in coset:
            seen.add(np.ascontiguousarray(q).tobytes())
        proper = coset[np.rint(np.linalg.det(coset.astype(float))) == 1]
        rep = min((np.ascontiguousarray(q) for q in proper), key=lambda q: _matrix_order(q))
        for tr in _translations(sg, rep.tobytes()):
            rot = rep.copy()
            rot.setflags(write=False)
            out.append(NormalizerElement(rot, tuple(Fraction(v, GRID) for v in tr)))  # type: ignore[arg-type]
    out.sort(key=lambda e: (not e.is_identity, _matrix_order(e.rotation), e.translation))
    return tuple(out)


def _matrix_order(m: np.ndarray) -> tuple[int, ...]:
    """Identity first, then the matrices closest to it (deterministic)."""
    return (int(np.abs(m - np.eye(3, dtype=np.int64)).sum()), *(-int(x) for x in m.ravel()))


_FAMILY_METRICS = {  # a generic metric of each family whose automorphisms do not depend on the parameters
    "tetragonal": (1.0, 1.0, 1.7, 90.0, 90.0, 90.0),
    "hexagonal": (1.0, 1.0, 1.7, 90.0, 90.0, 120.0),
    "cubic": (1.0, 1.0, 1.0, 90.0, 90.0, 90.0),
}


@cache
def _sorted_key(autos_bytes: bytes) -> bytes:
    autos = np.frombuffer(autos_bytes, dtype=np.int64).reshape(-1, 3, 3)
    order = sorted(range(len(autos)), key=lambda i: autos[i].tobytes())
    return np.ascontiguousarray(autos[order]).tobytes()


@cache
def _family_key(family: str) -> bytes:
    return _sorted_key(np.ascontiguousarray(lattice_automorphisms(metric_tensor(_FAMILY_METRICS[family]))).tobytes())


def normalizer_elements(sg: int, lattice: tuple[float, ...] | np.ndarray,
                        length_tol: float = LATTICE_TOL) -> tuple[NormalizerElement, ...]:
    """One element per coset of G in the metric-preserving, orientation-preserving affine normalizer.

    ``lattice`` are the conventional lattice parameters (a, b, c, alpha, beta, gamma); the identity comes
    first. For polar groups the translations have zero components along the free directions.

    In the tetragonal, hexagonal and cubic families the lattice parameters obey the family's equalities
    exactly (:func:`asu_geometry.crystal.symmetrize_lattice`), and the automorphisms that can normalize
    the point group are those of the family's holohedry whatever the parameters (an extra automorphism of
    a special metric, e.g. tetragonal with c = a, moves the main axis out of the point group), so they
    are taken from a cache; orthorhombic, monoclinic and triclinic metrics are searched.
    """
    g = space_group(sg)
    if g.crystal_family in _FAMILY_METRICS:
        return _elements(sg, _family_key(g.crystal_family))
    radius = 2 if g.crystal_family in ("triclinic", "monoclinic") else 1
    autos = lattice_automorphisms(metric_tensor(lattice), length_tol, radius)
    return _elements(sg, _sorted_key(np.ascontiguousarray(autos).tobytes()))
