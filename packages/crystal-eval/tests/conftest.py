"""Shared fixtures of the crystal-eval tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def rocksalt() -> Structure:
    """Conventional NaCl (Fm-3m, a = 5.64 Å)."""
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def cscl_nacl() -> Structure:
    """NaCl in the CsCl structure (a different polymorph of the same composition)."""
    return Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
