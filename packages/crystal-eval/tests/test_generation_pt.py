"""Samples in the layout of CDVAE's and DiffCSP's ``eval_gen.pt`` (needs torch): the same crystals give the
same report as their CIFs; a malformed file is an InputError naming the problem."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="reading .pt samples needs torch, which is not installed")

from crystal_eval.cli import main  # noqa: E402
from crystal_eval.evaluation import EvalConfig, evaluate_detailed  # noqa: E402
from crystal_eval.io import InputError, item_to_structure, load_items, parse_cif, read_generation_pt  # noqa: E402
from pymatgen.core import Structure  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TRAIN, TEST = DATA / "mp20_train_small.csv", DATA / "mp20_test_small.csv"


def fixture_structures() -> list[Structure]:
    """The readable sample CIFs of the fixture folder (9 of 11)."""
    out = []
    for f in sorted((DATA / "samples").glob("*.cif")):
        try:
            out.append(parse_cif(f.read_text()))
        except Exception:
            continue
    return out


def eval_gen_dict(samplings: list[list[Structure]]) -> dict:
    """CDVAE's eval_gen.pt dict: E samplings of the same number of crystals, atoms concatenated per sampling."""

    def one(structures: list[Structure]) -> tuple:
        frac = torch.tensor(np.concatenate([s.frac_coords for s in structures]), dtype=torch.float32)
        types = torch.tensor([site.specie.Z for s in structures for site in s], dtype=torch.int64)
        counts = torch.tensor([len(s) for s in structures], dtype=torch.int64)
        lengths = torch.tensor([s.lattice.abc for s in structures], dtype=torch.float32)
        angles = torch.tensor([s.lattice.angles for s in structures], dtype=torch.float32)
        return frac, types, counts, lengths, angles

    parts = [one(s) for s in samplings]
    n_atoms = max(len(p[0]) for p in parts)
    assert all(len(p[0]) == n_atoms for p in parts), "CDVAE stacks samplings of equal atom counts"
    return {
        "eval_setting": argparse.Namespace(num_evals=len(samplings), batch_size=len(samplings[0])),
        "frac_coords": torch.stack([p[0] for p in parts]),
        "atom_types": torch.stack([p[1] for p in parts]),
        "num_atoms": torch.stack([p[2] for p in parts]),
        "lengths": torch.stack([p[3] for p in parts]),
        "angles": torch.stack([p[4] for p in parts]),
        "all_frac_coords_stack": [],
        "all_atom_types_stack": [],
        "time": 12.5,
    }


def volume_scaled(crystals: list[Structure], factor: float) -> list[Structure]:
    """Copies with the volume times ``factor`` (a second sampling that differs from the first)."""
    out = [s.copy() for s in crystals]
    for s in out:
        s.scale_lattice(factor * s.volume)
    return out


def test_the_first_sampling_is_read_crystal_for_crystal(tmp_path: Path):
    crystals = fixture_structures()
    other = volume_scaled(crystals, 1.3)
    path = tmp_path / "eval_gen.pt"
    torch.save(eval_gen_dict([crystals, other]), path)
    for sample, expected in ((0, crystals), (1, other)):
        items = read_generation_pt(path, sample=sample)
        assert [it.name for it in items] == [f"eval_gen.pt#{sample}:{i}" for i in range(len(expected))]
        for item, s in zip(items, expected, strict=True):
            t = item_to_structure(item)
            assert [x.Z for x in t.species] == [x.Z for x in s.species]
            np.testing.assert_allclose(t.lattice.abc, s.lattice.abc, rtol=1e-6)
            np.testing.assert_allclose(t.lattice.angles, s.lattice.angles, atol=1e-4)
            np.testing.assert_allclose(t.frac_coords, s.frac_coords, atol=1e-6)
    assert [it.payload for it in load_items(path)] == [it.payload for it in read_generation_pt(path)]
    with pytest.raises(InputError, match="sample 2 asked for, the file has 2 sampling"):
        read_generation_pt(path, sample=2)


