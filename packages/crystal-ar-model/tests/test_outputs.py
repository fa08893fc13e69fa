"""The sample output files: JSONL records, extended XYZ, symmetric CIFs; atomic publication."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import asu_geometry as ag
import pytest
from crystal_ar_model.outputs import SampleRecord, SampleWriter, read_samples


@pytest.fixture(scope="module")
def crystals() -> list[ag.AsuCrystal]:
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rutile = Structure.from_spacegroup(136, Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.3, 0.3, 0]])
    return [ag.to_asu(nacl), ag.to_asu(rutile)]


def _records(crystals: list[ag.AsuCrystal], start: int = 0) -> list[SampleRecord]:
    return [SampleRecord(f"s{start + i:06d}", start + i, c, {"logp_total": -10.0 - i, "logp_lattice": -3.5},
                         min_distance={"threshold": 0.5, "used": False, "tries": 0}) for i, c in enumerate(crystals)]


@pytest.mark.parametrize("cif", ["dir", "zip"])
def test_files_round_trip(tmp_path: Path, crystals: list[ag.AsuCrystal], cif: str) -> None:
    import ase.io
    from pymatgen.core import Structure

    w = SampleWriter(tmp_path / "out", {"seed": 3, "shard": "0/1"}, cif=cif)
    w.write(_records(crystals))
    w.write(_records(crystals, start=2))
    assert not (tmp_path / "out" / "samples.jsonl").exists()  # nothing looks complete before close()
    out = w.close()
    recs = read_samples(out / "samples.jsonl")
    assert [r.id for r in recs] == ["s000000", "s000001", "s000002", "s000003"]
    assert recs[1].crystal == crystals[1] and recs[3].logp["logp_total"] == -11.0
    assert recs[0].min_distance == {"threshold": 0.5, "used": False, "tries": 0}
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert first["run"] == {"seed": 3, "shard": "0/1"} and first["logp_lattice"] == -3.5
    frames = ase.io.read(out / "samples.extxyz", index=":")
    assert [len(f) for f in frames] == [8, 6, 8, 6] and frames[1].info["id"] == "s000001"
    if cif == "zip":
        with zipfile.ZipFile(out / "cif.zip") as z:
            texts = [z.read(n).decode() for n in sorted(z.namelist())]
    else:
        texts = [p.read_text() for p in sorted((out / "cif").glob("*.cif"))]
    assert len(texts) == 4 and "# logp_total: -10.0" in texts[0] and "_atom_site_Wyckoff_symbol" in texts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [len(Structure.from_str(t, fmt="cif")) for t in texts] == [8, 6, 8, 6]
    assert "4 crystals" in w.summary(2.0) and "Fm-3m (225) 2" in w.summary(2.0)


def test_rerun_replaces_files(tmp_path: Path, crystals: list[ag.AsuCrystal]) -> None:
    for n in (2, 1):
        w = SampleWriter(tmp_path, {}, cif="dir")
        w.write(_records(crystals[:n]))
        w.close()
    assert len(read_samples(tmp_path / "samples.jsonl")) == 1
    assert [p.name for p in (tmp_path / "cif").glob("*.cif")] == ["s000000.cif"]


def test_bad_record_format(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"@format": "other"}\n')
    with pytest.raises(ValueError, match="not a crystal-ar sample record"):
        read_samples(tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="cif must be"):
        SampleWriter(tmp_path, {}, cif="tar")
