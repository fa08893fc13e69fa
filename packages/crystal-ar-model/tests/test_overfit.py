"""Overfit: a tiny model trained on 8 crystals memorises them, and its samples reproduce them.

Training: 150 epochs of one batch of the 8 crystals (4 sites or fewer, the first such rows of the committed
MP-20 fixture), raised learning rates, no teacher-forcing noise (memorisation is the point). Measured on the
development machine: validation NLL (the same 8 crystals) 50.4 nats/crystal untrained and -4.1 after
training; 39 % of 64 samples match one of the 8 crystals (pymatgen StructureMatcher, default
tolerances), covering 6 of them. The asserted margins are wider.
"""

from __future__ import annotations

from pathlib import Path

import asu_geometry as ag
import numpy as np
import pandas as pd
import torch
from crystal_ar_model.config import Config
from crystal_ar_model.data import CrystalTensors, DataSplits, load_csv
from crystal_ar_model.model import CrystalARModel, bins_for, vocabulary_for
from crystal_ar_model.sampling import sample
from crystal_ar_model.score import load_model
from crystal_ar_model.train import evaluate, read_metrics, train

from .conftest import TRAIN_FIXTURE

CONFIG = {
    "name": "overfit",
    "model": {
        "hidden": 32,
        "layers": 2,
        "n_coarse": 100,
        "n_fine": 100,
        "rff_features": 8,
        "gnn_hidden": 32,
        "gnn_filters": 32,
        "gnn_layers": 2,
        "rbf": 16,
        "fourier": 3,
        "shape_fourier": 2,
        "coord_hidden": 32,
        "coord_layers": 1,
    },
    "train": {
        "seed": 0,
        "epochs": 150,
        "batch_size": 8,
        "checkpoint_every": 1000,
        "workers": 1,
        "threads": 1,
        "lr": {"space_group": 1e-2, "composition": 1e-2, "lattice": 1e-2, "gnn": 3e-3, "atoms": 1e-2},
        "atom_noise": 0.0,
        "lattice_noise_length": 0.0,
        "lattice_noise_angle": 0.0,
    },
}


def test_tiny_model_memorises_eight_crystals(tmp_path: Path, cache_dir: Path) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    ds, _ = load_csv(TRAIN_FIXTURE, cache_dir=cache_dir)
    small = [i for i, n in enumerate(np.diff(ds.site_ptr)) if n <= 4][:8]
    d8 = ds.subset(small)
    cfg = Config.from_dict(CONFIG)
    torch.manual_seed(cfg.train.seed)  # the same initialisation as train()
    untrained = CrystalARModel(cfg.model, bins_for(cfg.model, d8.lattice, d8.space_group), vocabulary_for(cfg.model))
    before = evaluate(untrained, CrystalTensors(d8, untrained.vocabulary))["nll_total"]
    run = train(
        cfg,
        "overfit8",
        None,
        tmp_path / "run",
        splits=DataSplits("overfit8", d8, d8, None, []),
        progress=False,
        log=lambda _: None,
    )
    after = read_metrics(run)[-1]["val"]["nll_total"]
    print(f"validation NLL untrained {before:.2f}, trained {after:.2f} nats/crystal")
    assert before > 30 and after < before - 40, (before, after)

    model, _ = load_model(run)
    drawn = sample(model, 64, torch.Generator().manual_seed(0))
    cifs = pd.read_csv(TRAIN_FIXTURE)["cif"].iloc[small]
    refs = [ag.to_asu(ag.structure_from_cif_string(c)).to_structure() for c in cifs]
    matcher = StructureMatcher()
    hits = []
    for crystal in drawn.crystals():
        try:
            structure = crystal.to_structure()
        except ag.CanonicalizationError:  # a coordinate drawn within 1e-4 of a special position: not a match
            hits.append(-1)
            continue
        hits.append(next((j for j, r in enumerate(refs) if matcher.fit(structure, r)), -1))
    hits_a = np.array(hits)
    print(f"{(hits_a >= 0).mean():.0%} of samples match, {len(set(hits_a[hits_a >= 0].tolist()))} of 8 crystals")
    assert (hits_a >= 0).mean() >= 0.2, hits
    assert len(set(hits_a[hits_a >= 0].tolist())) >= 4, hits
