"""The whole evaluation through the Python API (small committed fixture, one process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from crystal_eval import METRIC_KEYS, EvalConfig, evaluate, evaluate_detailed
from crystal_eval.cache import FeatureCache
from crystal_eval.io import InputError, parse_cif
from crystal_eval.metrics import wilson_interval
from pymatgen.core import Lattice, Structure

DATA = Path(__file__).resolve().parent / "data"

TRAIN, TEST = DATA / "mp20_train_small.csv", DATA / "mp20_test_small.csv"


def fixture_structures() -> list[Structure | None]:
    import pandas as pd

    test = [parse_cif(c) for c in pd.read_csv(TEST)["cif"][:8]]
    train = [parse_cif(c) for c in pd.read_csv(TRAIN)["cif"][:2]]
    clash = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.1, 0, 0]])  # 0.4 Å apart
    return [*test, *train, test[0].copy(), clash, None]


def test_evaluate_api_all_keys_and_counts(cache_dir: Path):
    structs = fixture_structures()
    res = evaluate_detailed(structs, TRAIN, TEST, EvalConfig(n_jobs=1, progress=False), FeatureCache(cache_dir))
    rep = res.report
    assert set(METRIC_KEYS) <= set(rep)
    meta = rep["meta"]
    assert meta["n_samples"] == 13 and meta["n_constructed"] == 12
    # 11 of 13 are structurally valid: the 0.4 Å clash and the None are not
    assert rep["structural_validity"] == pytest.approx(100 * 11 / 13)
    d = res.details
    assert not d.loc[10 + 2, "constructed"] and not d.loc[11, "struct_valid"]
    # the two training crystals are not novel, the repeated test crystal is not unique
    un = d[d.in_un_subset]
    assert set(un.index[~un.novel.astype(bool)]) == {8, 9}
    assert sorted(un.index[~un.unique.astype(bool)].tolist()) in ([0], [10])
    for k in METRIC_KEYS:
        assert rep[k] is not None, k
    assert 0 <= rep["jsd_space_group"] <= 0.8327 and 0 <= rep["jsd_wyckoff_dim"] <= 0.8327
    assert meta["warnings"]  # fewer than 1000 valid
    # each rate's 95 % interval is the Wilson interval of its own counts, and holds the rate
    iv = meta["intervals_95"]
    assert iv["structural_validity"] == pytest.approx(wilson_interval(11, 13))
    assert iv["un_rate"] == pytest.approx(wilson_interval(meta["n_unique_and_novel"], meta["n_un"]))
    assert iv["compositional_validity"] == pytest.approx(wilson_interval(meta["n_comp_valid"], 13))
    for k, (lo, hi) in iv.items():
        assert lo <= rep[k] <= hi, k


def test_samples_equal_to_test_set_give_zero_distances(cache_dir: Path):
    import pandas as pd

    structs = [parse_cif(c) for c in pd.read_csv(TEST)["cif"]]
    every = {k: "all" for k in METRIC_KEYS[3:]}  # all built crystals = exactly the test set
    rep = evaluate(structs, TRAIN, TEST, subsets=every, n_jobs=1, progress=False, cache_dir=cache_dir)
    for k in ("wasserstein_density", "wasserstein_num_elements", "jsd_space_group", "jsd_wyckoff_dim"):
        assert rep[k] == pytest.approx(0.0, abs=1e-9), k
    assert rep["cmd_crystalnn"] == pytest.approx(0.0, abs=1e-9)
    assert rep["un_rate"] == pytest.approx(100.0)


def test_seed_and_subset_parameters(cache_dir: Path):
    structs = fixture_structures()
    a = evaluate(structs, TRAIN, TEST, n_eval=4, n_un=4, seed=0, n_jobs=1, progress=False, cache_dir=cache_dir)
    b = evaluate(structs, TRAIN, TEST, n_eval=4, n_un=4, seed=0, n_jobs=1, progress=False, cache_dir=cache_dir)
    assert a == b  # fixed seed, warm cache: same report
    assert a["meta"]["n_eval"] == 4
    c = evaluate(
        structs,
        TRAIN,
        TEST,
        subsets={"diversity_structure": "all", "cmd_crystalnn": "un"},
        n_jobs=1,
        progress=False,
        cache_dir=None,
    )
    assert c["meta"]["config"]["subsets"]["diversity_structure"] == "all"
    with pytest.raises(ValueError, match="subset"):
        evaluate(structs, TRAIN, TEST, subsets={"jsd_space_group": "bogus"}, cache_dir=None)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(structs, TRAIN, TEST, subsets={"nope": "all"}, cache_dir=None)


def test_cache_is_used(cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    structs = fixture_structures()[:6]
    cfg = EvalConfig(n_jobs=1, progress=False)
    first = evaluate_detailed(structs, TRAIN, TEST, cfg, FeatureCache(cache_dir)).report
    import crystal_eval.evaluation as ev

    def boom(*a, **k):
        raise AssertionError("recomputed despite a warm cache")

    monkeypatch.setattr(ev, "_work_reference", boom)
    monkeypatch.setattr(ev, "_work_rich", boom)
    monkeypatch.setattr(ev, "_work_basic", boom)
    monkeypatch.setattr(ev, "_work_formula", boom)
    second = evaluate_detailed(structs, TRAIN, TEST, EvalConfig(n_jobs=1, progress=False), FeatureCache(cache_dir))
    assert second.report == first


def test_missing_reference_and_empty_samples(tmp_path: Path):
    with pytest.raises(InputError, match="reference file not found"):
        evaluate(fixture_structures()[:2], tmp_path / "train.csv", TEST, cache_dir=None, progress=False)
    with pytest.raises(InputError, match="no generated crystals"):
        evaluate([], TRAIN, TEST, cache_dir=None, progress=False)


def test_parallel_pool_gives_same_answer(cache_dir: Path):
    structs = fixture_structures()[8:]
    serial = evaluate(structs, TRAIN, TEST, n_jobs=1, progress=False, cache_dir=None)
    par = evaluate(structs, TRAIN, TEST, n_jobs=2, progress=False, cache_dir=None)
    assert {k: serial[k] for k in METRIC_KEYS} == pytest.approx({k: par[k] for k in METRIC_KEYS})


def test_default_population_is_the_un_crystals_of_the_valid_draw(cache_dir: Path):
    """The paper: distribution distances, CMD and diversity on the U.N. crystals of the valid draw."""
    import numpy as np
    from crystal_eval import DEFAULT_SUBSETS, wasserstein
    from crystal_eval.evaluation import test_reference

    assert DEFAULT_SUBSETS["un_rate"] == "valid"
    assert all(DEFAULT_SUBSETS[k] == "un" for k in METRIC_KEYS[3:])
    structs = fixture_structures()
    cfg = EvalConfig(n_jobs=1, progress=False)
    res = evaluate_detailed(structs, TRAIN, TEST, cfg, FeatureCache(cache_dir))
    d = res.details
    members = d[d.in_un_members]
    # the two training copies and one of the two repeated crystals are not U.N.
    assert len(members) == res.report["meta"]["n_unique_and_novel"] == d.in_eval_subset.sum() - 3
    ref = test_reference(TEST, cfg, FeatureCache(cache_dir))
    assert res.report["wasserstein_density"] == pytest.approx(wasserstein(members.density, ref.density))
    valid = evaluate_detailed(
        structs, TRAIN, TEST, EvalConfig(n_jobs=1, progress=False, subsets={"wasserstein_density": "valid"}),
        FeatureCache(cache_dir),
    ).report
    drawn = d[d.in_eval_subset]
    assert valid["wasserstein_density"] == pytest.approx(wasserstein(drawn.density, ref.density))
    assert not np.isclose(valid["wasserstein_density"], res.report["wasserstein_density"])


@pytest.mark.parametrize(("change", "message"), [
    ({"symprec": -1.0}, "symprec must be a positive number"),
    ({"symprec": float("nan")}, "symprec must be a positive number"),
    ({"angle_tolerance": 0.0}, "angle_tolerance must be a positive number"),
    ({"ltol": -1.0}, "ltol must be a positive number"),
    ({"stol": float("inf")}, "stol must be a positive number"),
    ({"cutoff": float("nan")}, "cutoff must be a positive number"),
    ({"n_eval": 1.5}, "n_eval must be an integer"),
    ({"seed": "a"}, "seed must be an integer"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"subsets": None}, "subsets must be a dict"),
])
def test_bad_settings_are_refused_before_any_work(change, message):
    """A negative or NaN symprec used to kill the process inside spglib; a negative ltol made every crystal
    unique and novel (StructureMatcher's error was read as 'no match')."""
    with pytest.raises(ValueError, match=message):
        evaluate_detailed([], TRAIN, TEST, EvalConfig(**change), FeatureCache(None))


def test_wrong_sample_types_are_refused():
    s = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(InputError, match="a single Structure"):
        evaluate_detailed(s, TRAIN, TEST, EvalConfig(progress=False), FeatureCache(None))
    with pytest.raises(InputError, match="got a int"):
        evaluate_detailed([s, 1], TRAIN, TEST, EvalConfig(progress=False), FeatureCache(None))
    with pytest.raises(InputError, match="config must be an EvalConfig"):
        evaluate_detailed([s], TRAIN, TEST, {"n_eval": 10}, FeatureCache(None))  # type: ignore[arg-type]


def test_matcher_and_symmetry_tolerances_are_checked_at_the_source():
    from crystal_eval.features import symmetry_features
    from crystal_eval.novelty import is_novel, uniqueness

    s = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="ltol"):
        is_novel(s, [s], ltol=-1)
    with pytest.raises(ValueError, match="ltol"):
        uniqueness([s, s], ltol=-1)
    with pytest.raises(ValueError, match="symprec"):
        symmetry_features(s, symprec=-1)
    assert uniqueness([s, s]) == [True, False] and is_novel(s, [s]) is False
