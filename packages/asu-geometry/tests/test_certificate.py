"""``to_asu_crystal`` and its proof that spglib would find a cubic crystal's own group (``asu_geometry.certificate``):
whether or not spglib is skipped, the result is ``to_asu_cell``'s."""

from __future__ import annotations

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.certificate import CUBIC_GROUPS, _coset_representatives, own_group_certified
from asu_geometry.normalform import same_description
from asu_geometry.writers import to_cells


def _certified(c: ag.AsuCrystal) -> bool:
    return not ag.needs_symmetry_search(c, symprec=0.1, angle_tolerance=5.0)


def _spglib(c: ag.AsuCrystal, symprec: float = 0.1) -> ag.AsuCrystal:
    return ag.to_asu_cell(*to_cells([c])[0], symprec=symprec, angle_tolerance=5.0)


def _in_asu(sg: int, a: float, *atoms: tuple[str, tuple[float, float, float]]) -> ag.AsuCrystal:
    """A crystal from one point of each orbit (any image), each moved to its representative in the exact ASU."""
    g = ag.space_group(sg)
    pts = ag.to_asu_points(sg, np.array([x for _, x in atoms]), tol=0)
    sites = tuple(ag.AsuSite(e, g.wyckoff_positions[w].letter, int(k), tuple(float(v) for v in f))
                  for (e, _), w, k, f in zip(atoms, pts.wyckoff_index, pts.shape_index, pts.frac, strict=True))
    crystal = ag.AsuCrystal(sg, (a, a, a, 90.0, 90.0, 90.0), sites)
    crystal.check()
    return crystal


def _random_cubic(rng: np.random.Generator) -> ag.AsuCrystal:
    """A random crystal of a random cubic group: 1-3 sites on random Wyckoff positions and pieces, two
    elements (so that sites of one element on special positions often add symmetry)."""
    g = ag.space_group(int(rng.choice(np.arange(195, 231))))
    sites = []
    for _ in range(int(rng.integers(1, 4))):
        wp = g.wyckoff_positions[int(rng.integers(len(g.wyckoff_positions)))]
        k = int(rng.integers(len(wp.shapes)))
        shape = wp.shapes[k]
        if shape.dim == 0:
            params = np.zeros(0)
        else:
            w = rng.dirichlet(np.ones(len(shape.chart_vertices)))
            params = w @ shape.chart_vertices_array
        sites.append(ag.AsuSite(str(rng.choice(["Na", "Cl"])), wp.letter, k,
                                tuple(float(v) for v in shape.to_frac(params))))
    a = float(rng.uniform(3.0, 9.0))
    return ag.AsuCrystal(g.number, (a, a, a, 90.0, 90.0, 90.0), tuple(sites))


def test_coset_representatives_of_the_cubic_point_groups():
    """m-3m has 48 rotations: one coset for m-3m, two for m-3, 432 and -43m, four for 23."""
    sizes = {g: len(_coset_representatives(g)) for g in CUBIC_GROUPS}
    assert sizes[221] == sizes[225] == sizes[230] == 1
    assert sizes[200] == sizes[207] == sizes[215] == 2
    assert sizes[195] == sizes[198] == 4
    for g in CUBIC_GROUPS:
        reps = _coset_representatives(g)
        assert np.array_equal(reps[0], np.eye(3))
        pg = ag.space_group(g).point_group_rotations
        assert len(reps) * len(pg) == 48
        cosets = {(r @ p + 0.0).tobytes() for r in reps for p in pg}
        assert len(cosets) == 48  # the cosets are disjoint and cover m-3m


def test_rock_salt_is_certified_and_equals_spglib():
    nacl = _in_asu(225, 5.64, ("Na", (0.0, 0.0, 0.0)), ("Cl", (0.5, 0.5, 0.5)))
    assert _certified(nacl)
    out = ag.to_asu_crystal(nacl)
    assert out.space_group == 225
    assert same_description(out, _spglib(nacl), 1e-9, 1e-9)


