"""Scoring: finite values, invariance under the cell choice, named errors with a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import asu_geometry as ag
import numpy as np
import pandas as pd
import pytest
from crystal_ar_model.errors import CheckpointFormatError
from crystal_ar_model.model import LOGP_KEYS
from crystal_ar_model.score import load_model, score_path

from .conftest import TEST_FIXTURE
from .test_data import DISORDERED_CIF


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crystal_ar_model.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def structures() -> list:
    df = pd.read_csv(TEST_FIXTURE)
    return [(mid, ag.structure_from_cif_string(c)) for mid, c in zip(df["material_id"], df["cif"], strict=True)]


def test_score_csv_cli(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    r = _subprocess("score", str(TEST_FIXTURE), "--checkpoint", str(trained_run), "-o", str(out))
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out)
    assert list(df.columns) == ["id", *LOGP_KEYS] and len(df) == 20
    assert np.isfinite(df[list(LOGP_KEYS)].to_numpy()).all()
    np.testing.assert_allclose(df[list(LOGP_KEYS[:-1])].sum(1), df["logp_total"], atol=1e-3)


def _variants(s):  # noqa: ANN001, ANN202
    """The same crystal written in other ways: cell choice, supercell, origin, frame rotation, site order."""
    from pymatgen.core import Lattice, Structure

    out = {"orig": s.copy()}
    sc = s.copy()
    sc.make_supercell([2, 1, 1])
    out["supercell"] = sc
    cell = s.copy()
    cell.make_supercell([[1, 0, 0], [1, 1, 0], [0, 1, 1]])  # another primitive-equivalent cell (det 1)
    out["cell"] = cell
    sh = s.copy()
    sh.translate_sites(list(range(len(sh))), [0.13, 0.27, 0.41], frac_coords=True, to_unit_cell=True)
    out["shifted"] = sh
    ang = np.radians(37.0)
    rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(1.1), -np.sin(1.1)], [0, np.sin(1.1), np.cos(1.1)]])
    out["rotated"] = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)
    perm = np.random.default_rng(0).permutation(len(s))
    out["permuted"] = Structure(s.lattice, [s.species[i] for i in perm], s.frac_coords[perm])
    return out


# triclinic; polar monoclinic Cm; polar R3m; cubic Fm-3m; polar Amm2; polar P4mm
@pytest.mark.parametrize("which", [0, 3, 7, 12, 15, 17])
def test_score_invariant_under_cell_choice(trained_run: Path, structures: list, tmp_path: Path, which: int) -> None:
    """Every per-factor value agrees to 1e-4 nats (float64) for six descriptions of the same crystal."""
    mid, s = structures[which]
    d = tmp_path / "cifs"
    d.mkdir()
    variants = _variants(s)
    for name, v in variants.items():
        v.to(filename=str(d / f"{name}.cif"))
    df = score_path(d, trained_run, float64=True).set_index("id")
    assert np.isfinite(df.to_numpy()).all()
    ref = df.loc["orig"].to_numpy()
    for name in variants:
        np.testing.assert_allclose(df.loc[name].to_numpy(), ref, atol=1e-4, rtol=0, err_msg=f"{mid} {name}")


def test_single_cif_to_stdout(trained_run: Path, structures: list, tmp_path: Path, cli) -> None:  # noqa: ANN001
    p = tmp_path / "x.cif"
    structures[1][1].to(filename=str(p))
    r = cli("score", str(p), "--checkpoint", str(trained_run))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "id," + ",".join(LOGP_KEYS) and lines[1].startswith("x,")


def test_extxyz_frames_score_as_their_cifs(trained_run: Path, structures: list, tmp_path: Path, cli) -> None:  # noqa: ANN001
    """An extended-XYZ file (ASE's writer, rotated Cartesian frames, named and unnamed) scores frame for
    frame as the same crystals given as CIFs."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    chosen = [structures[i] for i in (0, 3, 7, 12)]
    d = tmp_path / "cifs"
    d.mkdir()
    frames = []
    for k, (_mid, s) in enumerate(chosen):
        s.to(filename=str(d / f"{k}.cif"))
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.rotate(30 * k + 10, "z", rotate_cell=True)
        atoms.info.pop("name", None)  # the adaptor may carry a label; ids below come from us
        if k % 2 == 0:
            atoms.info["name"] = f"n{k}"
        frames.append(atoms)
    xyz = tmp_path / "crystals.extxyz"
    write(xyz, frames, format="extxyz")
    out = tmp_path / "xyz.csv"
    r = cli("score", str(xyz), "--checkpoint", str(trained_run), "-o", str(out), "--float64")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(out)
    assert got["id"].tolist() == ["n0", "crystals#1", "n2", "crystals#3"]
    ref = score_path(d, trained_run, float64=True).set_index("id").loc[[str(k) for k in range(len(chosen))]]
    np.testing.assert_allclose(got[list(LOGP_KEYS)].to_numpy(), ref[list(LOGP_KEYS)].to_numpy(), atol=1e-4, rtol=0)
    molecule = tmp_path / "molecule.xyz"
    molecule.write_text("2\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 0.74\n")
    r = cli("score", str(molecule), "--checkpoint", str(trained_run))
    _expect_error(r, "CifReadError")
    assert "frame 0 (molecule#0) is not a periodic 3-D crystal" in r.stderr


def _expect_error(r: subprocess.CompletedProcess[str], name: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"error: {name}:" in r.stderr, r.stderr


def test_bad_inputs_give_named_errors(trained_run: Path, structures: list, tmp_path: Path, cli) -> None:  # noqa: ANN001
    ck = str(trained_run)
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("data_nothing\n_this_is not a crystal\n")
    _expect_error(_subprocess("score", str(garbage), "--checkpoint", ck), "CifReadError")  # a real exit status
    _cli = cli
    _expect_error(_cli("score", str(tmp_path / "missing.cif"), "--checkpoint", ck), "DataError")
    dis = tmp_path / "disordered.cif"
    dis.write_text(DISORDERED_CIF)
    _expect_error(_cli("score", str(dis), "--checkpoint", ck), "DisorderedStructureError")
    from pymatgen.core import Lattice, Structure

    am = tmp_path / "americium.cif"
    Structure(Lattice.cubic(3.5), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(am))
    _expect_error(_cli("score", str(am), "--checkpoint", ck), "UnknownElementError")
    dummy = tmp_path / "dummy.cif"  # an unknown symbol in a CIF becomes a pymatgen DummySpecies
    dummy.write_text(
        DISORDERED_CIF.replace("Fe1 Fe 0 0 0 0.5", "Xx1 Xx 0 0 0 1").replace("Co1 Co 0 0 0 0.5", "O1 O 0.5 0.5 0.5 1")
    )
    _expect_error(_subprocess("score", str(dummy), "--checkpoint", ck), "UnknownSpeciesError")
    big = tmp_path / "big.cif"
    _too_many_atoms().to(filename=str(big))
    _expect_error(_cli("score", str(big), "--checkpoint", ck), "TooManyAtomsError")
    ok = tmp_path / "ok.cif"
    structures[2][1].to(filename=str(ok))
    old = tmp_path / "old_ckpt"
    shutil.copytree(trained_run / "checkpoints" / "epoch-00004", old)
    meta = json.loads((old / "meta.json").read_text())
    meta["format_version"] = 0
    (old / "meta.json").write_text(json.dumps(meta))
    _expect_error(_cli("score", str(ok), "--checkpoint", str(old)), "CheckpointFormatError")
    with pytest.raises(CheckpointFormatError):
        load_model(tmp_path / "empty")


def _too_many_atoms():  # noqa: ANN202
    """A P1 crystal with 21 atoms in its (primitive) cell: one more than the model allows."""
    from pymatgen.core import Lattice, Structure

    frac = np.random.default_rng(1).random((21, 3))
    return Structure(Lattice.from_parameters(9.1, 9.7, 10.3, 81, 95, 103), ["O"] * 21, frac)


def test_skip_invalid_reports_and_continues(trained_run: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001
    _cli = cli
    df = pd.read_csv(TEST_FIXTURE).head(5)
    df.loc[1, "cif"] = DISORDERED_CIF
    df.loc[3, "cif"] = _too_many_atoms().to(fmt="cif")
    p = tmp_path / "mixed.csv"
    df.to_csv(p, index=False)
    r = _cli("score", str(p), "--checkpoint", str(trained_run), "--skip-invalid", "-o", str(tmp_path / "o.csv"))
    assert r.returncode == 0 and "DisorderedStructureError" in r.stderr and "TooManyAtomsError" in r.stderr
    assert len(pd.read_csv(tmp_path / "o.csv")) == 3
    _expect_error(_cli("score", str(p), "--checkpoint", str(trained_run)), "DisorderedStructureError")


def test_preprocess_cli_reports(tmp_path: Path, cli) -> None:  # noqa: ANN001
    df = pd.read_csv(TEST_FIXTURE).head(3)
    df.loc[2, "cif"] = DISORDERED_CIF
    p = tmp_path / "x.csv"
    df.to_csv(p, index=False)
    r = cli("preprocess", str(p), "--cache-dir", str(tmp_path / "c"), "--workers", "1")
    assert r.returncode == 0 and "2/3 converted, 1 failed" in r.stdout and "DisorderedStructureError" in r.stdout
