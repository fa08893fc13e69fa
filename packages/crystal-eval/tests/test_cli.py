"""The ``crystal-eval`` command end to end on the committed sample set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
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


def test_cli_all_invalid_samples_give_null_metrics(tmp_path: Path):
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
