"""Batched orbit expansion, symmetric CIF and extended-XYZ writers."""

from __future__ import annotations

import warnings
from fractions import Fraction

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.writers import coset_operations, expand_sites, operation_xyz, to_cif, to_extxyz, to_structures


@pytest.fixture(scope="module")
def crystals(mp20_fixture) -> list[ag.AsuCrystal]:  # noqa: ANN001
    return [ag.to_asu(ag.structure_from_cif_string(c)) for c in mp20_fixture["cif"].head(120)]


def _same_points(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> bool:
    """The two point sets are equal modulo lattice translations (as sets, no duplicates in either)."""
    if a.shape != b.shape:
        return False
    d = a[:, None, :] - b[None, :, :]
    d -= np.round(d)
    close = np.abs(d).max(-1) < tol
    return bool(close.any(1).all() and close.any(0).all() and (close.sum(1) == 1).all())


def test_every_piece_has_an_orbit_of_its_multiplicity() -> None:
    """Every piece (normal and anchored) of the 1,731 positions: exact coset representatives give m distinct points."""
    pieces = anchored = 0
    for n in range(1, 231):
        for wp in ag.wyckoff_positions(n):
            for shape in wp.shapes + wp.anchored_shapes:
                ops = coset_operations(n, shape, wp.multiplicity)
                assert len(ops) == len(set(ops.tolist())) == wp.multiplicity
                pieces += 1
            anchored += len(wp.anchored_shapes)
    assert pieces - anchored == 616 + 952 + 245 + 230 and anchored > 0


def test_wrong_multiplicity_is_an_error() -> None:
    wp = ag.space_group(225).wyckoff("a")
    with pytest.raises(ag.CanonicalizationError, match="expected 8"):
        coset_operations(225, wp.shapes[0], 8)


def test_batched_expansion_equals_orbit_expansion(crystals: list[ag.AsuCrystal]) -> None:
    frac, site, which = expand_sites(crystals)
    assert frac.shape == (len(site), 3) and np.all((frac >= 0) & (frac < 1))
    assert np.all(np.diff(which) >= 0)
    for i, c in enumerate(crystals):
        sel = which == i
        assert sel.sum() == c.num_atoms
        ref = c.to_structure()
        for k, s in enumerate(c.sites):
            mine = frac[sel][site[sel] == k]
            theirs = np.array([p.frac_coords for p, sp in zip(ref, ref.species, strict=True)
                               if sp.symbol == s.element])
            assert all(np.any(np.all(np.abs((theirs - p) - np.round(theirs - p)) < 1e-9, axis=1)) for p in mine)
        assert _same_points(frac[sel], ref.frac_coords)


def test_to_structures_matches_to_structure(crystals: list[ag.AsuCrystal]) -> None:
    for c, s in zip(crystals, to_structures(crystals), strict=True):
        ref = c.to_structure()
        assert s.composition == ref.composition
        assert np.allclose(s.lattice.matrix, ref.lattice.matrix)
        assert _same_points(s.frac_coords, ref.frac_coords)


def test_empty_batch() -> None:
    frac, site, which = expand_sites([])
    assert frac.shape == (0, 3) and site.shape == which.shape == (0,)


def test_operation_xyz_formats_exactly() -> None:
    rot = np.array([[0, -1, 0], [1, -1, 0], [0, 0, 1]])
    assert operation_xyz(rot, (Fraction(0), Fraction(0), Fraction(1, 3))) == "-y,x-y,z+1/3"
    assert operation_xyz(-np.eye(3, dtype=int), (Fraction(1, 2), Fraction(-1, 4), Fraction(0))) == "-x+1/2,-y+3/4,-z"


def test_cif_is_symmetric_and_reads_back(crystals: list[ag.AsuCrystal]) -> None:
    from pymatgen.core import Structure

    for c in crystals:
        text = to_cif(c, name="x y", comments={"logp_total": -12.5})
        g = ag.space_group(c.space_group)
        assert text.startswith("data_x_y\n# logp_total: -12.5\n")
        assert f"_space_group_IT_number {g.number}" in text
        assert text.count("'") - 2 * 3 == 2 * g.order  # formula, H-M and Hall strings are quoted too
        for s in c.sites:  # one row per ASU site with multiplicity and letter
            assert f" {s.element} {g.wyckoff(s.wyckoff).multiplicity} {s.wyckoff} " in text
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = Structure.from_str(text, fmt="cif")
        ref = c.to_structure()
        assert back.composition == ref.composition
        assert np.allclose(back.lattice.abc, ref.lattice.abc, atol=1e-8)
        assert _same_points(back.frac_coords, ref.frac_coords, tol=1e-6)


def test_extxyz_reads_back_with_ase(crystals: list[ag.AsuCrystal], tmp_path) -> None:  # noqa: ANN001
    import ase.io

    sub = crystals[:20]
    path = tmp_path / "s.extxyz"
    path.write_text(to_extxyz(sub, [{"id": f"sample {i}", "logp_total": -1.25 * i, "ok": True} for i in range(20)]))
    frames = ase.io.read(path, index=":")
    assert len(frames) == 20
    for i, (atoms, c) in enumerate(zip(frames, sub, strict=True)):
        ref = c.to_structure()
        assert len(atoms) == len(ref)
        assert np.allclose(atoms.cell.cellpar(), c.lattice, atol=1e-6)
        assert atoms.info["space_group"] == c.space_group and atoms.info["id"] == f"sample {i}"
        assert atoms.info["logp_total"] == pytest.approx(-1.25 * i)
        assert sorted(atoms.get_chemical_symbols()) == sorted(sp.symbol for sp in ref.species)
        assert _same_points(np.mod(atoms.get_scaled_positions(wrap=False), 1.0), ref.frac_coords, tol=1e-7)
    with pytest.raises(ValueError, match="info has 1 entries"):
        to_extxyz(sub[:2], [{}])