@pytest.mark.parametrize(("crystal", "found"), [
    # CsCl with one element is bcc: the extra translation (1/2, 1/2, 1/2) makes it Im-3m
    (_in_asu(221, 3.0, ("Fe", (0.0, 0.0, 0.0)), ("Fe", (0.5, 0.5, 0.5))), 229),
    # P23 with sites on 1a and 1b is CsCl: the rotations outside 23 make it Pm-3m
    (_in_asu(195, 4.1, ("Cs", (0.0, 0.0, 0.0)), ("Cl", (0.5, 0.5, 0.5))), 221),
    # rock salt in P2_13 with both atoms 0.02 A off along x = y = z (within symprec): spglib finds Fm-3m
    (_in_asu(198, 5.64, ("Na", (0.002,) * 3), ("Cl", (0.502,) * 3)), 225),
    # 0.04 A off: spglib keeps P2_13, but the proof, with its margin, leaves the decision to spglib
    (_in_asu(198, 5.64, ("Na", (0.004,) * 3), ("Cl", (0.504,) * 3)), 198),
])
def test_hidden_symmetry_is_not_certified_and_spglib_finds_it(crystal: ag.AsuCrystal, found: int):
    assert not _certified(crystal)
    out = ag.to_asu_crystal(crystal)
    assert out.space_group == found
    assert same_description(out, _spglib(crystal), 1e-9, 1e-9)


def test_the_proof_needs_its_assumptions():
    nacl = _in_asu(225, 5.64, ("Na", (0.0, 0.0, 0.0)), ("Cl", (0.5, 0.5, 0.5)))
    lattice, frac, numbers = to_cells([nacl])[0]
    g = ag.space_group(225)
    assert own_group_certified(g, 5.64, frac, numbers, 0.1, 5.0)
    assert not own_group_certified(g, 5.64, frac, numbers, 0.1, 10.0)  # angle tolerance beyond the argument
    assert not own_group_certified(g, 5.64, frac, numbers, 0.1, -1.0)  # spglib's default angle rule
    assert not own_group_certified(g, 5.64, frac, numbers, 0.3, 5.0)  # cell below MIN_CELL * symprec
    assert not own_group_certified(g, 5.64, frac, numbers, 2.0, 5.0)  # atoms within SAFETY * symprec
    tetragonal = ag.AsuCrystal(123, (4.0, 4.0, 4.0, 90.0, 90.0, 90.0), (ag.AsuSite("Fe", "a", 0, (0.0, 0.0, 0.0)),))
    lattice, frac, numbers = to_cells([tetragonal])[0]
    assert not own_group_certified(ag.space_group(123), 4.0, frac, numbers, 0.1, 5.0)  # not a cubic group
    assert ag.to_asu_crystal(tetragonal).space_group == 221  # spglib finds the cube


def test_a_site_off_its_wyckoff_position_goes_to_spglib():
    """The proof assumes an exactly symmetric cell: a site that does not lie on the position it names (here
    8c of Fm-3m, x = y = z, given with z off) is handed to spglib, whatever it makes of the cell."""
    off = ag.AsuCrystal(225, (5.0, 5.0, 5.0, 90.0, 90.0, 90.0), (ag.AsuSite("Na", "c", 0, (0.25, 0.25, 0.26)),))
    ok = _in_asu(225, 5.0, ("Na", (0.25, 0.25, 0.25)))
    from asu_geometry.crystal import _on_their_positions

    assert _on_their_positions(ag.space_group(225), ok)
    assert not _on_their_positions(ag.space_group(225), off)


def test_random_cubic_crystals_agree_with_spglib():
    """300 random cubic crystals: ``to_asu_crystal`` gives ``to_asu_cell``'s result (or its error) whether or not
    the proof holds, and both outcomes occur."""
    rng = np.random.default_rng(7)
    certified = symmetrised = 0
    for _ in range(300):
        c = _random_cubic(rng)
        try:
            want = _spglib(c)
        except ag.AsuGeometryError as exc:
            with pytest.raises(type(exc)):
                ag.to_asu_crystal(c)
            continue
        got = ag.to_asu_crystal(c)
        assert same_description(got, want, 1e-9, 1e-9), (c.to_dict(), got.to_dict(), want.to_dict())
        if _certified(c):
            certified += 1
            assert got.space_group == c.space_group
            assert sorted(s.wyckoff for s in got.sites) == sorted(s.wyckoff for s in ag.normal_form(c).sites)
        symmetrised += want.space_group != c.space_group
    assert certified >= 80 and symmetrised >= 50, (certified, symmetrised)  # 103 and 96 when written


def test_tolerances_are_checked_first():
    nacl = _in_asu(225, 5.64, ("Na", (0.0, 0.0, 0.0)), ("Cl", (0.5, 0.5, 0.5)))
    with pytest.raises(ValueError, match="symprec"):
        ag.to_asu_crystal(nacl, symprec=-1.0)
    with pytest.raises(ValueError, match="angle_tolerance"):
        ag.to_asu_crystal(nacl, angle_tolerance=float("nan"))
