"""The discrete affine normalizer: exact, complete against pyxtal's Wyckoff-set tables, metric-aware."""

from __future__ import annotations

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.normalizer import GRID, lattice_automorphisms, metric_tensor, normalizer_elements
from asu_geometry.tables import parse_xyz

GENERIC = {  # lattice parameters with no accidental equality in each crystal system
    "triclinic": (5.1, 6.3, 7.7, 81.0, 86.0, 97.0), "monoclinic": (5.1, 6.3, 7.7, 90.0, 104.0, 90.0),
    "orthorhombic": (5.1, 6.3, 7.7, 90.0, 90.0, 90.0), "tetragonal": (5.1, 5.1, 7.7, 90.0, 90.0, 90.0),
    "trigonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0), "hexagonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),
    "cubic": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
}
SPECIAL = {  # metrics that allow more axis permutations
    "orthorhombic": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0), "tetragonal": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
    "monoclinic": (5.1, 6.3, 5.1, 90.0, 104.0, 90.0), "triclinic": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),
}


def coset_key(g: ag.SpaceGroup, rot: np.ndarray, t48: np.ndarray) -> tuple[bytes, bytes]:
    """A canonical key of the coset (P, p) G, modulo lattice translations and the free directions."""
    rot = np.asarray(rot, dtype=np.int64)
    prods = np.einsum("ij,njk->nik", rot, g.rotations.astype(np.int64))
    trans = (g.translations24.astype(np.int64) * (GRID // 24) @ rot.T + np.asarray(t48, dtype=np.int64)) % GRID
    trans[:, list(g.free_axes)] = 0
    return min((p.tobytes(), t.tobytes()) for p, t in zip(prods, trans, strict=True))


def pyxtal_cosets(g: ag.SpaceGroup, metric: np.ndarray) -> set[tuple[bytes, bytes]]:
    """pyxtal's coset representatives of the affine normalizer that keep ``metric`` and whose coset holds
    a proper (det +1) element: det +1 ones, and det -1 ones when G has an improper operation."""
    from pyxtal.symmetry import Group

    improper = any(round(np.linalg.det(r)) == -1 for r in g.rotations)
    out = set()
    for text in Group(g.number).get_alternatives()["Coset Representative"]:
        rot, t = parse_xyz(text)
        if round(np.linalg.det(rot)) == -1 and not improper:
            continue
        if not np.allclose(rot.T @ metric @ rot, metric, atol=1e-9):
            continue
        t48 = np.array([int(v * GRID) for v in t])
        assert all(v * GRID == int(v * GRID) for v in t)
        out.add(coset_key(g, rot, t48))
    return out


def test_normalizer_equals_pyxtal_for_the_general_metric_and_contains_it_for_special_ones():
    mismatches = []
    for n in range(1, 231):
        g = ag.space_group(n)
        for table, exact in ((GENERIC, True), (SPECIAL, False)):
            lattice = table.get(g.crystal_system)
            if lattice is None or (table is SPECIAL and g.crystal_system not in SPECIAL):
                continue
            ours = {coset_key(g, e.rotation, [int(v * GRID) for v in e.translation])
                    for e in normalizer_elements(n, lattice)}
            theirs = pyxtal_cosets(g, metric_tensor(lattice))
            if (exact and ours != theirs) or not theirs <= ours:
                mismatches.append((n, lattice, len(ours), len(theirs)))
    assert mismatches == []


def test_every_element_normalizes_the_group_exactly_and_keeps_the_metric():
    for n in range(1, 231):
        g = ag.space_group(n)
        lattice = SPECIAL.get(g.crystal_system, GENERIC[g.crystal_system])
        metric = metric_tensor(lattice)
        ops = {(r.tobytes(), t.tobytes()) for r, t in
               zip(g.rotations.astype(np.int64), (g.translations24.astype(np.int64) * 2) % GRID, strict=True)}
        elements = normalizer_elements(n, lattice)
        assert elements[0].is_identity
        keys = {coset_key(g, e.rotation, [int(v * GRID) for v in e.translation]) for e in elements}
        assert len(keys) == len(elements)  # one element per coset
        for e in elements:
            p = e.rotation
            assert round(np.linalg.det(p)) == 1
            assert np.allclose(p.T @ metric @ p, metric, atol=1e-9)
            p_inv = np.rint(np.linalg.inv(p.astype(float))).astype(np.int64)
            shift = np.array([int(v * GRID) for v in e.translation])
            conj = set()
            for r, t in zip(g.rotations.astype(np.int64), g.translations24.astype(np.int64) * 2, strict=True):
                r2 = p @ r @ p_inv  # (P, p) (R, t) (P, p)^-1 = (P R P^-1, P t + p - P R P^-1 p)
                t2 = (p @ t + shift - r2 @ shift) % GRID
                conj.add((r2.tobytes(), t2.tobytes()))
            assert conj == ops, (n, e)


def test_axis_permutations_count_only_where_the_lengths_are_equal():
    cmmm = [e.as_xyz() for e in normalizer_elements(65, (5.0, 6.0, 7.0, 90, 90, 90))]
    assert cmmm == ["x,y,z", "x,y,z+1/2", "x,y+1/2,z", "x,y+1/2,z+1/2"]
    swapped = normalizer_elements(65, (5.0, 5.05, 7.0, 90, 90, 90))  # equal within LATTICE_TOL = 0.1 A
    assert len(swapped) == 8 and any(not np.array_equal(e.rotation, np.eye(3)) for e in swapped)
    assert len(normalizer_elements(65, (5.0, 5.2, 7.0, 90, 90, 90))) == 4  # 0.2 A apart: not equal
    # spglib may pick either of two monoclinic cells whose c differ by 0.012 A (mp-6732: c and c + 2a)
    c_and_c_plus_2a = (5.5984, 5.7175, 9.7287, 90.0, 125.0573, 90.0)
    assert any(abs(e.rotation).max() == 2 for e in normalizer_elements(14, c_and_c_plus_2a))
    # monoclinic with |a| = |c|: the swap a <-> c (b -> -b) keeps P2_1/m (11) but not P2_1/c (14)
    assert len(normalizer_elements(11, (5.1, 6.3, 5.1, 90, 104.0, 90))) == 16
    assert len(normalizer_elements(14, (5.1, 6.3, 5.1, 90, 104.0, 90))) == 8


@pytest.mark.parametrize(("lattice", "count"), [
    (GENERIC["triclinic"], 1),  # only the identity (the inversion has det -1)
    ((4.0, 4.0, 4.0, 90.0, 90.0, 90.0), 24),  # cubic: the rotations of m-3m
    ((3.0, 3.0, 5.0, 90.0, 90.0, 120.0), 12),  # hexagonal: the rotations of 6/mmm
    ((4.0, 4.0, 6.0, 60.0, 60.0, 90.0), 2),  # a mirror swapping a and b, times -1
])
def test_lattice_automorphisms_are_exact_symmetries_of_the_metric(lattice, count):
    metric = metric_tensor(lattice)
    autos = lattice_automorphisms(metric, radius=2)
    assert len(autos) == count
    assert any(np.array_equal(p, np.eye(3)) for p in autos)
    for p in autos:
        assert round(np.linalg.det(p)) == 1 and np.allclose(p.T @ metric @ p, metric, atol=1e-9)
    keys = {p.tobytes() for p in autos}  # a group: closed under products
    assert all((a @ b).tobytes() in keys for a in autos for b in autos)


_GENERIC = {"triclinic": (4.1, 5.3, 6.7, 77.0, 83.0, 71.0), "monoclinic": (4.1, 5.3, 6.7, 90.0, 101.0, 90.0),
            "orthorhombic": (4.1, 5.3, 6.7, 90.0, 90.0, 90.0), "tetragonal": (4.1, 4.1, 6.7, 90.0, 90.0, 90.0),
            "hexagonal": (4.1, 4.1, 6.7, 90.0, 90.0, 120.0), "cubic": (4.1, 4.1, 4.1, 90.0, 90.0, 90.0)}
_SPECIAL = {"triclinic": (5.0, 5.0, 5.0, 60.0, 60.0, 60.0), "monoclinic": (5.0, 5.0, 7.0, 90.0, 100.0, 90.0),
            "orthorhombic": (5.0, 5.0, 5.0, 90.0, 90.0, 90.0)}


def test_translation_solver_equals_the_search_over_the_whole_grid():
    """The normalizer translations found from generators (a full-rank congruence solved directly, or a search over
    the coordinates an axial operation sees) equal the plain search of the whole 48ths grid with every operation,
    for every group and every metric automorphism of a generic metric of its family, and of a special metric
    (extra automorphisms) in the triclinic, monoclinic and orthorhombic families."""
    from asu_geometry.normalizer import _translations

    keys = set()
    for sg in range(1, 231):
        family = ag.space_group(sg).crystal_family
        for lattice in (_GENERIC[family], _SPECIAL.get(family)):
            if lattice is not None:
                for p in lattice_automorphisms(metric_tensor(lattice), 1e-3, 2):
                    keys.add((sg, np.ascontiguousarray(p.astype(np.int64)).tobytes()))
    solved = nonempty = 0
    for sg, key in sorted(keys):
        fast = _translations.__wrapped__(sg, key)
        assert fast == _translations.__wrapped__(sg, key, brute_force=True), (sg, np.frombuffer(key, np.int64))
        solved += 1
        nonempty += bool(fast)
    assert solved > 2000 and nonempty > 1000
