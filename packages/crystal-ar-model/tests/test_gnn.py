"""The context network: the first layer computed once per distinct edge equals the per-prefix computation."""

from __future__ import annotations

import numpy as np
import torch
from crystal_ar_model.data import CrystalTensors, load_csv

from .conftest import TRAIN_FIXTURE
from .test_masks import small_model


def test_first_layer_by_distinct_edges_equals_per_prefix(cache_dir) -> None:  # noqa: ANN001
    ds, _ = load_csv(TRAIN_FIXTURE, cache_dir=cache_dir)
    model = small_model(20, tuple(range(1, 95)), seed=4)
    b = CrystalTensors(ds, model.vocabulary).batch(np.arange(60))
    with torch.no_grad():
        fast = model.log_prob(b)
        model.gnn.first_layer_by_prefix_sums = False
        slow = model.log_prob(b)
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k], atol=1e-9, rtol=0)
    assert float(fast["logp_wyckoff"].std()) > 0.1