def test_the_report_equals_the_report_of_the_same_crystals_as_cifs(tmp_path: Path):
    crystals = fixture_structures()
    # float32 tensors, as the models write them: the CIFs carry the same rounded numbers
    d = eval_gen_dict([crystals])
    path = tmp_path / "eval_gen.pt"
    torch.save(d, path)
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, item in enumerate(read_generation_pt(path)):
        (folder / f"{i:02d}.cif").write_text(item_to_structure(item).to(fmt="cif"))
    cfg = EvalConfig(n_jobs=1, progress=False)
    a = evaluate_detailed(path, TRAIN, TEST, cfg).report
    b = evaluate_detailed(folder, TRAIN, TEST, cfg).report
    keys = [k for k, v in b.items() if isinstance(v, float)]
    assert len(keys) >= 10
    for k in keys:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), k
    assert a["meta"]["n_samples"] == len(crystals)


def test_a_crystal_that_cannot_be_built_is_invalid_not_an_error(tmp_path: Path):
    crystals = fixture_structures()[:3]
    d = eval_gen_dict([crystals])
    d["atom_types"][0, 0] = 0  # no element 0: the first crystal is not built
    path = tmp_path / "eval_gen.pt"
    torch.save(d, path)
    items = load_items(path)
    with pytest.raises(ValueError):
        item_to_structure(items[0])
    assert all(isinstance(item_to_structure(it), Structure) for it in items[1:])


def _save(tmp_path: Path, obj) -> Path:
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    return path


class NotAllowed:
    """A class torch.load(weights_only=True) refuses to unpickle."""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("lengths"), "missing lengths"),
        (lambda d: d.update(num_atoms=d["num_atoms"] + 1), "sizes do not add up: num_atoms sums to"),
        (lambda d: d.update(angles=d["angles"][:, :2]), "crystals in num_atoms but 3 lengths and 2 angles"),
        (lambda d: d.update(atom_types=torch.nn.functional.one_hot(d["atom_types"], 100)), "atomic numbers"),
        (lambda d: d.update(eval_setting=NotAllowed()), r"holds a \S*NotAllowed, and crystal-eval unpickles only"),
    ],
)
def test_a_malformed_file_is_an_input_error_naming_the_problem(tmp_path: Path, change, message: str):
    d = eval_gen_dict([fixture_structures()[:3]])
    change(d)
    with pytest.raises(InputError, match=message):
        read_generation_pt(_save(tmp_path, d))


def test_a_file_that_is_not_a_dict_or_not_pytorch(tmp_path: Path):
    with pytest.raises(InputError, match="holds a list, expected a dict"):
        read_generation_pt(_save(tmp_path, [torch.zeros(3)]))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip, not a pickle")
    with pytest.raises(InputError, match="not a readable PyTorch file"):
        read_generation_pt(junk)


def test_cli_reads_a_pt_file_and_rejects_a_bad_one(tmp_path: Path, capsys):
    crystals = fixture_structures()
    denser = volume_scaled(crystals, 0.8)
    path = tmp_path / "eval_gen.pt"
    torch.save(eval_gen_dict([crystals, denser]), path)
    out = tmp_path / "r.json"
    args = ["--train", str(TRAIN), "--test", str(TEST), "-o", str(out), "-q", "--no-cache", "--jobs", "1"]
    assert main([str(path), *args]) == 0
    first = json.loads(out.read_text())
    assert first["meta"]["n_samples"] == len(crystals)
    assert main([str(path), *args, "--pt-sampling", "1"]) == 0  # the second sampling: the denser copies
    second = json.loads(out.read_text())
    assert second["meta"]["n_samples"] == len(crystals)
    assert second["wasserstein_density"] != first["wasserstein_density"]
    out.unlink()
    for samples, k, message in ((path, "2", "sample 2 asked for, the file has 2 sampling"),
                                (DATA / "samples", "1", "--pt-sampling applies to .pt samples files only")):
        capsys.readouterr()
        assert main([str(samples), *args, "--pt-sampling", k]) == 2
        err = capsys.readouterr().err
        assert err.startswith("crystal-eval: error:") and message in err and "Traceback" not in err
        assert not out.exists()
    d = eval_gen_dict([fixture_structures()[:2]])
    del d["frac_coords"]
    capsys.readouterr()
    assert main([str(_save(tmp_path, d)), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crystal-eval: error:") and "missing frac_coords" in err and "Traceback" not in err
    assert not out.exists()
