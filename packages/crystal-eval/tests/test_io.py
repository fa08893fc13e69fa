"""Loading samples: CIF folders/zips, extxyz, JSONL records, CSV; bad input."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest
from crystal_eval.features import basic_record_from_item
from crystal_eval.io import InputError, item_key, item_to_structure, load_items, load_reference_cifs
from pymatgen.core import Structure

DATA = Path(__file__).resolve().parent / "data"


def test_cif_folder_and_zip(tmp_path: Path):
    items = load_items(DATA / "samples")
    assert len(items) == 11
    zpath = tmp_path / "s.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted((DATA / "samples").glob("*.cif")):
            zf.write(f, f"gen/{f.name}")
    zitems = load_items(zpath)
    assert [it.payload for it in zitems] == [it.payload for it in items]
    recs = [basic_record_from_item(it) for it in items]
    bad = {it.name: r for it, r in zip(items, recs, strict=True) if not r.constructed}
    assert set(bad) == {"20_broken.cif", "21_empty.cif"}
    assert all(r.error for r in bad.values())


def test_jsonl_records_with_nan_and_zero_volume(tmp_path: Path, rocksalt: Structure):
    lines = [
        json.dumps({"id": "cif", "cif": rocksalt.to(fmt="cif")}),
        json.dumps(
            {
                "id": "arrays",
                "lattice": rocksalt.lattice.matrix.tolist(),
                "species": ["Na"] * 4 + ["Cl"] * 4,
                "frac_coords": rocksalt.frac_coords.tolist(),
            }
        ),
        json.dumps(
            {
                "id": "params",
                "lengths": [5.64] * 3,
                "angles": [90] * 3,
                "atom_types": [11, 17],
                "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]],
            }
        ),
        json.dumps(
            {
                "id": "nan",
                "lattice_params": [float("nan"), 5, 5, 90, 90, 90],
                "species": ["Fe"],
                "frac_coords": [[0, 0, 0]],
            }
        ),
        json.dumps(
            {
                "id": "zero",
                "lattice": [[1, 0, 0], [0, 1, 0], [0, 0, 0]],
                "species": ["Fe", "Ni"],
                "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.0]],
            }
        ),
        json.dumps({"id": "incomplete", "species": ["Fe"]}),
        "{not json",
    ]
    p = tmp_path / "samples.jsonl"
    p.write_text("\n".join(lines) + "\n")
    items = load_items(p)
    assert [it.name for it in items][:6] == ["cif", "arrays", "params", "nan", "zero", "incomplete"]
    recs = [basic_record_from_item(it) for it in items]
    assert [r.struct_valid for r in recs] == [True, True, True, False, False, False, False]
    assert [r.comp_valid for r in recs][:3] == [True, True, True]
    assert not recs[5].constructed and "lattice" in recs[5].error
    assert not recs[6].constructed and "JSON" in recs[6].error
    assert math.isnan(recs[3].density) or not recs[3].struct_valid


def test_extxyz(tmp_path: Path, rocksalt: Structure):
    lat = " ".join(f"{x:.6f}" for x in rocksalt.lattice.matrix.ravel())
    frame = [str(len(rocksalt)), f'Lattice="{lat}" Properties=species:S:1:pos:R:3 pbc="T T T"']
    frame += [f"{s.specie} {s.x:.6f} {s.y:.6f} {s.z:.6f}" for s in rocksalt]
    p = tmp_path / "gen.extxyz"
    p.write_text("\n".join(frame + frame) + "\n")
    items = load_items(p)
    assert len(items) == 2
    s = item_to_structure(items[0])
    assert len(s) == 8 and s.composition.reduced_formula == "NaCl"
    assert abs(s.volume - rocksalt.volume) < 1e-3


def test_item_keys_are_content_hashes(rocksalt: Structure):
    from crystal_eval.io import Item

    a, b = Item("a", rocksalt), Item("b", rocksalt.copy())
    assert item_key(a) == item_key(b)
    moved = rocksalt.copy()
    moved.translate_sites([0], [0.01, 0, 0])
    assert item_key(Item("c", moved)) != item_key(a)


def test_bad_inputs(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        load_items(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no crystals"):
        load_items(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="unknown sample format"):
        load_items(tmp_path / "x.txt")
    with pytest.raises(InputError, match="reference file not found"):
        load_reference_cifs(tmp_path / "missing.csv")
    (tmp_path / "nocif.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no 'cif' column"):
        load_reference_cifs(tmp_path / "nocif.csv")


def test_reference_csv_reader():
    names, cifs, h = load_reference_cifs([DATA / "mp20_train_small.csv"])
    assert len(names) == len(cifs) == 30 and names[0] == "mp-1185360" and len(h) == 64
    _, _, h2 = load_reference_cifs([DATA / "mp20_train_small.csv", DATA / "mp20_test_small.csv"])
    assert h2 != h
