"""ML-potential stability with CHGNet (extra ``crystal-eval[stability]``): the acceptance checks of issue 13.

Small on purpose (CI relaxes about 20 crystals of <= 8 atoms, one thread): the hull is built from the
60 committed fixture crystals, once per test process (module-scoped cache).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("chgnet", reason="the optional extra crystal-eval[stability] (chgnet) is not installed")

from crystal_eval.cache import FeatureCache  # noqa: E402
from crystal_eval.cli import main  # noqa: E402
from crystal_eval.io import parse_cif  # noqa: E402
from crystal_eval.metrics import wilson_interval  # noqa: E402
from crystal_eval.stability import (  # noqa: E402
    STABILITY_KEYS,
    StabilityConfig,
    evaluate_stability,
    reference_hull,
)
from pymatgen.core import Structure  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TRAIN, TEST = DATA / "mp20_train_small.csv", DATA / "mp20_test_small.csv"
REFS = [TRAIN, TEST]
CARBON = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "carbon_24"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> FeatureCache:
    return FeatureCache(tmp_path_factory.mktemp("stability-cache"))


def cfg(**kw) -> StabilityConfig:
    return StabilityConfig(n_jobs=1, progress=False, **kw)


def fixture_crystals(*rows: int) -> list[Structure]:
    cifs = pd.read_csv(TEST)["cif"]
    return [parse_cif(cifs[i]) for i in rows]


def randomised(s: Structure, seed: int, min_distance: float = 1.0) -> Structure:
    """Same composition and cell (hence the same density), atoms at uniformly random positions."""
    rng = np.random.default_rng(seed)
    for _ in range(10_000):
        t = Structure(s.lattice, s.species, rng.random((len(s), 3)))
        if t.distance_matrix[np.triu_indices(len(t), 1)].min() >= min_distance:
            return t
    raise RuntimeError("no random placement found")


# (row of the test fixture, seed of its random-position twin): GaTe, SbNO, CdPb2(ClO)2
REAL = ((0, 0), (10, 0), (25, 3))


def test_reference_crystals_near_hull_random_positions_far_above(cache: FeatureCache):
    hull = reference_hull(REFS, cfg(), cache)
    ref = hull.reference_e_above_hull()
    assert np.isfinite(ref).all() and np.mean(ref <= 0.1) >= 0.9  # the sanity figure on 60 crystals
    real = fixture_crystals(*(row for row, _ in REAL))
    bad = [randomised(s, seed) for s, (_, seed) in zip(real, REAL, strict=True)]
    config = cfg(max_steps=60, time_limit=None)
    r_real = evaluate_stability(real, len(real), REFS, config, cache)
    r_bad = evaluate_stability(bad, len(bad), REFS, config, cache)
    e_real, e_bad = r_real.details.e_hull.to_numpy(), r_bad.details.e_hull.to_numpy()
    print(f"E_hull real {np.round(e_real, 3)}, random positions {np.round(e_bad, 3)} eV/atom")
    assert (e_real <= 0.1).all() and r_real.report["stable_rate"] == 100.0
    assert np.isfinite(e_bad).all() and np.sum(e_bad > 0.1) >= 2 and e_bad.min() > e_real.max() + 0.05
    assert r_bad.report["stable_rate"] <= 100 / 3 + 1e-9


def test_time_limit_counts_as_not_stable_and_a_larger_limit_retries(cache: FeatureCache):
    crystal = fixture_crystals(1)
    res = evaluate_stability(crystal, 4, REFS, cfg(time_limit=0.05), cache)
    d = res.details.iloc[0]
    assert d.stability_error.startswith("TimeLimitExceeded") and not d.stable and np.isnan(d.e_hull)
    meta = res.report["stability_meta"]
    assert meta["n_time_limit"] == 1 and meta["n_failed"] == 1
    assert res.report["stable_rate"] == 0.0 and res.report["sun_rate"] == 0.0
    assert d.relax_seconds > 0.05  # the time charged to it passed the limit
    split = meta["relax_seconds"]
    assert split["failed"] == {"n": 1, "seconds": d.relax_seconds} and split["total"] == d.relax_seconds
    again = evaluate_stability(crystal, 4, REFS, cfg(time_limit=None), cache)
    assert again.details.stability_error.iloc[0] == "" and again.report["stable_rate"] == 100.0
    assert again.report["sun_rate"] == 25.0  # 1 stable U.N. crystal of a draw of 4
    split = again.report["stability_meta"]["relax_seconds"]
    assert split["failed"]["n"] == 0 and split["converged"]["n"] + split["step_cap"]["n"] == 1
    assert split["total"] == again.details.relax_seconds.iloc[0] > 0


def test_a_cpu_time_limit_is_recorded_and_its_time_out_is_not_reused_on_the_wall_clock(cache: FeatureCache):
    """``time_clock="cpu"`` counts the worker's CPU time: the time-out says so and is recorded with its clock; a
    wall-clock run does not take that time-out from the cache (it relaxes again), nor does a longer limit."""
    crystal = fixture_crystals(4)  # AlAu4: about 0.7 s of CPU time (34 steps); CuNi's 2 steps took 0.05-0.07 s
    res = evaluate_stability(crystal, 1, REFS, cfg(time_limit=0.05, time_clock="cpu"), cache)
    d = res.details.iloc[0]
    assert d.stability_error == "TimeLimitExceeded: relaxation exceeded the time limit of 0.05 s of CPU time"
    assert res.report["stability_meta"]["config"]["time_limit_clock"] == "cpu"
    assert res.report["stability_meta"]["n_time_limit"] == 1 and not d.stable
    wall = evaluate_stability(crystal, 1, REFS, cfg(time_limit=0.05), cache)
    assert wall.details.stability_error.iloc[0] == "TimeLimitExceeded: relaxation exceeded the time limit of 0.05 s"
    assert wall.report["stability_meta"]["config"]["time_limit_clock"] == "wall"
    done = evaluate_stability(crystal, 1, REFS, cfg(time_limit=600.0, time_clock="cpu"), cache)
    assert done.details.stability_error.iloc[0] == "" and done.details.relax_seconds.iloc[0] > 0
    assert done.report["stability_meta"]["relax_seconds"]["clocks"] == ["cpu"]  # a finished relaxation too
    with pytest.raises(ValueError, match="time_clock must be one of"):
        cfg(time_clock="gpu").validate()


def perturbed(s: Structure, seed: int) -> Structure:
    """A slightly strained (<= 2%) and rattled (0.05 A) copy: the relaxation has work to do."""
    rng = np.random.default_rng(seed)
    t = s.copy()
    strain = rng.uniform(-0.02, 0.02, (3, 3))
    t.apply_strain(((strain + strain.T) / 2).tolist())
    cart = t.cart_coords + rng.normal(scale=0.05, size=(len(t), 3))
    return Structure(t.lattice, t.species, cart, coords_are_cartesian=True)


def test_batched_chgnet_calculator_matches_chgnet_predictions():
    from crystal_eval.potential import CHGNetBatchCalculator, CHGNetPotential

    pot = CHGNetPotential()
    crystals = [perturbed(s, i) for i, s in enumerate(fixture_crystals(0, 10, 25))]
    calc = CHGNetBatchCalculator(pot.model)
    got = calc.evaluate([calc.prepare(s.lattice.matrix, s.cart_coords, np.array(s.atomic_numbers)) for s in crystals])
    for g, ref in zip(got, pot.model.predict_structure(crystals, task="efs"), strict=True):
        assert g.energy_per_atom == pytest.approx(float(ref["e"]), abs=1e-5)
        assert np.abs(g.forces - ref["f"]).max() < 1e-4  # eV/A, float32 sums in another order
        assert np.abs(g.stress * 160.21766208 - ref["s"]).max() < 1e-3  # CHGNet's stress is in GPa


def test_batched_relaxation_agrees_with_ase_fire(cache: FeatureCache):
    """The same crystals relaxed by both optimisers (the same FIRE; CHGNet in float32, summed in another
    order): relaxed energies within 1e-3 eV/atom, step counts within 3, the same relaxed space group,
    converged or stopped at the step cap alike."""
    from crystal_eval.potential import CHGNetPotential
    from crystal_eval.stability import relax_many

    pot = CHGNetPotential()
    crystals = [perturbed(s, i) for i, s in enumerate(fixture_crystals(0, 10, 25))]
    batched = relax_many(crystals, pot, cfg(optimizer="batched", max_steps=150))
    ase = relax_many(crystals, pot, cfg(optimizer="ase", max_steps=150))
    for b, a in zip(batched, ase, strict=True):  # SbNO stops at the step cap in both
        assert b.error is None and a.error is None and b.converged == a.converged
        assert 0 < b.seconds < 60 and 0 < a.seconds < 60  # both optimisers charge each crystal its time
        assert b.energy_per_atom == pytest.approx(a.energy_per_atom, abs=1e-3)
        assert abs(b.steps - a.steps) <= 3 and b.sg_after == a.sg_after
    assert sum(b.converged for b in batched) >= 2


def test_cache_is_reused(cache: FeatureCache, monkeypatch: pytest.MonkeyPatch):
    import crystal_eval.stability as st

    crystals = fixture_crystals(2, 6)
    first = evaluate_stability(crystals, 2, REFS, cfg(), cache).report

    def boom(*a, **k):
        raise AssertionError("recomputed despite a warm cache")

    monkeypatch.setattr(st, "_work_single_points", boom)
    monkeypatch.setattr(st, "_work_relax_chunk", boom)
    second = evaluate_stability(crystals, 2, REFS, cfg(), FeatureCache(cache.path.parent)).report
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_cli_stability_end_to_end(tmp_path: Path, cache: FeatureCache, capsys):
    out, details = tmp_path / "r.json", tmp_path / "d.csv"
    args = [str(DATA / "samples"), "--train", str(TRAIN), "--test", str(TEST), "-o", str(out), "--details"]
    args += [str(details), "--stability", "--relax-steps", "20", "--jobs", "1", "-q", "--cache-dir"]
    assert main([*args, str(cache.path.parent)]) == 0
    rep = json.loads(out.read_text())
    meta = rep["stability_meta"]
    assert meta["label"] == "ML-potential stability (CHGNet 0.3.0), not DFT"
    assert set(STABILITY_KEYS) <= set(rep) and all(rep[k] is not None for k in STABILITY_KEYS)
    n_un = rep["meta"]["n_un"]
    assert meta["n_draw"] == n_un and meta["n_evaluated"] == rep["meta"]["n_unique_and_novel"]
    assert rep["sun_rate"] == pytest.approx(100 * meta["n_stable"] / n_un)
    assert rep["stable_rate"] == pytest.approx(100 * meta["n_stable"] / meta["n_evaluated"])
    iv = meta["intervals_95"]
    assert iv["stable_rate"] == pytest.approx(wilson_interval(meta["n_stable"], meta["n_evaluated"]))
    assert iv["sun_rate_0"] == pytest.approx(wilson_interval(meta["n_stable_0"], n_un))
    for k in ("stable_rate", "stable_rate_0", "sun_rate", "sun_rate_0", "sg_kept_rate"):
        lo, hi = iv[k]
        assert lo <= rep[k] <= hi, k
    d = pd.read_csv(details)
    members = d[d.in_un_members]
    assert members.e_hull.notna().sum() + (members.stability_error.fillna("") != "").sum() == len(members)
    assert d[~d.in_un_members].e_hull.isna().all()
    text = capsys.readouterr().out
    assert "ML-potential stability (CHGNet 0.3.0), not DFT" in text and "S.U.N. %" in text
    lo, hi = iv["stable_rate"]
    assert "95 % intervals (Wilson): struct. valid [" in text and f"stable [{lo:.1f}, {hi:.1f}] %" in text


@pytest.mark.shared_data
@pytest.mark.skipif(not CARBON.is_dir(), reason=f"shared data not found at {CARBON}")
def test_carbon24_against_dft_ground_truth(tmp_path: Path):
    """Polymorphs DFT puts within 0.02 eV/atom of the lowest carbon come out (meta)stable, those more than
    0.4 eV/atom above it do not. Hull: the 5 lowest-energy carbon_24 val rows (single points)."""
    val = pd.read_csv(CARBON / "val.csv.xz")
    test = pd.read_csv(CARBON / "test.csv.xz")
    e_min = min(val.energy_per_atom.min(), test.energy_per_atom.min())
    refs = tmp_path / "carbon_refs.csv"
    val.nsmallest(5, "energy_per_atom").to_csv(refs, index=False)
    test["above"] = test.energy_per_atom - e_min
    test["n_atoms"] = [len(parse_cif(c)) for c in test.cif]
    small = test[test.n_atoms <= 6].sort_values("material_id")
    near, far = small[small.above <= 0.02].head(2), small[small.above > 0.4].head(2)
    crystals = [parse_cif(c) for c in [*near.cif, *far.cif]]
    config = cfg(max_steps=60, time_limit=None)
    res = evaluate_stability(crystals, len(crystals), [refs], config, FeatureCache(tmp_path / "c"))
    assert (res.details.stability_error == "").all()  # every crystal relaxed: the verdicts are physics
    stable = res.details.stable.to_numpy()
    tp, fn = int(stable[:2].sum()), int((~stable[:2]).sum())
    fp, tn = int(stable[2:].sum()), int((~stable[2:]).sum())
    e = np.round(res.details.e_hull.to_numpy(), 3)
    print(f"carbon_24 confusion (stable: E_hull <= 0.1): near-DFT {tp} stable, {fn} not; far-DFT {fp} stable, {tn} not")
    print(f"E_hull near {e[:2]}, far {e[2:]}")
    assert tp == 2 and fp == 0


def test_volume_prerelaxation_is_an_option_with_its_own_cache_key_and_report_entry(cache: FeatureCache):
    from crystal_eval.cli import build_parser
    from crystal_eval.stability import PRERELAX, _relax_key

    assert _relax_key(cfg(prerelax_volume=True)) != _relax_key(cfg())
    base = ["x", "--train", "t.csv", "--test", "t.csv", "--stability"]
    assert build_parser().parse_args([*base, "--prerelax-volume"]).prerelax_volume
    assert not build_parser().parse_args(base).prerelax_volume
    res = evaluate_stability(fixture_crystals(2, 6), 2, REFS, cfg(prerelax_volume=True, max_steps=40), cache)
    assert res.report["stability_meta"]["config"]["prerelax_volume"] == PRERELAX
    short = res.details["shortest_distance_before_relax"].to_numpy()
    for got, c in zip(short, fixture_crystals(2, 6), strict=True):
        assert got == pytest.approx(np.sort(c.distance_matrix.ravel())[len(c)])  # the zero diagonal comes first
    scales = res.details["relax_prerelax_scale"]
    assert scales.between(0.9, 1.1).all() and (scales != 1.0).any()  # real crystals: near their volume
    plain = evaluate_stability(fixture_crystals(2, 6), 2, REFS, cfg(max_steps=40), cache)
    assert plain.report["stability_meta"]["config"]["prerelax_volume"] is None
    assert (plain.details["relax_prerelax_scale"] == 1.0).all()


def test_relaxation_time_split_by_outcome_and_shortest_distance():
    import pickle

    from crystal_eval.stability import RelaxRecord, format_stability, relax_time_split

    recs = [
        RelaxRecord(converged=True, seconds=1.0, shortest_distance=2.0),
        RelaxRecord(converged=False, seconds=3.0, shortest_distance=0.8),  # stopped at the step cap
        RelaxRecord(error="TimeLimitExceeded: ...", seconds=6.0, shortest_distance=0.5),
        RelaxRecord(converged=True, seconds=0.5),  # one atom: no shortest distance, not near-touching
        RelaxRecord(converged=True),  # cached by a version that kept no time
    ]
    split = relax_time_split(recs)
    assert split["total"] == 10.5 and split["n_unknown"] == 1
    assert split["converged"] == {"n": 2, "seconds": 1.5} and split["step_cap"] == {"n": 1, "seconds": 3.0}
    assert split["failed"] == {"n": 1, "seconds": 6.0}
    assert split["shortest_below_1A"] == {"n": 2, "seconds": 9.0}
    assert split["shortest_at_least_1A"] == {"n": 2, "seconds": 1.5}
    assert split["clocks"] == ["wall"]
    old = RelaxRecord(converged=True)
    del old.__dict__["seconds"]  # a record pickled before the field existed
    assert np.isnan(pickle.loads(pickle.dumps(old)).seconds)
    meta = {"label": "L", "config": {"hull": "ml", "reference": ["a"]}, "n_evaluated": 5, "n_draw": 5,
            "n_failed": 1, "n_time_limit": 1, "n_not_converged": 1, "relax_seconds": split}
    text = format_stability({"stability_meta": meta})
    assert ("relaxation time 10 s charged: converged 2 crystals 14 %, step cap 1 crystals 29 %, failed 1 crystals "
            "57 %; shortest distance below 1 Å: 2 crystals 86 %; 1 without a recorded time") in text
    recs[0].time_clock = recs[1].time_clock = "cpu"  # cached by a run on the CPU clock
    meta["relax_seconds"] = mixed = relax_time_split(recs)
    assert mixed["clocks"] == ["cpu", "wall"]
    assert "relaxation time 10 s (wall-clock and CPU time mixed) charged" in format_stability({"stability_meta": meta})
    for r in recs:
        r.time_clock = "cpu"
    meta["relax_seconds"] = relax_time_split(recs)
    assert "relaxation time 10 s of CPU time charged" in format_stability({"stability_meta": meta})


def conventional(s: Structure) -> Structure:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(s).get_conventional_standard_structure()


def test_primitive_cell_reduces_centred_cells_and_keeps_primitive_ones_as_given():
    from crystal_eval.stability import primitive_cell

    prim = fixture_crystals(2)[0]  # CuNi, Cmmm: 2 atoms, 4 in the conventional cell
    conv = conventional(prim)
    assert len(conv) == 2 * len(prim)
    got = primitive_cell(conv)
    assert len(got) == len(prim) and got.composition == prim.composition
    assert got.volume == pytest.approx(prim.volume, rel=1e-9)
    assert primitive_cell(prim) is prim  # nothing to reduce: the very same structure
    shaken = conv.copy()
    shaken.translate_sites([0], [0.01, 0.0, 0.0], frac_coords=False)  # breaks the centring by 0.01 Å
    assert primitive_cell(shaken) is shaken  # a tolerance of 1e-3 Å does not average it away


def test_cli_choices_are_the_documented_settings():
    """The CLI lists its --relax-cell and --relax-optimizer choices literally (its --help imports no pymatgen), so
    they must stay the keys of the settings that the report describes."""
    from crystal_eval.cli import build_parser
    from crystal_eval.stability import OPTIMIZERS, RELAX_CELLS

    choices = {a.dest: a.choices for a in build_parser()._actions if a.choices is not None}
    assert list(choices["relax_cell"]) == list(RELAX_CELLS)
    assert list(choices["relax_optimizer"]) == list(OPTIMIZERS)


def test_centred_cells_are_relaxed_as_primitive_cells_by_default(cache: FeatureCache):
    """The same crystals as conventional and as primitive cells: by default the relaxed cells are the primitive
    ones (fewer atoms), and the energies per atom agree with relaxing the conventional cells as given."""
    from crystal_eval.cli import build_parser
    from crystal_eval.stability import RELAX_CELLS, _relax_key

    prims = fixture_crystals(2, 22)  # CuNi (Cmmm), Ag3Pd (I4/mmm)
    convs = [conventional(s) for s in prims]
    assert _relax_key(cfg(relax_cell="input")) != _relax_key(cfg())
    with pytest.raises(ValueError, match="relax_cell"):
        cfg(relax_cell="conventional").validate()
    base = ["x", "--train", "t.csv", "--test", "t.csv", "--stability"]
    assert build_parser().parse_args(base).relax_cell == "primitive"
    assert build_parser().parse_args([*base, "--relax-cell", "input"]).relax_cell == "input"

    config = dict(max_steps=60, time_limit=None)
    by_prim = evaluate_stability(convs, 2, REFS, cfg(**config), cache)
    as_given = evaluate_stability(convs, 2, REFS, cfg(relax_cell="input", **config), cache)
    assert by_prim.report["stability_meta"]["config"]["relax_cell"] == RELAX_CELLS["primitive"]
    assert as_given.report["stability_meta"]["config"]["relax_cell"] == RELAX_CELLS["input"]
    assert by_prim.details.relax_atoms.tolist() == [len(s) for s in prims]
    assert as_given.details.relax_atoms.tolist() == [len(s) for s in convs]
    assert by_prim.details.relax_converged.all() and as_given.details.relax_converged.all()
    np.testing.assert_allclose(by_prim.details.relax_energy_per_atom, as_given.details.relax_energy_per_atom,
                               atol=2e-3)  # fmt: skip
    np.testing.assert_allclose(by_prim.details.e_hull, as_given.details.e_hull, atol=2e-3)
