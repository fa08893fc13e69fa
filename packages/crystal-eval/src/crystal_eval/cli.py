"""Command line: ``crystal-eval SAMPLES --train TRAIN.csv --test TEST.csv -o report.json``."""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crystal_eval.cache import ENV_VAR
from crystal_eval.io import InputError
from crystal_eval.timelimit import CLOCKS, DEFAULT_TIME_LIMIT


def _number(text: str, kind: type, ok: Callable[[float], bool], what: str) -> Any:
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return v


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < math.inf, "a positive number")


def _nonnegative_float(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < math.inf, "a number >= 0")


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _nonnegative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _subset_arg(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected METRIC=SUBSET, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``crystal-eval``."""
    from crystal_eval import __version__

    p = argparse.ArgumentParser(
        prog="crystal-eval",
        description="MP-20 generative metrics (Table 1) for any model's crystals: validity, U.N. rate, "
        "Wasserstein distances of density and N_el, JS distances of space groups and Wyckoff dimensions, "
        "CMD of CrystalNN fingerprints, structural and compositional diversity.",
    )
    p.add_argument("--version", action="version", version=f"crystal-eval {__version__}")
    p.add_argument(
        "samples",
        help="generated crystals: a folder or .zip of CIFs, an .extxyz file, a .jsonl file of records "
        "(cif, or lattice + species + frac_coords), a CDVAE .csv(.gz/.xz) with a 'cif' column, or a .pt file in "
        "the layout of CDVAE's and DiffCSP's eval_gen.pt (its first sampling, as CDVAE evaluates it; needs torch)",
    )
    p.add_argument(
        "--pt-sampling", type=_nonnegative_int, default=0, metavar="K",
        help="for a .pt samples file: which of its repeated samplings (num_evals) to evaluate (0, CDVAE's choice)",
    )  # fmt: skip
    p.add_argument("--train", nargs="+", required=True, help="training CSV(s) in the CDVAE layout (novelty)")
    p.add_argument("--test", nargs="+", required=True, help="test CSV(s) in the CDVAE layout (distributions)")
    p.add_argument("-o", "--output", default="report.json", help="JSON report path (default: report.json)")
    p.add_argument("--details", help="write a per-crystal CSV (validity, errors, subsets, U/N flags)")
    p.add_argument("--plots", help="folder for PNGs: space groups, N_el and density, samples vs test")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the valid-subset draw (default 0)")
    p.add_argument("--n-un", type=int, default=1000, help="valid crystals drawn for U.N. (default 1000)")
    p.add_argument(
        "--n-eval",
        type=int,
        default=1000,
        help="valid crystals drawn for distribution metrics and diversity (default 1000)",
    )
    p.add_argument(
        "--subset",
        action="append",
        type=_subset_arg,
        default=[],
        metavar="METRIC=SUBSET",
        help="population of a metric: un (default for the distribution metrics, CMD and diversity: the "
        "unique-and-novel crystals of the valid draw, as in the paper), valid (the whole valid draw) or all "
        "(every built crystal); un_rate takes valid (default) or all; repeatable, e.g. --subset cmd_crystalnn=valid",
    )
    p.add_argument("--symprec", type=_positive_float, default=0.1,
                   help="spglib symprec for space groups/Wyckoff (0.1)")
    p.add_argument("--angle-tolerance", type=_positive_float, default=5.0, help="spglib angle tolerance, degrees (5)")
    p.add_argument("--cmd-moments", type=_positive_int, default=50, help="highest CMD moment (50)")
    p.add_argument(
        "--time-limit",
        type=_nonnegative_float,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"per-crystal limit for the CrystalNN fingerprint and for the StructureMatcher work (default "
        f"{DEFAULT_TIME_LIMIT:g}; 0 = none); a crystal past it counts as failed and is listed in --details",
    )
    st = p.add_argument_group(
        "stability (optional extra crystal-eval[stability]; ML-potential stability with CHGNet or --potential, "
        "not DFT)"
    )
    st.add_argument(
        "--stability",
        action="store_true",
        help="relax the U.N. crystals with CHGNet (or --potential) and report stable_rate, stable_rate_0, sun_rate, "
        "sun_rate_0, "
        "the median relaxation RMSD and the fraction keeping its space group",
    )
    st.add_argument(
        "--hull",
        choices=("ml", "dft"),
        default="ml",
        help="reference hull: ml = single points of the potential on the reference crystals (default, "
        "self-consistent), dft = the CSVs' DFT formation energies",
    )
    st.add_argument(
        "--stability-reference",
        nargs="+",
        metavar="CSV",
        help="CSVs the reference hull is built from (default: the --train and --test files)",
    )
    st.add_argument("--potential-model", help="CHGNet weights shipped in the wheel (default 0.3.0)")
    st.add_argument(
        "--potential", metavar="MODULE:FACTORY",
        help="another potential instead of CHGNet: a zero-argument callable returning an ASE calculator or a "
        "crystal_eval Potential, e.g. ase.calculators.emt:EMT or a function of your own (importable: installed or on "
        "PYTHONPATH; one call checks it before any work, then each worker process calls it once)",
    )  # fmt: skip
    st.add_argument("--relax-fmax", type=_positive_float, default=0.05, help="FIRE force threshold, eV/Å (0.05)")
    st.add_argument("--relax-steps", type=_positive_int, default=300, help="FIRE step cap (300)")
    st.add_argument(
        "--relax-time-limit", type=_nonnegative_float, default=60.0, metavar="SECONDS",
        help="per-crystal relaxation time limit (60; 0 = none); past it the crystal is not stable",
    )  # fmt: skip
    st.add_argument(
        "--relax-time-clock", choices=CLOCKS, default="wall",
        help="what --relax-time-limit counts: wall, elapsed time (default), or cpu, the worker process's CPU time, "
        "which other load on the machine does not use up, so the same crystals get the same verdicts",
    )  # fmt: skip
    st.add_argument(
        "--relax-cell", choices=["primitive", "input"], default="primitive",
        help="the cell relaxed: primitive, the input's primitive cell (default; a centred conventional cell costs 2 "
        "to 4 times more per step, and the MP-20 reference crystals are primitive cells), or input, as given",
    )  # fmt: skip
    st.add_argument(
        "--relax-optimizer", choices=["batched", "ase"], default="batched",
        help="batched: many crystals per CHGNet call (default); ase: ASE's FIRE, one crystal at a time "
        "(the same algorithm, slower; for cross-checks)",
    )  # fmt: skip
    st.add_argument(
        "--prerelax-volume", action="store_true",
        help="scale each crystal's lattice isotropically to its lowest-energy volume before FIRE (a few single "
        "points); faster for generated crystals far from equilibrium, but a crystal may end in another local minimum",
    )  # fmt: skip
    p.add_argument("--jobs", type=_nonnegative_int, default=0, help="worker processes (default 0 = all cores)")
    p.add_argument("--cache-dir", help=f"feature cache folder (default ${ENV_VAR} or ~/.cache/crystal-eval)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--label", default="samples", help="row label in the printed table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _writable_folder(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what}: {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def _check_outputs(report: Path, details: str | None, plots: str | None) -> None:
    """The report and details files and the plots folder can be written (their folders are created);
    :class:`~crystal_eval.io.InputError` otherwise."""
    for path, what in ((report, "-o"), (Path(details) if details else None, "--details")):
        if path is None:
            continue
        if path.is_dir():
            raise InputError(f"{what} {path}: is a folder, not a file")
        _writable_folder(path.parent, f"{what} {path}")
    if plots:
        _writable_folder(Path(plots), f"--plots {plots}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from crystal_eval.cache import FeatureCache
    from crystal_eval.evaluation import (
        RATE_INTERVAL_NAMES,
        EvalConfig,
        evaluate_detailed,
        format_intervals,
        format_table,
    )
    from crystal_eval.io import load_items

    try:
        stability = None
        if not args.stability and (args.potential is not None or args.potential_model is not None):
            raise InputError("--potential and --potential-model choose the potential of --stability; add --stability")
        if args.stability:
            from functools import partial

            from crystal_eval.potential import CHGNetPotential, load_potential, potential_id, require_extra
            from crystal_eval.stability import StabilityConfig, _chgnet_id

            if args.potential is not None:
                if args.potential_model is not None:
                    raise InputError("--potential-model chooses CHGNet weights; it cannot go with --potential")
                label = load_potential(args.potential).label  # fails here, before any work, with the reason
                factory, pid = partial(load_potential, args.potential), potential_id(args.potential)
            else:
                require_extra()
                model = args.potential_model or "0.3.0"
                factory, pid, label = partial(CHGNetPotential, model), _chgnet_id(model), f"CHGNet {model}"
            stability = StabilityConfig(
                potential=factory,
                potential_id=pid,
                potential_label=label,
                reference=args.stability_reference,
                hull=args.hull,
                fmax=args.relax_fmax,
                max_steps=args.relax_steps,
                optimizer=args.relax_optimizer,
                time_limit=args.relax_time_limit if args.relax_time_limit > 0 else None,
                time_clock=args.relax_time_clock,
                prerelax_volume=args.prerelax_volume,
                relax_cell=args.relax_cell,
            )
            stability.validate()
        cfg = EvalConfig(
            n_eval=args.n_eval,
            n_un=args.n_un,
            seed=args.seed,
            subsets=dict(args.subset),
            symprec=args.symprec,
            angle_tolerance=args.angle_tolerance,
            cmd_moments=args.cmd_moments,
            time_limit=args.time_limit if args.time_limit > 0 else None,
            stability=stability,
            n_jobs=args.jobs or None,
            progress=not args.quiet,
        )
        cfg.validate()
        out = Path(args.output)
        _check_outputs(out, args.details, args.plots)  # before any work: nothing computed is lost on a bad path
        try:
            cache = FeatureCache(None if args.no_cache else (args.cache_dir or "default"))
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"cache folder {args.cache_dir or '(default)'}: cannot use it ({exc})") from None
        samples = load_items(args.samples, pt_sampling=args.pt_sampling)
        result = evaluate_detailed(samples, args.train, args.test, cfg, cache)
    except (InputError, ValueError) as exc:
        print(f"crystal-eval: error: {exc}", file=sys.stderr)
        return 2
    try:
        out.write_text(json.dumps(result.report, indent=2) + "\n")
        if args.details:
            result.details.to_csv(args.details, index=False)
        if args.plots:
            from crystal_eval.plots import write_plots

            write_plots(result.plot_data, args.plots, args.label)
    except OSError as exc:  # checked above; only a folder that changed meanwhile gets here
        print(f"crystal-eval: error: cannot write the results ({exc})", file=sys.stderr)
        return 2
    print(format_table(result.report, args.label))
    meta = result.report["meta"]
    print(
        f"\n{meta['n_samples']} crystals, {meta['n_struct_and_comp_valid']} valid; n_eval={meta['n_eval']}, "
        f"n_un={meta['n_un']}, seed={args.seed}; test n={meta['reference']['n_test']}, "
        f"train n={meta['reference']['n_train']}. JS = scipy Jensen-Shannon distance (natural log)."
    )
    pops = meta["config"]["subsets"]
    print(
        f"U.N. over the {'valid draw' if pops['un_rate'] == 'valid' else 'built crystals'}: "
        f"{meta['n_unique_and_novel']} of {meta['n_un']} unique and novel; populations: "
        + ", ".join(f"{k}={v}" for k, v in pops.items() if k != "un_rate")
    )
    if line := format_intervals(meta.get("intervals_95"), RATE_INTERVAL_NAMES):
        print(line)
    if meta["n_fingerprint_time_limit"] or meta["n_un_time_limit"]:
        print(
            f"time limit: {meta['n_fingerprint_time_limit']} fingerprints and {meta['n_un_time_limit']} "
            "U.N. checks ran into it (counted as failed; reasons in --details)"
        )
    if result.report.get("stability_meta"):
        from crystal_eval.stability import format_stability

        print(format_stability(result.report))
    for w in meta["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
