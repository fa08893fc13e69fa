"""Cross-package end to end: CIFs -> asu-geometry codec -> crystal-ar scores -> crystal-eval metrics.

Everything runs through the installed console scripts, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL_DATA = ROOT / "packages" / "crystal-ar-model" / "tests" / "data"
EVAL_DATA = ROOT / "packages" / "crystal-eval" / "tests" / "data"
BIN = Path(sys.executable).parent


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=900)
    if ok:
        assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def cifs(tmp_path_factory) -> tuple[Path, Path]:
    """Ten test crystals as given, and as rebuilt from their asymmetric units (asu-geometry CLI)."""
    import asu_geometry as ag

    given = tmp_path_factory.mktemp("given")
    rebuilt = tmp_path_factory.mktemp("rebuilt")
    df = pd.read_csv(MODEL_DATA / "mp20_test20.csv.xz").iloc[:10]
    for mid, cif in zip(df.material_id, df.cif, strict=True):
        (given / f"{mid}.cif").write_text(cif)
        proc = run("asu-geometry", "canonicalize", str(given / f"{mid}.cif"))
        crystal = ag.AsuCrystal.from_dict(json.loads(proc.stdout))
        crystal.to_structure().to(filename=str(rebuilt / f"{mid}.cif"))
    return given, rebuilt


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    cfg = tmp_path_factory.mktemp("cfg") / "e2e.json"
    cfg.write_text(json.dumps({
        "name": "e2e",
        "model": {"hidden": 32, "layers": 2, "n_coarse": 100, "n_fine": 100, "rff_features": 8},
        "train": {"seed": 0, "epochs": 2, "batch_size": 64, "checkpoint_every": 1, "workers": 1, "threads": 1},
    }))
    out = tmp_path_factory.mktemp("run")
    run("crystal-ar", "train", "--config", str(cfg), "--data", str(MODEL_DATA / "mp20_train300.csv.xz"),
        "--out", str(out), "--cache-dir", str(tmp_path_factory.mktemp("cache")))
    return out


def test_scores_are_identical_for_given_and_rebuilt_crystals(cifs, checkpoint, tmp_path):
    """The codec preserves everything the likelihood sees: per-factor scores agree to 1e-6."""
    given, rebuilt = cifs
    run("crystal-ar", "score", str(given), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "a.csv"))
    run("crystal-ar", "score", str(rebuilt), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "b.csv"))
    a = pd.read_csv(tmp_path / "a.csv").set_index("id").sort_index()
    b = pd.read_csv(tmp_path / "b.csv").set_index("id").sort_index()
    assert len(a) == 10 and list(a.index) == list(b.index)
    cols = ["logp_space_group", "logp_composition", "logp_lattice", "logp_total"]
    assert a[cols].notna().all().all() and (a["logp_total"] < 0).all()
    assert (a[cols] - b[cols]).abs().max().max() < 1e-6


def test_crystal_eval_scores_the_rebuilt_crystals(cifs, tmp_path):
    _, rebuilt = cifs
    report = tmp_path / "report.json"
    proc = run("crystal-eval", str(rebuilt), "--train", str(EVAL_DATA / "mp20_train_small.csv"),
               "--test", str(EVAL_DATA / "mp20_test_small.csv"), "-o", str(report), "--n-un", "10",
               "--n-eval", "10", "--jobs", "1", "--no-cache", "--cmd-moments", "5")
    out = json.loads(report.read_text())
    metrics = out.get("metrics", out)
    assert metrics["structural_validity"] == pytest.approx(100.0)
    for key in ("compositional_validity", "un_rate", "wasserstein_density", "wasserstein_num_elements",
                "jsd_space_group", "jsd_wyckoff_dim", "cmd_crystalnn", "diversity_structure",
                "diversity_composition"):
        assert key in metrics, key
    assert "Struct. valid %" in proc.stdout  # the printed Table-1 row


def test_bad_input_fails_cleanly_across_the_tools(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_broken\n_cell_length_a ???\n")
    for tool in (["asu-geometry", "canonicalize", str(bad)],):
        proc = run(*tool, ok=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.strip()


@pytest.mark.parametrize("stem", ["seed0", "seed0-mindist0.5"])
def test_committed_samples_are_consistent_descriptions(stem):
    """The first 1,000 records of each committed sample set: the normal form and the sequence as drawn both pass
    ``AsuCrystal.check`` (a lattice of the group's family, every site on its Wyckoff position and shape piece in
    the exact ASU, no orbit twice)."""
    import itertools
    import lzma

    import asu_geometry as ag

    path = Path(__file__).resolve().parents[1] / "docs" / "samples" / f"{stem}.samples.jsonl.xz"
    checked = 0
    with lzma.open(path, "rt") as fh:
        for line in itertools.islice(fh, 1000):
            rec = json.loads(line)
            for key in ("crystal", "drawn"):
                if rec.get(key) is not None:
                    ag.AsuCrystal.from_dict(rec[key]).check()
                    checked += 1
    assert checked >= 1000
