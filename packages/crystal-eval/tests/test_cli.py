"""The ``crystal-eval`` command end to end on the committed sample set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from crystal_eval import METRIC_KEYS
from crystal_eval.cli import main

DATA = Path(__file__).resolve().parent / "data"

TRAIN, TEST = str(DATA / "mp20_train_small.csv"), str(DATA / "mp20_test_small.csv")


def test_cli_end_to_end(tmp_path: Path, capsys):
    out, details, plots = tmp_path / "r.json", tmp_path / "d.csv", tmp_path / "plots"
    rc = main(
        [
            str(DATA / "samples"),
            "--train",
            TRAIN,
            "--test",
            TEST,
            "-o",
            str(out),
            "--details",
            str(details),
            "--plots",
            str(plots),
            "--seed",
            "0",
            "--n-un",
            "1000",
            "--jobs",
            "1",
            "-q",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 0
    rep = json.loads(out.read_text())
    assert set(METRIC_KEYS) <= set(rep)
    assert all(rep[k] is not None for k in METRIC_KEYS)
    assert rep["meta"]["n_samples"] == 11
    d = pd.read_csv(details)
    assert len(d) == 11
    broken = d[d.name.isin(["20_broken.cif", "21_empty.cif"])]
    assert (~broken.constructed).all() and (~broken.struct_valid).all() and broken.error.notna().all()
    # the two copies of training crystals are flagged as not novel; 00 and its supercell are one class
    un = d[d.in_un_subset.astype(bool)]
    assert set(un[un.novel == False].name) == {"10_mp-1185360_train_copy.cif", "11_mp-1217581_train_copy.cif"}  # noqa: E712
    assert (un[un.name.isin(["00_mp-865981.cif", "12_supercell_of_00.cif"])].unique == False).sum() == 1  # noqa: E712
    assert {p.name for p in plots.iterdir()} == {"space_groups.png", "num_elements.png", "density.png"}
    text = capsys.readouterr().out
    assert "JSD_G" in text and "U.N. %" in text


def test_cli_help_and_bad_input(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "crystal_eval", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--train" in r.stdout
    missing = main(
        [
            str(DATA / "samples"),
            "--train",
            str(tmp_path / "nope.csv"),
            "--test",
            TEST,
            "-o",
            str(tmp_path / "r.json"),
            "--no-cache",
            "-q",
        ]
    )
    assert missing == 2 and not (tmp_path / "r.json").exists()
    assert main([str(tmp_path / "nothing"), "--train", TRAIN, "--test", TEST, "--no-cache", "-q"]) == 2
    assert main([str(DATA / "samples"), "--train", TRAIN, "--test", TEST, "--subset", "un_rate=un", "-q"]) == 2
    r = subprocess.run([sys.executable, "-m", "crystal_eval", str(DATA / "samples")], capture_output=True, text=True)
    assert r.returncode == 2 and "--train" in r.stderr


def test_cli_all_invalid_samples_give_null_metrics(tmp_path: Path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.cif").write_text("garbage")
    (tmp_path / "in" / "b.cif").write_text("")
    out = tmp_path / "r.json"
    args = [str(tmp_path / "in"), "--train", TRAIN, "--test", TEST, "-o", str(out), "--details"]
    args += [str(tmp_path / "d.csv"), "--plots", str(tmp_path / "p"), "--no-cache", "-q", "--jobs", "1"]
    assert main(args) == 0
    rep = json.loads(out.read_text())
    assert rep["structural_validity"] == 0.0 and rep["compositional_validity"] == 0.0
    assert all(rep[k] is None for k in METRIC_KEYS[2:])
    assert len(pd.read_csv(tmp_path / "d.csv")) == 2
    err = capsys.readouterr().err  # a wrong file must not pass unnoticed as a 0 % model
    assert "warning: 2 of 2 samples could not be built as crystals and count as not valid; none could" in err


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--symprec", "-1", "must be a positive number"),
    ("--symprec", "nan", "must be a positive number"),
    ("--angle-tolerance", "0", "must be a positive number"),
    ("--time-limit", "-1", "must be a number >= 0"),
    ("--jobs", "-2", "must be an integer >= 0"),
    ("--seed", "x", "expected an integer"),
    ("--relax-steps", "0", "must be a positive integer"),
    ("--cmd-moments", "0", "must be a positive integer"),
    ("--pt-sampling", "-1", "must be an integer >= 0"),
])
def test_cli_bad_numbers_are_usage_errors(capsys, flag: str, value: str, message: str):
    with pytest.raises(SystemExit) as exc:
        main([str(DATA / "samples"), "--train", TRAIN, "--test", TEST, flag, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_checks_every_output_before_any_work(tmp_path: Path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    base = [str(DATA / "samples"), "--train", TRAIN, "--test", TEST, "--no-cache", "-q", "--jobs", "1"]
    cases = [
        (["-o", str(tmp_path)], "is a folder, not a file"),
        (["-o", str(a_file / "r.json")], "exists and is not a folder"),
        (["-o", str(tmp_path / "r.json"), "--details", str(a_file / "d.csv")], "--details"),
        (["-o", str(tmp_path / "r.json"), "--plots", str(a_file)], "--plots"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("crystal-eval: error:") and message in err, (extra, err)
    assert main([str(DATA / "samples"), "--train", TRAIN, "--test", TEST, "-q", "--cache-dir", str(a_file)]) == 2
    assert "cache folder" in capsys.readouterr().err
    assert a_file.read_text() == "keep me" and not (tmp_path / "r.json").exists()


def test_cli_names_an_asymmetric_unit_record_file(tmp_path: Path, capsys):
    """crystal-ar's samples.jsonl holds ASU records; crystal-eval says to read the conventional cells instead of
    scoring every record as an invalid crystal."""
    path = tmp_path / "samples.jsonl"
    rec = {"@format": "crystal-ar-sample/1", "id": "s0", "crystal": {"@format": "asu-crystal/2", "space_group": 225}}
    path.write_text(json.dumps(rec) + "\n")
    assert main([str(path), "--train", TRAIN, "--test", TEST, "--no-cache", "-q"]) == 2
    err = capsys.readouterr().err
    assert "asymmetric-unit record (crystal-ar-sample/1)" in err and "samples.extxyz" in err
    # an AsuCrystal's JSON has a lattice (six parameters) but sites instead of atoms: refused the same way
    asu = {"@format": "asu-crystal/2", "space_group": 225, "lattice": [5.6, 5.6, 5.6, 90, 90, 90], "anchored": True,
           "sites": [{"element": "Na", "wyckoff": "a", "shape_index": 0, "frac_coords": [0, 0, 0]}]}
    path.write_text(json.dumps(asu) + "\n")
    assert main([str(path), "--train", TRAIN, "--test", TEST, "--no-cache", "-q"]) == 2
    assert "asymmetric-unit record (asu-crystal/2)" in capsys.readouterr().err


def test_cli_warns_about_unreadable_test_rows(tmp_path: Path, capsys):
    test = pd.read_csv(TEST)
    bad = pd.concat([test, test.iloc[:1].assign(cif="garbage")], ignore_index=True)
    bad.to_csv(tmp_path / "test.csv", index=False)
    args = [str(DATA / "samples"), "--train", TRAIN, "--test", str(tmp_path / "test.csv"), "-o",
            str(tmp_path / "r.json"), "--no-cache", "-q", "--jobs", "1"]
    assert main(args) == 0
    assert "warning: 1 of the test rows could not be read" in capsys.readouterr().err


def test_cli_version(capsys):
    from crystal_eval import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"crystal-eval {__version__}"
