"""Ancestral sampling reproduces the factors' distributions; sampler and scorer agree; hard constraints hold.

Goodness of fit: for every factor, the observed count of each category over all sampled decisions is compared
with its expectation under the model's conditional distributions at the states actually visited (computed by the
scoring path, teacher-forced on the samples): z = (O - E) / sqrt(sum p (1 - p)) for every category with E >= 5.
The threshold |z| < 5 has a false-alarm probability below 1e-4 over the few hundred categories tested.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from crystal_ar_model.sampling import sample, sample_global

from .test_masks import capacity_brute_force, small_model

Z_MAX = 5.0


def _z_scores(observed: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Per category: (O - E) / sqrt(sum p (1 - p)) over decisions; ``observed`` (n,) category index, ``probs``
    (n, K) the distribution of each decision. Only categories with E >= 5 are returned."""
    e = probs.sum(0)
    var = (probs * (1 - probs)).sum(0)
    o = torch.bincount(observed, minlength=probs.shape[1]).double()
    keep = e >= 5
    return (o[keep] - e[keep]) / var[keep].sqrt()


@pytest.fixture(scope="module")
def drawn():  # noqa: ANN201
    model = small_model(8, (1, 3, 8, 12, 26, 29), seed=11)
    out = sample(model, 1500, torch.Generator().manual_seed(0), rescore=True)  # logp by teacher forcing
    return model, out


def test_sampler_and_scorer_agree(drawn) -> None:  # noqa: ANN001
    """Without constraints at temperature 1 the log-probability accumulated while drawing equals the re-scored
    log-likelihood of the drawn construction sequence (float64). The tolerance covers the polygon densities,
    whose inverse map is solved iteratively over a batch (differences up to ~1e-5 nats between the sampling batch
    and the scoring batch); without polygon sites the two agree to 1e-9."""
    model, out = drawn
    assert torch.isfinite(out.logp["logp_total"]).all()
    torch.testing.assert_close(out.logp_proposal, out.logp["logp_total"], atol=1e-4, rtol=0)
    from crystal_ar_model.shapes import shape_table

    dims = shape_table().dim[model.site_pieces(out.as_batch())[0]]
    n = out.ptr[1:] - out.ptr[:-1]
    crystal = torch.repeat_interleave(torch.arange(len(out)), n)
    has_polygon = torch.zeros(len(out), dtype=torch.bool).index_fill(0, crystal[dims == 2], True)
    torch.testing.assert_close(out.logp_proposal[~has_polygon], out.logp["logp_total"][~has_polygon], atol=1e-9, rtol=0)


def test_site_factors_goodness_of_fit(drawn) -> None:  # noqa: ANN001
    model, out = drawn
    with torch.no_grad():
        t = model.site_terms(out.as_batch(), full=True)
    p_stop = t["lp_stop_all"].exp()
    is_end = (t["states"].target < 0).long()
    z = {"stop": _z_scores(1 - is_end, p_stop)}
    z["wyckoff"] = _z_scores(t["target_w"], t["lp_w_all"].exp())
    v = model.num_elements
    pa = torch.zeros(t["lp_a_all"].shape[0], v + 1, dtype=torch.float64)
    cols = torch.where(t["elements_a"] >= 0, t["elements_a"], torch.full_like(t["elements_a"], v))
    pa.scatter_add_(1, cols, t["lp_a_all"].exp().nan_to_num(0.0))
    z["element"] = _z_scores(t["target_a"], pa[:, :v])
    multi = torch.isfinite(t["lp_s_all"]).sum(-1) > 1
    z["shape"] = _z_scores(t["target_s"][multi], t["lp_s_all"][multi].exp())
    for k, zz in z.items():
        assert zz.numel() >= 2, k
        assert float(zz.abs().max()) < Z_MAX, (k, zz)
    # the decisions were really random: the stop and Wyckoff distributions are far from degenerate
    assert 0.05 < float(p_stop[:, 0].mean()) < 0.95


def test_global_factors_goodness_of_fit() -> None:
    """(G, C) from the mixture of both orders against the exact joint p(G, C) over all pairs (4 elements)."""
    model = small_model(3, (1, 8, 26, 79), seed=5)
    n = 4000
    sg, comp, lat, lp = sample_global(model, n, torch.Generator().manual_seed(1))
    sets = [s for k in range(1, 5) for s in itertools.combinations(range(4), k)]
    pairs = [(g, s) for g in range(1, 231) for s in sets]
    c = torch.zeros(len(pairs), 4, dtype=torch.float64)
    for i, (_, s) in enumerate(pairs):
        c[i, list(s)] = 1.0
    b = SimpleNamespace(
        space_group=torch.tensor([g for g, _ in pairs]),
        comp=c,
        lattice=torch.tensor([[5.0, 5.0, 5.0, 90.0, 90.0, 90.0]] * len(pairs), dtype=torch.float64),
    )
    with torch.no_grad():
        t = model._global_terms(b)
    joint = (torch.logsumexp(torch.stack([t["g"] + t["c_g"], t["c"] + t["g_c"]]), 0) - math.log(2)).exp()
    joint = joint.reshape(230, 15)
    set_index = {s: i for i, s in enumerate(sets)}
    ci = torch.tensor([set_index[tuple(np.nonzero(row)[0].tolist())] for row in comp.numpy()])
    for observed, marginal in ((sg - 1, joint.sum(1)), (ci, joint.sum(0))):
        zz = _z_scores(observed, marginal.expand(n, -1))
        assert zz.numel() >= 5 and float(zz.abs().max()) < Z_MAX
    cap = torch.tensor([capacity_brute_force(g, 3) for g in range(1, 231)])
    assert bool((comp.sum(1).long() <= cap[sg - 1]).all())  # every sampled (G, C) admits a crystal
    # the proposal log-probability is the exact joint (plus the lattice mass)
    lp_gc = joint.log()[sg - 1, ci]
    lat_lp = model.lattice(sg, comp.double()).log_prob(lat)
    torch.testing.assert_close(lp, lp_gc + lat_lp, atol=1e-9, rtol=0)


def test_hard_constraints_hold() -> None:
    model = small_model(6, (1, 3, 8, 12, 26, 29), seed=2)
    groups = torch.zeros(230, dtype=torch.bool)
    groups[[0, 13, 62, 193, 224]] = True  # P1, P2_1/c, Cmcm, P6_3/mmc, Pm-3m
    allowed = torch.tensor([True, True, True, False, True, False])
    required = torch.tensor([False, False, True, False, False, False])
    out = sample(
        model,
        300,
        torch.Generator().manual_seed(3),
        space_groups=groups,
        elements=allowed,
        required=required,
        max_atoms=5,
        temperature=0.8,
    )
    assert bool(groups[out.space_group - 1].all())
    comp = out.comp > 0.5
    assert bool((comp <= allowed).all()) and bool(comp[:, 2].all())
    from crystal_ar_model.periodic import group_geometry

    n = out.ptr[1:] - out.ptr[:-1]
    crystal = torch.repeat_interleave(torch.arange(len(out)), n)
    prim = torch.zeros(len(out), dtype=torch.long).index_add(0, crystal, out.mult)
    prim = prim // group_geometry().centring[out.space_group - 1]
    assert int(prim.max()) <= 5
    present = torch.zeros_like(comp)
    present[crystal, out.element] = True
    assert bool((present == comp).all())  # every element of C is placed, and only those
    for c in out.crystals()[:50]:  # AsuCrystal validates positions and pieces; the orbits expand exactly
        assert len(c.to_structure()) == c.num_atoms
    assert torch.isfinite(out.logp["logp_total"]).all()
