"""The normal form: one description per crystal.

A crystal in the standard setting of its space group G can be written in several ways: every element
``x -> P x + p`` of the affine normalizer of G that keeps the conventional metric and the handedness
(:func:`asu_geometry.normalizer.normalizer_elements`) maps one description onto another, and in the 68
polar groups every translation along the free directions does too. The normal form is the least of these
descriptions in the following total order, after every site is mapped onto its representative in the
exact ASU:

1. the sequence of Wyckoff positions, by their index in the group's table (``g.wyckoff_positions``
   order: 'a' first, the general position last), of the sites sorted by (position, Z, coordinates);
2. the sequence of atomic numbers Z, same site order;
3. the coordinates, site by site and x, y, z within a site, compared with a tolerance (``COORD_TOL``):
   at each position the candidates whose values are chained to the least one by gaps of at most the
   tolerance tie and the comparison moves on (a rule on the set of candidates, so the result does not
   depend on the order in which they come);
4. the shape indices;
5. the lattice parameters (they differ only between descriptions related by an axis permutation that the
   metric allows within ``LATTICE_TOL``), with a tolerance.

Within a description the sites are ordered by (Wyckoff index, Z, coordinates), the coordinates again
compared with ``COORD_TOL``: sites whose x values are chained by gaps of at most the tolerance are
ordered by y, and so on. Coordinates come before shape indices because a shape index is a function
of the coordinates except on the boundary between two pieces, where rounding would decide it.

**Polar groups (the anchor).** Translations along the free directions form a continuum, fixed by an
anchor: site 0 of the normal form has its coordinates along the free directions equal to
``SpaceGroup.anchor`` (the lower bound of the ASU along each free direction, or the upper one where the
exact ASU excludes the lower face: P4_3, z = 1). Any site of the least (Wyckoff index, Z) can be that
site, and any point of its orbit can be moved onto the anchor; all these candidates are compared with
the order above, where site 0 comes first and the other sites follow in the usual order. Site 0's
``shape_index`` indexes ``wp.anchored_shapes`` (the position's pieces on the anchor).

**Near ties.** The choice is stable under noise below the tolerances: a crystal perturbed by 1e-5 A keeps
its normal form, except when two candidates differ first by about ``COORD_TOL`` in one coordinate, or a
site lies within the noise of an ASU face where its representative jumps to another image (x = 0 versus
x = 1, or across a face of a rotation or inversion) or of the boundary between two shape pieces.
References: E. Parthé & L. M. Gelato, Acta Cryst. A40 (1984) 169 (standardisation of crystal-structure
data by a minimal description); ITA Vol. A, part 15 (normalizers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from .canonical import _ShapeCandidates, to_asu_points
from .errors import CanonicalizationError
from .normalizer import LATTICE_TOL, NormalizerElement, lattice_parameters_of_metric, metric_tensor, normalizer_elements
from .tables import SpaceGroup, space_group

if TYPE_CHECKING:
    from .crystal import AsuCrystal

COORD_TOL = 1e-4  # fractional: coordinates closer than this are equal for the order
LATTICE_KEY_TOL = 1e-6  # Angstrom / degrees: lattice parameters closer than this are equal for the order
IMAGE_TOL = 1e-6  # fractional snapping of the (already snapped) images: only rounding is absorbed
ANCHOR_TOL = 1e-8  # how close to the anchor site 0 must be (then it is set exactly)


@dataclass(frozen=True)
class NormalFormReport:
    """The normal form and how many descriptions were compared to find it."""

    crystal: AsuCrystal
    normalizer_candidates: int  # descriptions from the discrete normalizer (1 = the crystal is its own)
    anchor_candidates: int  # anchored descriptions compared (polar groups; 0 otherwise)

    @property
    def candidates(self) -> int:
        """All descriptions compared: normalizer images plus anchored ones."""
        return self.normalizer_candidates + self.anchor_candidates


@dataclass(frozen=True)
class _Form:
    """One candidate description: sites in their order (and which normalizer element gave it)."""

    frac: np.ndarray  # (n, 3)
    wyckoff: np.ndarray  # (n,)
    shape: np.ndarray  # (n,) (site 0 indexes anchored_shapes in a polar group)
    z: np.ndarray  # (n,)
    element: int  # index into the normalizer elements (its lattice is computed only when needed)


def _least(values: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the least rows of ``values`` (C, L) in the lexicographic order with a tolerance.

    Column by column, the remaining rows are sorted by that column and only those chained to the smallest
    value by gaps of at most ``tol`` stay. Unlike a pairwise comparison with a tolerance this depends only
    on the set of rows, not on the order they come in (no intransitive ties)."""
    alive = np.arange(len(values))
    for col in range(values.shape[1]):
        if len(alive) == 1:
            break
        v = values[alive, col]
        order = np.argsort(v, kind="stable")
        gaps = np.diff(v[order]) > tol
        alive = alive[order[:int(np.argmax(gaps)) + 1]] if gaps.any() else alive
    return alive


