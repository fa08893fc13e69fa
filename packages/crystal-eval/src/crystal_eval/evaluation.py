"""The full evaluation: generated crystals + a training set (novelty) + a test set (distributions).

Protocol (defaults follow the paper's Table 1; every choice is a parameter):

1. Every generated crystal gets structural and compositional validity (percentages over *all* of them;
   a crystal that cannot be read or built counts as invalid in both).
2. The *valid* pool is struct_valid AND comp_valid AND the CrystalNN fingerprint succeeded (CDVAE).
   A seeded permutation (``numpy.random.default_rng(seed)``) of the valid pool is walked in order; its
   first ``n_eval`` members are the evaluation draw and its first ``n_un`` the U.N. draw (the same
   crystals when ``n_eval == n_un``). If fewer are valid, all valid crystals are used and a warning is
   recorded in ``meta``.
3. U.N. rate over the U.N. draw: unique = matches no earlier kept crystal of the draw; novel = matches
   no training crystal; StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5) within reduced-composition
   buckets.
4. Distribution metrics against *all* test crystals, diversity within the subset; the subset of each
   metric is ``subsets[metric]``: ``"un"`` (the unique-and-novel crystals of the U.N. draw, default: the
   paper's "U.N. crystals were used to compute (1) distribution distances (2) CMD (3) diversity"),
   ``"valid"`` (the evaluation draw) or ``"all"`` (every built crystal).
5. Per-crystal time limit (``time_limit`` seconds, per stage): a CrystalNN fingerprint that runs into it
   is a failed fingerprint (the crystal is not valid in CDVAE's sense and leaves the draw); a crystal
   whose StructureMatcher work runs into it is not unique-and-novel. Both are listed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from crystal_eval import metrics as M
from crystal_eval.cache import FeatureCache
from crystal_eval.features import (
    BasicRecord,
    RichRecord,
    basic_record,
    basic_record_from_item,
    check_positive,
    formula_key,
    rich_record,
    standardise_magpie,
)
from crystal_eval.io import (
    InputError,
    Item,
    item_key,
    item_to_structure,
    items_from_structures,
    load_items,
    load_reference_cifs,
    parse_cif,
    reference_files,
)
from crystal_eval.novelty import (
    ANGLE_TOL,
    LTOL,
    STOL,
    NoveltyResult,
    novelty_check,
    uniqueness_checked,
)
from crystal_eval.parallel import pmap
from crystal_eval.timelimit import DEFAULT_TIME_LIMIT
from crystal_eval.validity import DEFAULT_CUTOFF, DEFAULT_MIN_VOLUME, validity_rate

if TYPE_CHECKING:
    from crystal_eval.stability import StabilityConfig

FEATURE_VERSION = 1

METRIC_KEYS: tuple[str, ...] = (
    "structural_validity",
    "compositional_validity",
    "un_rate",
    "wasserstein_density",
    "wasserstein_num_elements",
    "jsd_space_group",
    "jsd_wyckoff_dim",
    "cmd_crystalnn",
    "diversity_structure",
    "diversity_composition",
)
SUBSET_METRICS: tuple[str, ...] = METRIC_KEYS[2:]
SUBSET_CHOICES: dict[str, tuple[str, ...]] = {
    "un_rate": ("valid", "all"),
    **{k: ("valid", "all", "un") for k in METRIC_KEYS[3:]},
}
# The paper's protocol: U.N. over the valid draw; distributions, CMD and diversity over its U.N. crystals.
DEFAULT_SUBSETS: dict[str, str] = {"un_rate": "valid", **{k: "un" for k in METRIC_KEYS[3:]}}


@dataclass
class EvalConfig:
    """All knobs of the evaluation (defaults = the paper's protocol)."""

    n_eval: int = 1000
    n_un: int = 1000
    seed: int = 0
    subsets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SUBSETS))
    symprec: float = 0.1
    angle_tolerance: float = 5.0
    cmd_moments: int = 50
    cutoff: float = DEFAULT_CUTOFF
    min_volume: float = DEFAULT_MIN_VOLUME
    ltol: float = LTOL
    stol: float = STOL
    angle_tol: float = ANGLE_TOL
    cnn_symmetry_reduce: bool = True
    time_limit: float | None = DEFAULT_TIME_LIMIT  # seconds per crystal and stage; None or <= 0: no limit
    stability: StabilityConfig | None = None  # ML-potential stability of the U.N. crystals (extra 'stability')
    n_jobs: int | None = None
    progress: bool = True

    def validate(self) -> None:
        """Raise ValueError for inconsistent settings."""
        for name in ("n_eval", "n_un", "cmd_moments", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.n_eval < 1 or self.n_un < 1:
            raise ValueError("n_eval and n_un must be >= 1")
        if self.cmd_moments < 1:
            raise ValueError("cmd_moments must be >= 1")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.time_limit is not None and not math.isfinite(self.time_limit):
            raise ValueError("time_limit must be a finite number of seconds (or None / 0 for no limit)")
        check_positive(symprec=self.symprec, angle_tolerance=self.angle_tolerance, ltol=self.ltol, stol=self.stol,
                       angle_tol=self.angle_tol, cutoff=self.cutoff, min_volume=self.min_volume)
        if not isinstance(self.subsets, dict):
            raise ValueError(f"subsets must be a dict of metric -> population, got {self.subsets!r}")
        for k, v in self.subsets.items():
            if k not in SUBSET_CHOICES:
                raise ValueError(f"unknown metric in subsets: {k!r} (choose from {list(SUBSET_CHOICES)})")
            if v not in SUBSET_CHOICES[k]:
                raise ValueError(f"subset for {k} must be one of {SUBSET_CHOICES[k]}, got {v!r}")
        self.subsets = {**DEFAULT_SUBSETS, **self.subsets}


@dataclass
class EvalResult:
    """The report (``report``), a per-crystal table (``details``) and what the plots need."""

    report: dict[str, Any]
    details: pd.DataFrame
    plot_data: dict[str, Any]


def _params_key(*parts: Any) -> str:
    blob = json.dumps([FEATURE_VERSION, version("pymatgen"), version("matminer"), *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- workers (picklable)


def _work_basic(item: Item, cutoff: float, min_volume: float) -> BasicRecord:
    return basic_record_from_item(item, cutoff, min_volume)


def _work_rich(
    item: Item, symprec: float, angle_tolerance: float, symmetry_reduce: bool, time_limit: float | None = None
) -> RichRecord:
    try:
        s = item_to_structure(item)
    except Exception as exc:
        return RichRecord(symmetry_error=str(exc), cnn_error=str(exc))
    return rich_record(s, symprec, angle_tolerance, True, True, symmetry_reduce, time_limit)


def _work_reference(
    cif: str, symprec: float, angle_tolerance: float, symmetry_reduce: bool, time_limit: float | None = None
):
    try:
        s = parse_cif(cif)
    except ValueError:
        return None
    b = basic_record(s)
    r = rich_record(s, symprec, angle_tolerance, True, False, symmetry_reduce, time_limit)
    return b.formula, b.density, b.n_elements, r.space_group, r.wyckoff_dims, r.cnn, r.cnn_time_limit is not None


def _work_formula(cif: str) -> str:
    try:
        return formula_key(parse_cif(cif))
    except ValueError:
        return ""


def _work_novel(
    task: tuple[Item, list[str]], ltol: float, stol: float, angle_tol: float, time_limit: float | None = None
) -> NoveltyResult:
    item, candidates = task
    return novelty_check(item_to_structure(item), candidates, ltol, stol, angle_tol, time_limit)


def _limit(cfg: EvalConfig) -> float | None:
    return cfg.time_limit if cfg.time_limit is not None and cfg.time_limit > 0 else None


def _retry_with_more_time(hit_limit: float | None, cfg: EvalConfig) -> bool:
    """A cached result that ran into a limit is stale when the current limit is larger (or unlimited)."""
    if hit_limit is None:
        return False
    now = _limit(cfg)
    return now is None or now > hit_limit


# ----------------------------------------------------------------------------- reference sets


@dataclass
class TestReference:
    """Features of the test set (what the distribution metrics compare against)."""

    n: int
    density: np.ndarray
    n_elements: np.ndarray
    space_groups: np.ndarray
    wyckoff_hist: np.ndarray
    cnn: np.ndarray  # (n_ok, 61)
    n_failed: int
    n_fingerprint_time_limit: int = 0  # test crystals whose fingerprint ran into the time limit
    time_limit: float | None = None  # the limit in force when they were computed


def test_reference(
    paths: str | Path | Sequence[str | Path], cfg: EvalConfig | None = None, cache: FeatureCache | None = None
) -> TestReference:
    """Features of every crystal in the test CSV(s); cached under the files' content hash."""
    cfg = cfg or EvalConfig()
    cache = cache or FeatureCache(None)
    names, cifs, file_hash = load_reference_cifs(paths)
    key = f"testref:{_params_key(cfg.symprec, cfg.angle_tolerance, cfg.cnn_symmetry_reduce)}:{file_hash}"
    hit = cache.get(key)
    if isinstance(hit, dict):  # stored as a plain dict so pickles survive code moves
        ref = TestReference(**hit)
        if not (ref.n_fingerprint_time_limit and _retry_with_more_time(ref.time_limit, cfg)):
            return ref
    work = partial(
        _work_reference,
        symprec=cfg.symprec,
        angle_tolerance=cfg.angle_tolerance,
        symmetry_reduce=cfg.cnn_symmetry_reduce,
        time_limit=_limit(cfg),
    )
    rows = pmap(work, cifs, cfg.n_jobs, desc="test-set features", progress=cfg.progress)
    ok = [r for r in rows if r is not None]
    if not ok:
        raise InputError(f"no readable crystal in the test file(s) {paths}")
    dims = [d for r in ok for d in r[4]]
    ref = TestReference(
        n=len(ok),
        density=np.array([r[1] for r in ok], dtype=float),
        n_elements=np.array([r[2] for r in ok], dtype=float),
        space_groups=np.array([r[3] for r in ok], dtype=int),
        wyckoff_hist=M.wyckoff_dim_histogram(dims),
        cnn=np.array([r[5] for r in ok if r[5] is not None], dtype=float).reshape(-1, 61),
        n_failed=len(rows) - len(ok),
        n_fingerprint_time_limit=sum(bool(r[6]) for r in ok),
        time_limit=_limit(cfg),
    )
    cache.put(key, asdict(ref))
    return ref


@dataclass
class TrainReference:
    """Training CIFs bucketed by reduced composition (for novelty)."""

    file_hash: str
    n: int
    buckets: dict[str, list[int]]
    cifs: list[str]


def train_reference(
    paths: str | Path | Sequence[str | Path], cfg: EvalConfig | None = None, cache: FeatureCache | None = None
) -> TrainReference:
    """Read the training CSV(s) and bucket rows by reduced composition (the keys are cached)."""
    cfg = cfg or EvalConfig()
    cache = cache or FeatureCache(None)
    _, cifs, file_hash = load_reference_cifs(paths)
    key = f"trainkeys:{_params_key()}:{file_hash}"
    keys = cache.get(key)
    if keys is None:
        keys = pmap(_work_formula, cifs, cfg.n_jobs, desc="training-set compositions", progress=cfg.progress)
        cache.put(key, keys)
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        if k:
            buckets[k].append(i)
    return TrainReference(file_hash=file_hash, n=len(cifs), buckets=dict(buckets), cifs=cifs)


# ----------------------------------------------------------------------------- cached per-item stages


def _cached_map(
    prefix: str,
    func,
    items: Sequence[Item],
    keys: Sequence[str],
    cache: FeatureCache,
    cfg: EvalConfig,
    desc: str,
    stale: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """Cached ``[func(x) for x in items]``; a hit for which ``stale(value)`` is true is recomputed."""
    full = [f"{prefix}:{k}" for k in keys]
    got = cache.get_many(full)
    if stale is not None:
        got = {k: v for k, v in got.items() if not stale(v)}
    todo = [i for i, k in enumerate(full) if k not in got]
    if todo:
        res = pmap(func, [items[i] for i in todo], cfg.n_jobs, desc=desc, progress=cfg.progress)
        new = {full[i]: r for i, r in zip(todo, res, strict=True)}
        cache.put_many(new)
        got.update(new)
    return [got[k] for k in full]


def _as_items(samples: str | Path | Sequence[Structure | Item | None]) -> list[Item]:
    if isinstance(samples, (str, Path)):
        return load_items(samples)
    if isinstance(samples, Structure):  # iterating it would evaluate its sites
        raise InputError("samples: a single Structure; pass a list of them (or a path)")
    samples = list(samples)
    if samples and all(isinstance(s, Item) for s in samples):
        return samples  # type: ignore[return-value]
    wrong = next((s for s in samples if not (s is None or isinstance(s, Structure))), None)
    if wrong is not None:
        raise InputError(f"samples: expected pymatgen Structures (None for a crystal that could not be built) or "
                         f"Items, got a {type(wrong).__name__}")
    return items_from_structures(samples)  # type: ignore[arg-type]


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def evaluate_detailed(
    samples: str | Path | Sequence[Structure | Item | None],
    train: str | Path | Sequence[str | Path],
    test: str | Path | Sequence[str | Path],
    config: EvalConfig | None = None,
    cache: FeatureCache | None = None,
) -> EvalResult:
    """Run the whole evaluation; see the module docstring for the protocol.

    ``samples``: a path understood by :func:`crystal_eval.io.load_items`, or a list of Structures (None
    for a crystal that could not be built) or Items. ``train``/``test``: CDVAE CSV path(s).
    Raises :class:`InputError` for missing/unreadable reference files or an empty sample set.
    """
    cfg = config or EvalConfig()
    if not isinstance(cfg, EvalConfig):
        raise InputError(f"config must be an EvalConfig, got a {type(cfg).__name__}")
    cfg.validate()
    cache = cache if cache is not None else FeatureCache()
    items = _as_items(samples)
    if not items:
        raise InputError("no generated crystals to evaluate")
    reference_files(train), reference_files(test)  # a missing reference file fails before any work
    warnings_: list[str] = []

    keys = [item_key(it) for it in items]
    basic: list[BasicRecord] = _cached_map(
        f"basic:{_params_key(cfg.cutoff, cfg.min_volume)}",
        partial(_work_basic, cutoff=cfg.cutoff, min_volume=cfg.min_volume),
        items,
        keys,
        cache,
        cfg,
        "validity",
    )
    unbuilt = [b for b in basic if not b.constructed]
    if unbuilt:  # they count as not valid (a model's unreadable output); the user hears of it, e.g. a wrong file
        some = "none" if len(unbuilt) == len(basic) else f"{len(basic) - len(unbuilt)}"
        warnings_.append(f"{len(unbuilt)} of {len(basic)} samples could not be built as crystals and count as not "
                         f"valid; {some} could (reasons in --details; the first: "
                         f"{unbuilt[0].error or 'unknown reason'})")
    trainref = train_reference(train, cfg, cache)
    testref = test_reference(test, cfg, cache)
    if testref.n_failed:
        warnings_.append(f"{testref.n_failed} of the test rows could not be read and are left out of the reference "
                         "distributions")
    rich_prefix = f"rich:{_params_key(cfg.symprec, cfg.angle_tolerance, cfg.cnn_symmetry_reduce)}"
    rich_func = partial(
        _work_rich,
        symprec=cfg.symprec,
        angle_tolerance=cfg.angle_tolerance,
        symmetry_reduce=cfg.cnn_symmetry_reduce,
        time_limit=_limit(cfg),
    )
    rich: dict[int, RichRecord] = {}

    def ensure_rich(idx: Sequence[int]) -> None:
        todo = [i for i in idx if i not in rich]
        if todo:
            res = _cached_map(
                rich_prefix,
                rich_func,
                [items[i] for i in todo],
                [keys[i] for i in todo],
                cache,
                cfg,
                "fingerprints",
                stale=lambda r: _retry_with_more_time(getattr(r, "cnn_time_limit", None), cfg),
            )
            rich.update(zip(todo, res, strict=True))

    constructed = [i for i, b in enumerate(basic) if b.constructed]
    pool = [i for i in constructed if basic[i].struct_valid and basic[i].comp_valid]
    rng = np.random.default_rng(cfg.seed)
    perm = [int(i) for i in rng.permutation(np.asarray(pool, dtype=int))]
    need = max(cfg.n_eval, cfg.n_un)
    accepted: list[int] = []
    pos = 0
    while len(accepted) < need and pos < len(perm):
        batch = perm[pos : pos + (need - len(accepted))]
        pos += len(batch)
        ensure_rich(batch)
        accepted += [i for i in batch if rich[i].cnn is not None]
    n_fp_failed = pos - len(accepted)
    eval_idx = accepted[: cfg.n_eval]
    if len(eval_idx) < cfg.n_eval:
        warnings_.append(f"only {len(eval_idx)} valid crystals (< n_eval={cfg.n_eval}); using all of them")

    # ---- U.N. draw
    if cfg.subsets["un_rate"] == "valid":
        un_idx = accepted[: cfg.n_un]
    else:
        un_idx = [int(i) for i in np.random.default_rng(cfg.seed).permutation(constructed)[: cfg.n_un]]
    if len(un_idx) < cfg.n_un:
        warnings_.append(f"only {len(un_idx)} crystals for U.N. (< n_un={cfg.n_un})")
    novel_prefix = f"novel2:{_params_key(cfg.ltol, cfg.stol, cfg.angle_tol)}:{trainref.file_hash}"
    tasks = [(items[i], [trainref.cifs[j] for j in trainref.buckets.get(basic[i].formula, [])]) for i in un_idx]
    novelty: list[NoveltyResult] = _cached_map(
        novel_prefix,
        partial(_work_novel, ltol=cfg.ltol, stol=cfg.stol, angle_tol=cfg.angle_tol, time_limit=_limit(cfg)),
        tasks,  # type: ignore[arg-type]
        [keys[i] for i in un_idx],
        cache,
        cfg,
        "novelty",
        stale=lambda r: _retry_with_more_time(r.time_limit, cfg),
    )
    novel_flags = [r.novel for r in novelty]
    un_structs = [item_to_structure(items[i]) for i in un_idx]
    unique_flags, unique_errors = uniqueness_checked(
        un_structs, [basic[i].formula for i in un_idx], cfg.ltol, cfg.stol, cfg.angle_tol, _limit(cfg)
    )
    un_errors = {
        i: "; ".join(e for e in (nr.error, ue) if e)
        for i, nr, ue in zip(un_idx, novelty, unique_errors, strict=True)
        if nr.error or ue
    }
    un_members = [i for i, u, n in zip(un_idx, unique_flags, novel_flags, strict=True) if u and n]

    # ---- subsets for the distribution metrics
    def subset(metric: str) -> list[int]:
        choice = cfg.subsets[metric]
        if choice == "valid":
            return eval_idx
        if choice == "un":
            ensure_rich(un_members)
            return un_members
        ensure_rich(constructed)
        return constructed

    def cnn_rows(idx: Sequence[int]) -> np.ndarray:
        return np.array([rich[i].cnn for i in idx if rich[i].cnn is not None], dtype=float).reshape(-1, 61)

    report: dict[str, Any] = {
        "structural_validity": validity_rate([b.struct_valid for b in basic]),
        "compositional_validity": validity_rate([b.comp_valid for b in basic]),
        "un_rate": M.un_rate(unique_flags, novel_flags),
    }
    idx = subset("wasserstein_density")
    report["wasserstein_density"] = M.wasserstein([basic[i].density for i in idx], testref.density)
    idx = subset("wasserstein_num_elements")
    report["wasserstein_num_elements"] = M.wasserstein([basic[i].n_elements for i in idx], testref.n_elements)
    idx = subset("jsd_space_group")
    report["jsd_space_group"] = M.js_distance(
        M.space_group_histogram(testref.space_groups),
        M.space_group_histogram(rich[i].space_group for i in idx),
    )
    idx = subset("jsd_wyckoff_dim")
    report["jsd_wyckoff_dim"] = M.js_distance(
        testref.wyckoff_hist, M.wyckoff_dim_histogram(d for i in idx for d in rich[i].wyckoff_dims)
    )
    idx = subset("cmd_crystalnn")
    report["cmd_crystalnn"] = M.cmd(testref.cnn, cnn_rows(idx), cfg.cmd_moments)
    idx = subset("diversity_structure")
    report["diversity_structure"] = M.mean_pairwise_distance(cnn_rows(idx))
    idx = subset("diversity_composition")
    mag = [rich[i].magpie for i in idx if rich[i].magpie is not None]
    report["diversity_composition"] = M.mean_pairwise_distance(
        standardise_magpie(np.array(mag, dtype=float).reshape(-1, 132))
    )
    report = {k: _nan_to_none(float(v)) for k, v in report.items()}
    stab = None
    if cfg.stability is not None:
        from crystal_eval.stability import evaluate_stability

        scfg = cfg.stability
        if scfg.n_jobs is None:
            scfg.n_jobs = cfg.n_jobs
        scfg.progress = scfg.progress and cfg.progress
        hull_files = scfg.reference or [
            *([train] if isinstance(train, (str, Path)) else train),
            *([test] if isinstance(test, (str, Path)) else test),
        ]
        stab = evaluate_stability([items[i] for i in un_members], len(un_idx), hull_files, scfg, cache)
        report.update(stab.report)

    train_paths = [str(p) for p in ([train] if isinstance(train, (str, Path)) else train)]
    test_paths = [str(p) for p in ([test] if isinstance(test, (str, Path)) else test)]
    n_struct_valid, n_comp_valid = sum(b.struct_valid for b in basic), sum(b.comp_valid for b in basic)
    report["meta"] = {
        "n_samples": len(items),
        "n_constructed": len(constructed),
        "n_struct_valid": n_struct_valid,
        "n_comp_valid": n_comp_valid,
        "n_struct_and_comp_valid": len(pool),
        "n_fingerprint_failed_in_draw": n_fp_failed,
        "n_eval": len(eval_idx),
        "n_un": len(un_idx),
        "n_unique": int(sum(unique_flags)),
        "n_novel": int(sum(novel_flags)),
        "n_unique_and_novel": len(un_members),
        "n_fingerprint_time_limit": sum(r.cnn_time_limit is not None for r in rich.values()),
        "n_un_time_limit": len(un_errors),
        "intervals_95": {
            "structural_validity": M.wilson_interval(n_struct_valid, len(basic)),
            "compositional_validity": M.wilson_interval(n_comp_valid, len(basic)),
            "un_rate": M.wilson_interval(len(un_members), len(un_idx)),
        },
        "config": {
            f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("progress", "n_jobs", "stability")
        },
        "conventions": {
            "percentages": "structural_validity, compositional_validity and un_rate are in percent",
            "js": "Jensen-Shannon distance (scipy.spatial.distance.jensenshannon), natural log, range [0, sqrt(ln 2)]",
            "density": "mass density in g/cm^3 (pymatgen Structure.density)",
            "oxidation_states": "SMACT14 (frozen in crystal_eval/data/smact14.json)",
            "symmetry_failure": "space group 1 (P1), every atom its own orbit of dimension 3",
            "intervals_95": "95 % Wilson score intervals (percent) of the model's structural_validity, "
            "compositional_validity and un_rate, from this run's counts (crystal_eval.metrics.wilson_interval)",
            "time_limit": "per crystal and stage: a CrystalNN fingerprint past it fails (not valid); "
            "StructureMatcher work past it makes the crystal not unique-and-novel",
        },
        "reference": {
            "train": train_paths,
            "test": test_paths,
            "n_train": trainref.n,
            "n_test": testref.n,
            "n_test_unreadable": testref.n_failed,
            "n_test_fingerprints": len(testref.cnn),
            "n_test_fingerprint_time_limit": testref.n_fingerprint_time_limit,
        },
        "versions": {p: version(p) for p in ("crystal-eval", "pymatgen", "matminer", "spglib", "smact", "scipy")},
        "warnings": warnings_,
    }

    un_set = set(un_members)
    in_eval, in_un = (
        set(eval_idx),
        dict(zip(un_idx, zip(unique_flags, novel_flags, strict=True), strict=True)),
    )
    details = pd.DataFrame(
        {
            "index": range(len(items)),
            "name": [it.name for it in items],
            "constructed": [b.constructed for b in basic],
            "error": [b.error or "" for b in basic],
            "struct_valid": [b.struct_valid for b in basic],
            "comp_valid": [b.comp_valid for b in basic],
            "formula": [b.formula for b in basic],
            "n_atoms": [b.n_atoms for b in basic],
            "n_elements": [b.n_elements for b in basic],
            "density": [b.density for b in basic],
            "fingerprint_ok": [(rich[i].cnn is not None) if i in rich else None for i in range(len(items))],
            "fingerprint_error": [(rich[i].cnn_error or "") if i in rich else "" for i in range(len(items))],
            "space_group": pd.array(
                [rich[i].space_group if i in rich else None for i in range(len(items))], dtype="Int64"
            ),
            "in_eval_subset": [i in in_eval for i in range(len(items))],
            "in_un_subset": [i in in_un for i in range(len(items))],
            "unique": [in_un[i][0] if i in in_un else None for i in range(len(items))],
            "novel": [in_un[i][1] if i in in_un else None for i in range(len(items))],
            "un_error": [un_errors.get(i, "") for i in range(len(items))],
            "in_un_members": [i in un_set for i in range(len(items))],
        }
    )
    if stab is not None:
        for col in stab.details.columns:
            values = [None] * len(items)
            for row, i in enumerate(un_members):
                values[i] = stab.details[col].iloc[row]
            details[col] = values
    plot_data = {  # each plot shows the population of its metric
        "sample_space_groups": [rich[i].space_group for i in subset("jsd_space_group")],
        "test_space_groups": testref.space_groups,
        "sample_n_elements": [basic[i].n_elements for i in subset("wasserstein_num_elements")],
        "test_n_elements": testref.n_elements,
        "sample_density": [basic[i].density for i in subset("wasserstein_density")],
        "test_density": testref.density,
    }
    if stab is not None:  # the U.N. crystals' E_hull and relaxation RMSD, and the reference crystals' own E_hull
        plot_data["stability"] = {
            "e_hull": stab.details["e_hull"].to_numpy(dtype=float),
            "reference_e_hull": stab.reference_e_hull,
            "rmsd": stab.details["relax_rmsd"].to_numpy(dtype=float),
            "threshold": cfg.stability.threshold,
            "label": cfg.stability.label,
        }
    return EvalResult(report=report, details=details, plot_data=plot_data)


def evaluate(
    structures: str | Path | Sequence[Structure | Item | None],
    train: str | Path | Sequence[str | Path],
    test: str | Path | Sequence[str | Path],
    *,
    n_eval: int = 1000,
    n_un: int = 1000,
    seed: int = 0,
    subsets: Mapping[str, str] | None = None,
    n_jobs: int | None = None,
    cache_dir: str | Path | None = "default",
    progress: bool = True,
    **config: Any,
) -> dict[str, Any]:
    """Evaluate generated crystals; returns the report dict (metric keys + ``meta``).

    ``cache_dir``: ``"default"`` (``$CRYSTAL_EVAL_CACHE`` or ``~/.cache/crystal-eval``), a folder, or
    None to disable caching. Other keyword arguments are :class:`EvalConfig` fields.
    """
    cfg = EvalConfig(
        n_eval=n_eval,
        n_un=n_un,
        seed=seed,
        subsets=dict(subsets or {}),
        n_jobs=n_jobs,
        progress=progress,
        **config,
    )
    return evaluate_detailed(structures, train, test, cfg, FeatureCache(cache_dir)).report


RATE_INTERVAL_NAMES = {"structural_validity": "struct. valid", "compositional_validity": "comp. valid",
                       "un_rate": "U.N."}


def format_intervals(intervals: Mapping[str, Any] | None, names: Mapping[str, str], prefix: str = "") -> str:
    """``prefix + "95 % intervals (Wilson): name [lo, hi] %, ..."`` for the named rates of ``intervals`` (a
    report's ``intervals_95``); empty when none is known (older reports have none)."""
    parts = [f"{label} [{intervals[k][0]:.1f}, {intervals[k][1]:.1f}] %"
             for k, label in names.items() if intervals and intervals.get(k) is not None]  # fmt: skip
    return prefix + "95 % intervals (Wilson): " + ", ".join(parts) if parts else ""


def format_table(report: Mapping[str, Any], label: str = "samples") -> str:
    """A Table-1-style text table of a report."""
    cols = [
        ("Struct. valid %", "structural_validity", "{:.2f}"),
        ("Comp. valid %", "compositional_validity", "{:.2f}"),
        ("U.N. %", "un_rate", "{:.2f}"),
        ("W_rho", "wasserstein_density", "{:.4f}"),
        ("W_Nel", "wasserstein_num_elements", "{:.4f}"),
        ("JSD_G", "jsd_space_group", "{:.4f}"),
        ("JSD_dWyck", "jsd_wyckoff_dim", "{:.4f}"),
        ("CMD", "cmd_crystalnn", "{:.4f}"),
        ("Div. struct", "diversity_structure", "{:.4f}"),
        ("Div. comp", "diversity_composition", "{:.3f}"),
    ]
    if report.get("stability_meta"):
        cols += [
            ("Stable %", "stable_rate", "{:.2f}"),
            ("Stable_0 %", "stable_rate_0", "{:.2f}"),
            ("S.U.N. %", "sun_rate", "{:.2f}"),
            ("S.U.N._0 %", "sun_rate_0", "{:.2f}"),
            ("RMSD A", "relax_rmsd_median", "{:.3f}"),
            ("SG kept %", "sg_kept_rate", "{:.1f}"),
        ]
    head = ["model"] + [c[0] for c in cols]
    vals = [label] + [fmt.format(report[k]) if report.get(k) is not None else "n/a" for _, k, fmt in cols]
    widths = [max(len(h), len(v)) for h, v in zip(head, vals, strict=True)]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    row = " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))
    return f"{line}\n{sep}\n{row}"
