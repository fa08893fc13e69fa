"""In-filling masks (exact, against brute force), the sampler under constraints, ``--min-distance`` and its
distance computation (against pymatgen), and the device-independent categorical draws."""

from __future__ import annotations

import math

import asu_geometry as ag
import numpy as np
import pytest
import torch
from crystal_ar_model.constraints import partial_from_dict
from crystal_ar_model.distances import nearest_distances
from crystal_ar_model.factors import draw_categorical
from crystal_ar_model.infill import infill_moves, prepare_partial
from crystal_ar_model.masks import BuildState, candidate_positions
from crystal_ar_model.periodic import group_geometry
from crystal_ar_model.sampling import sample

from .test_masks import legal_sequences, small_model

VOCAB = (1, 8, 26)  # H, O, Fe -> vocabulary indices 0, 1, 2
SYMBOL = {0: "H", 1: "O", 2: "Fe"}

# (group, composition space (vocabulary indices), budget, partial sites as (element index, frac coords))
INFILL_CASES = [
    (2, (0, 2), 3, [(2, (0.0, 0.5, 0.0))]),  # P-1: Fe on the 0-D position 1c
    (15, (0, 1), 6, [(1, (0.0, 0.3, 0.25))]),  # C2/c: O on 4e (1-D), centred
    (15, (0, 1, 2), 6, [(2, (0.0, 0.5, 0.0)), (0, (0.25, 0.25, 0.0))]),  # C2/c: Fe 4b and H 4c (0-D)
    (25, (0, 1, 2), 4, [(1, (0.0, 0.5, 0.3)), (0, (0.0, 0.0, 0.7))]),  # Pmm2 (polar): H 1a anchored, O 1b
    (25, (0, 1, 2), 4, [(2, (0.5, 0.0, 0.6))]),  # Pmm2: Fe on 1c, new sites only after it
]


def _compatible(seq: tuple[tuple[int, int], ...], partial: list[tuple[int, int]], polar: bool) -> bool:
    """Reference: the sequence holds the partial moves as a subsequence, each at the first occurrence of its
    (position, element) after the previous one (what the forced moves produce); in a polar group the first
    partial move is site 0."""
    i = -1
    for k, p in enumerate(partial):
        try:
            j = seq.index(p, i + 1)
        except ValueError:
            return False
        if k == 0 and polar and j != 0:
            return False
        i = j
    return True


