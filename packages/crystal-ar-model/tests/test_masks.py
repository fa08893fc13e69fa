"""Masks and normalisation by exhaustive enumeration, against independent brute-force code (float64).

For small settings every legal construction sequence (normal-form order, 0-D positions once, elements from C,
stop only with all of C present, atom budget) is enumerated by a plain depth-first search written here, without
the model's mask code. The model must give every one of them positive probability, its masks must allow exactly
the moves that can still be completed, and the probabilities of all complete sequences (Wyckoff, element, shape
and stop factors) must sum to 1.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import asu_geometry as ag
import pytest
import torch
from crystal_ar_model.config import ModelConfig
from crystal_ar_model.factors import LatticeBins
from crystal_ar_model.masks import budget_tables
from crystal_ar_model.model import CrystalARModel
from crystal_ar_model.periodic import group_geometry
from crystal_ar_model.shapes import anchored_shapes, is_polar, shape_table

BINS = LatticeBins((2.0, 2.0, 2.0, 60.0, 60.0, 0.0), (20.0, 20.0, 40.0, 120.0, 125.0, 180.0), 10, 10)
LATTICE = {  # a plausible conventional lattice per test group
    2: (5.1, 6.2, 7.3, 80.0, 100.0, 110.0),
    5: (6.1, 5.2, 7.3, 90.0, 104.0, 90.0),
    15: (6.1, 5.2, 7.3, 90.0, 104.0, 90.0),
    25: (4.1, 5.2, 6.3, 90.0, 90.0, 90.0),
}


def small_model(max_atoms: int, vocabulary: tuple[int, ...], seed: int = 0) -> CrystalARModel:
    cfg = ModelConfig(
        hidden=16,
        layers=2,
        n_coarse=10,
        n_fine=10,
        rff_features=4,
        max_atoms=max_atoms,
        gnn_hidden=16,
        gnn_filters=16,
        gnn_layers=2,
        rbf=8,
        fourier=2,
        shape_fourier=2,
        coord_hidden=8,
        coord_layers=1,
    )
    torch.manual_seed(seed)
    m = CrystalARModel(cfg, BINS, vocabulary).double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # make every categorical clearly non-uniform
        for name, p in m.named_parameters():
            if "scale" in name:
                p.fill_(0.7)
            elif p.dim() >= 1:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return m


# ------------------------------------------------------------------------------ independent reference code
def anchoring_active() -> bool:
    return bool((shape_table().piece_count[:, 1] > 0).any())


def n_pieces(sg: int, wp: object, first: bool) -> int:
    if first and anchoring_active() and is_polar(sg):
        return len(anchored_shapes(wp))
    return len(wp.shapes)  # type: ignore[attr-defined]


def legal_sequences(sg: int, comp: tuple[int, ...], budget: int) -> list[tuple[tuple[int, int, int], ...]]:
    """Every complete legal construction sequence ((position index in G, element, piece), ...)."""
    g = ag.space_group(sg)
    cent = int(group_geometry().centring[sg - 1])
    out: list[tuple[tuple[int, int, int], ...]] = []

    def rec(seq: tuple[tuple[int, int, int], ...], cost: int) -> None:
        if seq and {a for _, a, _ in seq} == set(comp):
            out.append(seq)
        for wi, wp in enumerate(g.wyckoff_positions):
            pm = wp.multiplicity // cent
            if cost + pm > budget:
                continue
            if seq and wi < seq[-1][0]:
                continue  # positions in table order
            if wp.dim == 0 and any(w == wi for w, _, _ in seq):
                continue  # a 0-D position holds one site
            for a in comp:
                if seq and wi == seq[-1][0] and a < seq[-1][1]:
                    continue  # same position: elements in increasing Z
                for s in range(n_pieces(sg, wp, not seq)):
                    rec((*seq, (wi, a, s)), cost + pm)

    rec((), 0)
    return out


def capacity_brute_force(sg: int, budget: int) -> int:
    """The most distinct elements group ``sg`` can hold: the most sites (0-D positions once) within the budget."""
    g = ag.space_group(sg)
    cent = int(group_geometry().centring[sg - 1])
    zero = sorted(wp.multiplicity // cent for wp in g.wyckoff_positions if wp.dim == 0)
    free = [wp.multiplicity // cent for wp in g.wyckoff_positions if wp.dim > 0]
    best = 0
    for r in range(len(zero) + 1):
        for chosen in itertools.combinations(zero, r):
            left = budget - sum(chosen)
            if left < 0:
                continue
            extra = left // min(free) if free else 0
            best = max(best, r + extra)
    return best


# --------------------------------------------------------------------------------------------------- tests
def _batch(model: CrystalARModel, sg: int, comp: tuple[int, ...], seqs: list) -> SimpleNamespace:
    table = shape_table()
    g = ag.space_group(sg)
    v = model.num_elements
    wy, el, sh, fr, mu, ptr = [], [], [], [], [], [0]
    for seq in seqs:
        for k, (wi, a, s) in enumerate(seq):
            wp = g.wyckoff_positions[wi]
            anchored = k == 0 and anchoring_active() and is_polar(sg)
            p = int(table.piece_offset[wp.index, int(anchored)]) + s
            verts = table.vertices[p][table.vertex_mask[p]]
            # a point on the piece (different sites of one piece get different points)
            w8 = torch.linspace(1.0, 2.0, verts.shape[0], dtype=torch.float64) ** (k + 1)
            fr.append((verts * w8[:, None]).sum(0) / w8.sum())
            wy.append(wp.index)
            el.append(a)
            sh.append(s)
            mu.append(wp.multiplicity)
        ptr.append(len(wy))
    n = len(seqs)
    c = torch.zeros(n, v, dtype=torch.float64)
    c[:, list(comp)] = 1.0
    return SimpleNamespace(
        space_group=torch.full((n,), sg),
        lattice=torch.tensor([LATTICE[sg]] * n, dtype=torch.float64),
        comp=c,
        ptr=torch.tensor(ptr),
        wyckoff=torch.tensor(wy),
        element=torch.tensor(el),
        shape=torch.tensor(sh),
        frac=torch.stack(fr),
        mult=torch.tensor(mu),
        num_graphs=n,
    )


CASES = [  # (group, composition space as vocabulary indices, budget)
    (2, (0, 2), 3),  # P-1: eight 0-D positions and the general position
    (15, (0, 1), 6),  # C2/c: centred (budget counts the primitive cell), a 1-D position with two pieces
    (15, (1,), 6),
    (25, (0, 1, 2), 4),  # Pmm2: polar, many 1-D and 2-D positions
]


@pytest.mark.parametrize(("sg", "comp", "budget"), CASES)
def test_construction_sequences_sum_to_one(sg: int, comp: tuple[int, ...], budget: int) -> None:
    model = small_model(budget, (1, 8, 26), seed=sg)
    seqs = legal_sequences(sg, comp, budget)
    assert len(seqs) > 10
    b = _batch(model, sg, comp, seqs)
    with torch.no_grad():
        t = model.site_terms(b, full=True)
    discrete = t["wyckoff"] + t["element"] + t["shape"] + t["stop"]
    assert bool(torch.isfinite(discrete).all()), "a legal sequence has probability 0 (over-masking)"
    assert abs(float(torch.logsumexp(discrete, 0))) < 1e-9, "the masses of all legal sequences must sum to 1"
    assert float(discrete.max() - discrete.min()) > 1.0  # not trivially uniform
    # every decision is masked exactly: allowed = can still be completed (brute force from the enumeration)
    nxt: dict[tuple, set] = {}
    complete = set(seqs)
    for s in seqs:
        for k in range(len(s)):
            nxt.setdefault(s[:k], set()).add(s[k])
    states = t["states"]
    atom_states = t["atom_states"].tolist()
    row_of = {int(i): r for r, i in enumerate(atom_states)}
    for i in range(states.size):
        c, k = int(states.crystal[i]), int(states.length[i])
        prefix = seqs[c][:k]
        stop_ok = bool(torch.isfinite(t["lp_stop_all"][i, 0]))
        cont_ok = bool(torch.isfinite(t["lp_stop_all"][i, 1]))
        assert stop_ok == (prefix in complete), (prefix, "stop")
        assert cont_ok == bool(nxt.get(prefix)), (prefix, "continue")
        if i in row_of:
            r = row_of[i]
            allowed_w = set(torch.isfinite(t["lp_w_all"][r]).nonzero().flatten().tolist())
            assert allowed_w == {w for w, _, _ in nxt[prefix]}, prefix
            w_next = seqs[c][k][0]
            allowed_a = set(torch.isfinite(t["lp_a_all"][r]).nonzero().flatten().tolist())  # columns of C
            assert {comp[j] for j in allowed_a} == {a for w, a, _ in nxt[prefix] if w == w_next}, prefix
            lp_s = t["lp_s_all"][r]
            assert abs(float(torch.logsumexp(lp_s, 0))) < 1e-12


def test_budget_tables_against_brute_force() -> None:
    for budget in (3, 6, 20):
        cap = budget_tables(20).max_elements(budget)
        for sg in (1, 2, 5, 15, 25, 47, 62, 139, 166, 191, 221, 225, 227, 229, 230):
            assert int(cap[sg - 1]) == min(capacity_brute_force(sg, budget), 20), (sg, budget)


def test_global_factors_sum_to_one_with_capacity_masks() -> None:
    """p(G, C) over all 230 groups and all 15 non-empty sets of a 4-element vocabulary, budget 3: exactly the
    pairs whose group can hold |C| elements have mass, and the masses sum to 1; p(G), p(G | C), p(C | G), p(C)
    each sum to 1 over their masked support."""
    model = small_model(3, (1, 8, 26, 79), seed=3)
    sets = [s for k in range(1, 5) for s in itertools.combinations(range(4), k)]
    pairs = [(g, s) for g in range(1, 231) for s in sets]
    n = len(pairs)
    comp = torch.zeros(n, 4, dtype=torch.float64)
    for i, (_, s) in enumerate(pairs):
        comp[i, list(s)] = 1.0
    b = SimpleNamespace(
        space_group=torch.tensor([g for g, _ in pairs]),
        comp=comp,
        lattice=torch.tensor([[5.0, 5.0, 5.0, 90.0, 90.0, 90.0]] * n, dtype=torch.float64),
    )
    with torch.no_grad():
        t = model._global_terms(b)
    joint = torch.logsumexp(torch.stack([t["g"] + t["c_g"], t["c"] + t["g_c"]]), 0) - math.log(2)
    cap = torch.tensor([capacity_brute_force(g, 3) for g in range(1, 231)])
    feasible = torch.tensor([len(s) <= int(cap[g - 1]) for g, s in pairs])
    assert {0, 1, 2, 3} <= set(cap.tolist())  # the budget binds: some groups cannot hold even one element
    assert bool(torch.isfinite(joint[feasible]).all()) and bool(torch.isinf(joint[~feasible]).all())
    assert abs(float(torch.logsumexp(joint, 0))) < 1e-9
    lp_g = t["g"].reshape(230, 15)[:, 0]
    assert abs(float(torch.logsumexp(lp_g, 0))) < 1e-12
    assert bool(torch.isinf(lp_g[cap == 0]).all()) and bool(torch.isfinite(lp_g[cap > 0]).all())
    lp_c_g = t["c_g"].reshape(230, 15)  # (only where G can hold an element: elsewhere p(G) = 0)
    held = cap > 0
    assert torch.allclose(
        torch.logsumexp(lp_c_g[held], 1), torch.zeros(int(held.sum()), dtype=torch.float64), atol=1e-12
    )
    lp_g_c = t["g_c"].reshape(230, 15)  # (only for sets some group can hold: elsewhere p(C) = 0)
    size = torch.tensor([len(s) for s in sets])
    fits = size <= int(cap.max())
    assert torch.allclose(
        torch.logsumexp(lp_g_c[:, fits], 0), torch.zeros(int(fits.sum()), dtype=torch.float64), atol=1e-12
    )
    lp_c = t["c"].reshape(230, 15)[0]
    assert abs(float(torch.logsumexp(lp_c, 0))) < 1e-12
    assert bool(torch.isinf(lp_c[~fits]).all()) and bool(torch.isfinite(lp_c[fits]).all())
