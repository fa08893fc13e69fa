"""Uniqueness and novelty with StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)."""

from __future__ import annotations

import numpy as np
from crystal_eval.novelty import is_novel, structures_match, uniqueness
from pymatgen.core import Structure


def perturbed(s: Structure, amount: float = 0.05, seed: int = 0) -> Structure:
    rng = np.random.default_rng(seed)
    t = s.copy()
    for i in range(len(t)):
        t.translate_sites([i], rng.normal(size=3) * amount / np.sqrt(3), frac_coords=False)
    return t


def permuted(s: Structure) -> Structure:
    order = np.random.default_rng(1).permutation(len(s))
    return Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order])


def test_copies_match_and_are_not_novel(rocksalt: Structure):
    super_ = rocksalt.copy()
    super_.make_supercell([2, 1, 1])
    for copy in (perturbed(rocksalt), permuted(rocksalt), super_, rocksalt.get_primitive_structure()):
        assert structures_match(rocksalt, copy)
        assert not is_novel(copy, [rocksalt])
        assert not is_novel(copy, [rocksalt.to(fmt="cif")])  # CIF-text candidates are parsed


def test_polymorph_is_novel(rocksalt: Structure, cscl_nacl: Structure):
    assert not structures_match(rocksalt, cscl_nacl)
    assert is_novel(cscl_nacl, [rocksalt])
    assert is_novel(rocksalt, [])


def test_large_distortion_is_not_a_match(rocksalt: Structure):
    strained = rocksalt.copy()
    strained.apply_strain([0.5, 0.0, 0.0])  # 50% > ltol
    assert not structures_match(rocksalt, strained)


def test_uniqueness_with_duplicates(rocksalt: Structure, cscl_nacl: Structure):
    structs = [
        rocksalt,
        permuted(rocksalt),
        cscl_nacl,
        perturbed(rocksalt, seed=3),
        perturbed(cscl_nacl, 0.02),
    ]
    assert uniqueness(structs) == [True, False, True, False, False]
    # the first member of each duplicate class is the unique one
    assert uniqueness(structs[::-1]) == [True, True, False, False, False]