def _state(sg: int, seq: list[tuple[int, int]], comp: tuple[int, ...], budget: int, v: int) -> BuildState:
    g = ag.space_group(sg)
    off = g.wyckoff_positions[0].index
    cent = int(group_geometry().centring[sg - 1])
    c = torch.zeros(1, v, dtype=torch.bool)
    c[0, list(comp)] = True
    present = torch.zeros(1, v, dtype=torch.bool)
    for _, a in seq:
        present[0, a] = True
    count = sum(g.wyckoff_positions[w].multiplicity // cent for w, _ in seq)
    last_w = off + seq[-1][0] if seq else -1
    last_e = seq[-1][1] if seq else -1
    t = lambda x: torch.tensor([x])  # noqa: E731
    return BuildState(t(sg), t(last_w), t(last_e), t(count), c, present, t(budget))


@pytest.mark.parametrize(("sg", "comp", "budget", "sites"), INFILL_CASES)
def test_infill_masks_are_exact(sg: int, comp: tuple[int, ...], budget: int, sites: list) -> None:
    """The sequences the in-filling masks allow are exactly the legal sequences (brute force) that contain the
    partial sites as forced moves; every reachable state has a legal move or may stop (no dead end)."""
    model = small_model(budget, VOCAB, seed=sg)
    g = ag.space_group(sg)
    part = prepare_partial(partial_from_dict({"space_group": sg, "sites": [
        {"element": SYMBOL[a], "frac_coords": list(x)} for a, x in sites]}), model, budget)
    off = g.wyckoff_positions[0].index
    forced = [(int(w) - off, int(a)) for w, a in zip(part.wyckoff, part.element, strict=True)]
    ref = {tuple((w, a) for w, a, _ in s) for s in legal_sequences(sg, comp, budget)}
    ref = {s for s in ref if _compatible(s, forced, g.is_polar)}
    assert ref, "the case admits no completion"
    v = model.num_elements
    sc, se = part.suffix_cost(), part.suffix_elements()
    found: set[tuple[tuple[int, int], ...]] = set()

    def walk(seq: list[tuple[int, int]], next_p: int) -> None:
        st = _state(sg, seq, comp, budget, v)
        pos, ok = candidate_positions(model.tables, st.space_group)
        mv = infill_moves(part, st, torch.tensor([next_p]), pos, ok, sc, se, torch.tensor([len(seq)]))
        cols, js = torch.nonzero(mv.legal[0], as_tuple=True)
        moves = [(int(c), int(mv.elements[0, j])) for c, j in zip(cols, js, strict=True)]
        assert moves or bool(mv.stop_ok[0]), ("dead end", seq)
        if bool(mv.stop_ok[0]):
            found.add(tuple(seq))
        for w, a in moves:
            placed = next_p < part.size and (w, a) == forced[next_p]
            walk([*seq, (w, a)], next_p + int(placed))

    walk([], 0)
    assert found == ref


def test_infill_sampler_places_the_sites_and_scores_exactly() -> None:
    """Polar P6_3mc, lattice given, with constraints: the forced sites are in every sample, the lattice is the
    given one, and the log-likelihood accumulated while drawing is the teacher-forced one, per factor."""
    model = small_model(10, (1, 8, 26, 30), seed=4)
    user = {"space_group": 186, "lattice": [3.25, 3.25, 5.2, 90, 90, 120],
            "sites": [{"element": "Zn", "frac_coords": [1 / 3, 2 / 3, 0.1]},
                      {"element": "O", "frac_coords": [2 / 3, 1 / 3, 0.98]}]}
    part = prepare_partial(partial_from_dict(user), model, 10)
    assert part.anchored and part.translation[2] != 0
    out = sample(model, 200, torch.Generator().manual_seed(0), partial=part, max_atoms=10, temperature=0.8,
                 elements=torch.tensor([True, True, True, True]))
    want = part.sites(model.vocabulary)
    for c in out.crystals():
        assert c.space_group == 186 and c.lattice == tuple(user["lattice"])
        assert all(s in c.sites for s in want), c
        assert c.sites[0] == want[0]  # the partial crystal provides the anchored site 0
    with torch.no_grad():
        ref = model.log_prob(out.as_batch())
    for k, v in ref.items():
        torch.testing.assert_close(out.logp[k], v.double(), atol=1e-6, rtol=0)


def test_accumulated_logp_under_constraints() -> None:
    model = small_model(6, (1, 3, 8, 12, 26, 29), seed=2)
    groups = torch.zeros(230, dtype=torch.bool)
    groups[[0, 13, 62, 193, 224]] = True
    out = sample(model, 300, torch.Generator().manual_seed(3), space_groups=groups, max_atoms=5, temperature=1.3,
                 required=torch.tensor([False, False, True, False, False, False]))
    with torch.no_grad():
        ref = model.log_prob(out.as_batch())
    for k, v in ref.items():
        torch.testing.assert_close(out.logp[k], v.double(), atol=1e-4, rtol=0)
    assert float((out.logp_proposal - out.logp["logp_total"]).abs().max()) > 1e-3  # constraints change the proposal


# ------------------------------------------------------------------------------------------- distances
def _brute_nearest(crystal: ag.AsuCrystal) -> np.ndarray:
    """Per site: the shortest distance from its representative to any other atom of the conventional cell
    (pymatgen's periodic distances; the atom itself and its own lattice translates excluded)."""
    from asu_geometry.writers import expand_sites
    from pymatgen.core import Lattice

    frac, _, _ = expand_sites([crystal])
    lat = Lattice.from_parameters(*crystal.lattice)
    prim = group_geometry().primitive_basis[crystal.space_group - 1].numpy()
    out = []
    for s in crystal.sites:
        x = np.asarray(s.frac_coords)
        d = lat.get_all_distances(x[None, :], frac)[0]
        u = (frac - x) @ np.linalg.inv(prim)  # primitive coordinates of the differences
        itself = np.abs(u - np.round(u)).max(1) < 1e-12  # x and its primitive lattice translates
        out.append(d[~itself].min() if (~itself).any() else np.inf)
    return np.array(out)


def test_nearest_distances_match_pymatgen() -> None:
    model = small_model(8, (1, 8, 26), seed=9)
    groups = torch.zeros(230, dtype=torch.bool)
    groups[[0, 1, 11, 13, 62, 138, 165, 193, 220, 224, 226]] = True  # incl. R-3m, Fd-3m, skewed cells
    out = sample(model, 120, torch.Generator().manual_seed(5), space_groups=groups)
    pieces, _ = model.site_pieces(out.as_batch())
    n = out.ptr[1:] - out.ptr[:-1]
    crystal = torch.repeat_interleave(torch.arange(len(out)), n)
    checked = 0
    for c_i, c in enumerate(out.crystals()):
        ref = _brute_nearest(c)
        rows = torch.nonzero(crystal == c_i).squeeze(-1)
        for k, r in enumerate(rows.tolist()):
            others = rows[rows != r]
            d = nearest_distances(out.frac[r : r + 1], pieces[r : r + 1], torch.zeros(1, dtype=torch.long),
                                  out.frac[others], pieces[others], torch.zeros(len(others), dtype=torch.long),
                                  out.space_group[c_i : c_i + 1], out.lattice[c_i : c_i + 1])
            assert math.isclose(float(d[0]), float(ref[k]), rel_tol=1e-9, abs_tol=1e-7) or (
                math.isinf(float(d[0])) and math.isinf(ref[k])), (c, k, float(d[0]), ref[k])
            checked += 1
    assert checked > 100


def test_min_distance_is_met_or_reported() -> None:
    model = small_model(8, (1, 8, 26), seed=9)
    out = sample(model, 150, torch.Generator().manual_seed(6), min_distance=1.0)
    assert out.min_distance_tries is not None and out.min_distance_ok is not None
    assert int(out.min_distance_tries.sum()) > 0  # the threshold was active
    for c, ok in zip(out.crystals(), out.min_distance_ok.tolist(), strict=True):
        d = _brute_nearest(c)
        if ok:
            assert d.min() >= 1.0 - 1e-9, (c, d)
    # the reported log-likelihood stays the model's
    with torch.no_grad():
        ref = model.log_prob(out.as_batch())["logp_total"]
    torch.testing.assert_close(out.logp["logp_total"], ref.double(), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------- categorical draws
def test_draw_categorical() -> None:
    p = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3]], dtype=torch.float64).expand(200_000, 5)
    idx = draw_categorical(p, torch.Generator().manual_seed(0))
    counts = torch.bincount(idx, minlength=5).double()
    assert counts[0] == 0 and counts[2] == 0
    expected = p[0] * idx.numel()
    z = (counts - expected)[[1, 3, 4]] / (expected[[1, 3, 4]] * (1 - p[0, [1, 3, 4]])).sqrt()
    assert float(z.abs().max()) < 5
    # the same generator state gives the same draws; unnormalised weights are fine
    a = draw_categorical(p[:10] * 7.0, torch.Generator().manual_seed(1))
    b = draw_categorical(p[:10], torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
