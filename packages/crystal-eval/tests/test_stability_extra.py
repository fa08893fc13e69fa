"""Without the optional extra, --stability fails with a message naming it; pure helpers of stability."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from crystal_eval.cli import main
from crystal_eval.potential import MissingExtraError, require_extra
from crystal_eval.stability import relax_rmsd
from pymatgen.core import Lattice, Structure

DATA = Path(__file__).resolve().parent / "data"


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys):
    monkeypatch.setitem(sys.modules, "chgnet", None)  # import chgnet -> ImportError
    with pytest.raises(MissingExtraError, match=r"crystal-eval\[stability\]"):
        require_extra()
    args = [str(DATA / "samples"), "--train", str(DATA / "mp20_train_small.csv"), "--test"]
    args += [str(DATA / "mp20_test_small.csv"), "-o", str(tmp_path / "r.json"), "--stability", "-q", "--no-cache"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("crystal-eval: error:") and "pip install 'crystal-eval[stability]'" in err
    assert "Traceback" not in err and not (tmp_path / "r.json").exists()


def test_relax_rmsd_ignores_drift_and_measures_displacement():
    lat = Lattice.cubic(4.0)
    a = Structure(lat, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    shifted = Structure(lat, ["Na", "Cl"], [[0.1, 0.2, 0.3], [0.6, 0.7, 0.8]])
    assert relax_rmsd(a, shifted) == pytest.approx(0.0, abs=1e-12)
    # the two atoms move 0.05 Å towards each other along x (no drift): RMSD 0.05 Å
    moved = Structure(lat, ["Na", "Cl"], [[0.0125, 0, 0], [0.4875, 0.5, 0.5]])
    assert relax_rmsd(a, moved) == pytest.approx(0.05, abs=1e-12)
    # minimum image: a move across the cell boundary is a small move
    wrapped = Structure(lat, ["Na", "Cl"], [[0.9875, 0, 0], [0.5125, 0.5, 0.5]])
    assert relax_rmsd(a, wrapped) == pytest.approx(0.05, abs=1e-12)
    assert np.isfinite(relax_rmsd(a, a))
