"""The model shipped inside the package (issue 11), not a stand-in: it is present and loads, the README's model
card is the card of these very files, and ``crystal-ar sample`` without ``--checkpoint`` draws exactly symmetric
crystals whose records ``crystal-ar score`` reproduces from their CIFs.

These tests fail (they do not skip) when the package ships no model: the README's main job needs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from crystal_ar_model.checkpoint import default_checkpoint
from crystal_ar_model.fidelity import max_operation_error, spglib_relation
from crystal_ar_model.model_card import FACTOR_ORDER, model_card
from crystal_ar_model.outputs import read_samples
from crystal_ar_model.ship_model import MAX_BYTES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_shipped_model_is_the_default_config_trained_on_the_available_subset() -> None:
    d = default_checkpoint()
    names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    assert {"meta.json", "metrics.jsonl", "model.safetensors"} <= set(names), names
    assert sum((d / n).stat().st_size for n in ("meta.json", "metrics.jsonl", "model.safetensors")) < MAX_BYTES
    meta = json.loads((d / "meta.json").read_text())
    assert meta["config"]["name"] == "default"
    assert meta["data"]["preset"] == "mp20-available"
    card = model_card()
    assert set(card.val_nll) == set(FACTOR_ORDER)
    assert np.isfinite(card.val_nll_total)
    assert abs(card.val_nll_total - meta["selection"]["val_nll_total"]) < 1e-6  # the card's sum is the selection's


def test_readme_shows_the_card_of_the_shipped_files() -> None:
    assert model_card().markdown() in README.read_text(), (
        "the model card in packages/crystal-ar-model/README.md is not `python -m crystal_ar_model.model_card`'s "
        "output for the shipped model"
    )


def test_sampling_from_the_shipped_model(cli, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    r = cli("sample", "-n", "16", "--batch-size", "16", "--seed", "0", "-o", str(out), "--no-progress",
              "--workers", "0")
    assert r.returncode == 0, r.stderr
    recs = read_samples(out / "samples.jsonl")
    assert len(recs) == 16
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert first["run"]["checkpoint"]["name"] == "shipped"
    for rec in recs:
        assert max_operation_error(rec.sample) <= 1e-6, rec.id
        rel, number = spglib_relation(rec.sample, 1e-3)
        assert rel in ("same", "supergroup"), (rec.id, rel, number)
        assert np.isfinite(rec.logp["logp_total"]), rec.id
    r = cli("score", str(out / "cif"), "-o", str(tmp_path / "scores.csv"))
    assert r.returncode == 0, r.stderr
    scores = pd.read_csv(tmp_path / "scores.csv").set_index("id")
    diff = np.array([abs(scores.loc[rec.id, "logp_total"] - rec.logp["logp_total"]) for rec in recs])
    assert float(diff.max()) < 1e-3, float(diff.max())