def _tolerant_order(idx: list[int], rows: list[list[float]], col: int = 0) -> list[int]:
    """``idx`` ordered by coordinates x, then y, then z, where values chained by gaps of at most ``COORD_TOL``
    are tied (and ordered by the next coordinate): a total order that does not depend on the input order.
    ``rows`` are the coordinates as lists (small inputs: plain Python is faster than numpy here)."""
    if len(idx) <= 1 or col == 3:
        return idx
    ordered = sorted(idx, key=lambda i: rows[i][col])
    out: list[int] = []
    group = [ordered[0]]
    for prev, i in zip(ordered, ordered[1:], strict=False):
        if rows[i][col] - rows[prev][col] > COORD_TOL:
            out += _tolerant_order(group, rows, col + 1)
            group = [i]
        else:
            group.append(i)
    return out + _tolerant_order(group, rows, col + 1)


def _site_order(keys: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Site indices ordered by (integer key, coordinates with ``COORD_TOL``; see :func:`_tolerant_order`)."""
    order = np.argsort(keys, kind="stable")
    ks = keys[order].tolist()
    if all(a != b for a, b in zip(ks, ks[1:], strict=False)):
        return order
    rows = frac.tolist()
    out: list[int] = []
    run = [int(order[0])]
    for k in range(1, len(ks)):
        if ks[k] != ks[k - 1]:
            out += _tolerant_order(run, rows)
            run = []
        run.append(int(order[k]))
    return np.array(out + _tolerant_order(run, rows), dtype=int)


@cache
def _stacked(elements: tuple[NormalizerElement, ...]) -> tuple[np.ndarray, np.ndarray]:
    rot = np.stack([e.rotation for e in elements]).astype(float)
    shift = np.stack([e.translation_array for e in elements])
    rot.setflags(write=False)
    shift.setflags(write=False)
    return rot, shift


@cache
def _anchored_candidates(sg: int) -> dict[int, _ShapeCandidates]:
    """Wyckoff index -> the stacked anchored shapes of that position."""
    return {wi: _ShapeCandidates([(wi, si, s) for si, s in enumerate(wp.anchored_shapes)])
            for wi, wp in enumerate(space_group(sg).wyckoff_positions)}


@cache
def _free_shifts(sg: int) -> np.ndarray:
    """The distinct components along the free axes (mod 1) of the group's translations, shape (s, k): the
    heights of an orbit's points above its first one, since rotations keep the free coordinates."""
    g = space_group(sg)
    t = np.mod(g.translations24[:, list(g.free_axes)], 24)
    out = np.unique(t, axis=0) / 24.0
    out.setflags(write=False)
    return out


def _image_lattice(g: SpaceGroup, lattice: tuple[float, ...], element: NormalizerElement) -> tuple[float, ...]:
    """Lattice parameters of the description ``x' = P x + p``: those of ``P^-T M P^-1``, exactly the input
    ones when they agree to 1e-9 (every automorphism of a cubic, hexagonal or tetragonal metric)."""
    if g.crystal_family in ("cubic", "hexagonal", "tetragonal") or np.array_equal(element.rotation, np.eye(3)):
        return lattice
    from .crystal import symmetrize_lattice

    image = symmetrize_lattice(g.crystal_system, lattice_parameters_of_metric(element.metric(metric_tensor(lattice))))
    if np.allclose(image, lattice, rtol=0, atol=1e-9):
        return lattice
    return image


def _best(forms: Sequence[_Form], lattice_of: Callable[[int], tuple[float, ...]]) -> _Form:
    """The least form in the order of the module docstring (letters and elements are already equal)."""
    alive = _least(np.stack([f.frac.ravel() for f in forms]), COORD_TOL)
    if len(alive) > 1:
        shapes = [tuple(forms[k].shape.tolist()) for k in alive]
        alive = np.array([k for k, sh in zip(alive, shapes, strict=True) if sh == min(shapes)])
    if len(alive) > 1:
        lattices = np.array([lattice_of(forms[k].element) for k in alive])
        alive = alive[_least(lattices, LATTICE_KEY_TOL)]
    return forms[int(alive[0])]


def normal_form_sites(g: SpaceGroup, lattice: tuple[float, ...], frac: np.ndarray, z: np.ndarray,
                      lattice_tol: float = LATTICE_TOL,
                      check: Callable[[np.ndarray, np.ndarray], None] | None = None
                      ) -> tuple[_Form, tuple[float, ...], int, int]:
    """The normal form of sites given as orbit points ``frac`` (n, 3) with atomic numbers ``z`` (n,).

    Returns (the least description, its lattice parameters, normalizer candidates, anchor candidates).
    The points must lie exactly on their Wyckoff positions (already snapped). ``check(reps, wyckoff)`` is
    called on the given description (the identity image: ASU representatives and Wyckoff indices) before
    anything else is compared.
    """
    frac = np.asarray(frac, dtype=float).reshape(-1, 3)
    z = np.asarray(z, dtype=np.int64)
    n = len(frac)
    elements = normalizer_elements(g.number, lattice, lattice_tol)
    m = len(elements)
    memo: dict[int, tuple[float, ...]] = {}

    def lattice_of(e: int) -> tuple[float, ...]:
        if e not in memo:
            memo[e] = _image_lattice(g, lattice, elements[e])
        return memo[e]

    if n == 0:
        return _Form(frac, np.zeros(0, int), np.zeros(0, int), z, 0), lattice, m, 0
    rot, shift = _stacked(elements)
    images = np.einsum("mij,nj->mni", rot, frac) + shift[:, None, :]
    pts = to_asu_points(g.number, images.reshape(-1, 3), tol=IMAGE_TOL)
    reps = pts.frac.reshape(m, n, 3)
    wyck = pts.wyckoff_index.reshape(m, n)
    shp = pts.shape_index.reshape(m, n)
    if check is not None:
        assert elements[0].is_identity
        check(reps[0], wyck[0])
    keys = wyck * 256 + z[None, :]  # (position, Z) as one integer (Z < 256)
    sorted_keys = np.sort(keys, axis=1)
    seq = np.concatenate([sorted_keys // 256, sorted_keys % 256], axis=1)  # letters first, then elements
    first = seq[np.lexsort(seq.T[::-1])[0]]
    tied = np.nonzero(np.all(seq == first, axis=1))[0]
    if not g.is_polar:
        forms = []
        for c in tied.tolist():
            order = _site_order(keys[c], reps[c])
            forms.append(_Form(reps[c][order], wyck[c][order], shp[c][order], z[order], c))
        best = _best(forms, lattice_of)
        return best, lattice_of(best.element), m, 0
    best, examined = _best_anchored(g, tied, reps, wyck, keys, z, lattice_of)
    return best, lattice_of(best.element), m, examined


def _best_anchored(g: SpaceGroup, tied: np.ndarray, reps: np.ndarray, wyck: np.ndarray, keys: np.ndarray,
                   z: np.ndarray, lattice_of: Callable[[int], tuple[float, ...]]) -> tuple[_Form, int]:
    """The least anchored description of the tied normalizer images: each site of the least (position, Z),
    with each point of its orbit moved onto the anchor by a translation along the free directions.
    Site 0 comes first in the order, so only the candidates whose site 0 ties with the least one get their
    other sites computed. Returns the least description and the number of anchored candidates."""
    axes = list(g.free_axes)
    anchor = np.array([float(v) for v in g.anchor])
    n = reps.shape[1]
    pairs = [(c, j) for c in tied.tolist() for j in np.nonzero(keys[c] == keys[c].min())[0].tolist()]
    cs, js = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    heights = _free_shifts(g.number)  # (S, k)
    t = np.zeros((len(pairs), len(heights), 3))
    t[:, :, axes] = anchor - reps[cs, js][:, None, axes] - heights[None, :, :]
    t[:, :, axes] -= np.floor(t[:, :, axes] + 1e-9)  # modulo lattice translations along the free axes
    t = t.reshape(-1, 3)
    job_pair = np.repeat(np.arange(len(pairs)), len(heights))
    site0 = to_asu_points(g.number, reps[cs, js][job_pair] + t, tol=IMAGE_TOL).frac  # the would-be site 0
    ok = np.all(np.abs(site0[:, axes] - anchor) <= ANCHOR_TOL, axis=-1)  # else another orbit point is the rep
    if not ok.any():
        raise CanonicalizationError(f"space group {g.number}: no site could be moved onto the anchor "
                                    f"({g.anchor_description})")
    valid = np.nonzero(ok)[0]
    first = site0[valid]
    first[:, axes] = anchor
    keep = valid[_least(first, COORD_TOL)]
    first = site0[keep]
    first[:, axes] = anchor
    wi = int(wyck[cs[job_pair[keep[0]]], js[job_pair[keep[0]]]])
    cands = _anchored_candidates(g.number)[wi]
    dist, col, _, _ = cands.match(first)
    if np.max(dist) > 1e-6:
        raise CanonicalizationError(f"space group {g.number}: anchored site at {first[np.argmax(dist)].tolist()} "
                                    f"lies on no anchored shape of {g.wyckoff_positions[wi].label}")
    kc = cs[job_pair[keep]]
    pts = to_asu_points(g.number, (reps[kc] + t[keep][:, None, :]).reshape(-1, 3), tol=IMAGE_TOL)
    moved = pts.frac.reshape(len(keep), n, 3)
    mwyck = pts.wyckoff_index.reshape(len(keep), n)
    mshape = pts.shape_index.reshape(len(keep), n)
    if not np.array_equal(mwyck, wyck[kc]):
        raise CanonicalizationError(f"space group {g.number}: a translation along the free directions changed "
                                    "a Wyckoff position")
    forms = []
    for k in range(len(keep)):
        c, j = int(kc[k]), int(js[job_pair[keep[k]]])
        x = moved[k].copy()
        x[j] = first[k]
        rest = np.array([i for i in range(n) if i != j], dtype=int)
        order = np.concatenate([[j], rest[_site_order(keys[c][rest], x[rest])]]).astype(int)
        shapes = mshape[k][order].copy()
        shapes[0] = int(cands.shape_index[col[k]])
        forms.append(_Form(x[order], mwyck[k][order], shapes, z[order], c))
    return _best(forms, lattice_of), len(t)


def _element_numbers(symbols: Sequence[str]) -> np.ndarray:
    from .crystal import atomic_number

    return np.array([atomic_number(s) for s in symbols], dtype=np.int64)


def lattice_matrix(lattice: Sequence[float]) -> np.ndarray:
    """Rows a, b, c of a lattice with the given parameters (a along x, b in the xy plane), Angstrom."""
    a, b, c, al, be, ga = (float(v) for v in lattice)
    ca, cb, cg = (np.cos(np.radians(v)) for v in (al, be, ga))
    sg = np.sin(np.radians(ga))
    cx = cb
    cy = (ca - cb * cg) / sg
    cz = np.sqrt(max(1.0 - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cx, c * cy, c * cz]])


def _report(crystal: AsuCrystal, tol: float, lattice_tol: float) -> NormalFormReport:
    from .crystal import AsuCrystal, AsuSite

    g = space_group(crystal.space_group)
    z = _element_numbers([s.element for s in crystal.sites])
    x = np.array([s.frac_coords for s in crystal.sites], dtype=float).reshape(-1, 3)
    if len(x):
        pts = to_asu_points(g.number, x, tol=tol, lattice=lattice_matrix(crystal.lattice))
        for i, (s, letter) in enumerate(zip(crystal.sites, pts.letters, strict=True)):
            if letter != s.wyckoff:
                raise CanonicalizationError(
                    f"site {i} ({s.element} {g.wyckoff(s.wyckoff).label}) at {list(s.frac_coords)} lies on "
                    f"{g.wyckoff(letter).label} (snapping within {tol} A)")
        x = pts.frac
        _check_overlap(x, crystal)
    form, lattice, m, anchored = normal_form_sites(g, tuple(float(v) for v in crystal.lattice), x, z, lattice_tol)
    wps = g.wyckoff_positions
    frac = np.where(np.abs(form.frac) < 1e-12, 0.0, form.frac)
    sites = tuple(AsuSite(_symbol(int(zz)), wps[int(w)].letter, int(si), tuple(float(v) for v in row))  # type: ignore[arg-type]
                  for zz, w, si, row in zip(form.z, form.wyckoff, form.shape, frac, strict=True))
    out = AsuCrystal(g.number, tuple(lattice), sites, anchored=True)  # type: ignore[arg-type]
    return NormalFormReport(out, m, anchored)


def _check_overlap(x: np.ndarray, crystal: AsuCrystal) -> None:
    if len(x) < 2:
        return
    close = np.max(np.abs(x[:, None, :] - x[None, :, :]), axis=-1) < 1e-4
    np.fill_diagonal(close, False)
    if close.any():
        i, j = np.argwhere(close)[0]
        raise CanonicalizationError(f"sites {i} ({crystal.sites[i].element}) and {j} ({crystal.sites[j].element}) "
                                    f"are the same orbit at {np.round(x[i], 4).tolist()} (overlapping sites)")


def _symbol(z: int) -> str:
    from .crystal import _symbol as symbol

    return symbol(z)


def normal_form(crystal: AsuCrystal, tol: float = 1e-3, lattice_tol: float = LATTICE_TOL) -> AsuCrystal:
    """The normal form of a crystal given as any of its equivalent ASU descriptions.

    ``crystal`` may be any normalizer image, with sites in any order and anywhere in their orbits (not
    necessarily in the ASU), and a polar crystal need not be anchored. Site coordinates are snapped onto
    their special positions within ``tol`` Angstrom and must then lie on the Wyckoff position they declare
    (else :class:`CanonicalizationError`). Idempotent; ``to_asu(s)`` equals ``normal_form(to_asu(s,
    canonical=False))``. The definition (total order, anchor) is in the module docstring.
    """
    return _report(crystal, tol, lattice_tol).crystal


def normal_form_report(crystal: AsuCrystal, tol: float = 1e-3, lattice_tol: float = LATTICE_TOL) -> NormalFormReport:
    """:func:`normal_form` with the number of candidate descriptions it compared."""
    return _report(crystal, tol, lattice_tol)


def same_description(a: AsuCrystal, b: AsuCrystal, coord_tol: float = 1e-6, lattice_tol: float = 1e-6) -> bool:
    """True when two crystals have the same group, anchoring, sites (element, letter, shape index, in order)
    and, within the tolerances, the same coordinates and lattice parameters."""
    if a.space_group != b.space_group or a.anchored != b.anchored or len(a.sites) != len(b.sites):
        return False
    if any((s.element, s.wyckoff, s.shape_index) != (t.element, t.wyckoff, t.shape_index)
           for s, t in zip(a.sites, b.sites, strict=True)):
        return False
    if not np.allclose(a.lattice, b.lattice, rtol=0, atol=lattice_tol):
        return False
    xa = np.array([s.frac_coords for s in a.sites]).reshape(-1, 3)
    xb = np.array([s.frac_coords for s in b.sites]).reshape(-1, 3)
    return bool(np.allclose(xa, xb, rtol=0, atol=coord_tol))


def is_normal_form(crystal: AsuCrystal, tol: float = 1e-3, lattice_tol: float = LATTICE_TOL,
                   coord_tol: float = 1e-6) -> bool:
    """True when ``crystal`` equals its own normal form (within ``coord_tol`` on coordinates and lattice)."""
    return same_description(normal_form(crystal, tol, lattice_tol), crystal, coord_tol, coord_tol)
