"""Command line: ``crystal-ar sample``, ``crystal-ar score``, ``crystal-ar train`` and ``crystal-ar preprocess``.

Errors with a name (``crystal_ar_model.errors`` and ``asu_geometry`` errors) print one line
``crystal-ar: error: <Name>: <reason>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crystal-ar", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"crystal-ar-model {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the model (works under torchrun for DDP)")
    t.add_argument("--config", default="tiny", help="shipped preset (tiny, default, paper) or a JSON file [tiny]")
    t.add_argument(
        "--data",
        default="mp20-available",
        help="dataset preset (mp20, mp20-available) or a CDVAE CSV file [mp20-available]",
    )
    t.add_argument("--data-dir", default=None, help="folder with the preset's CSV files")
    t.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl)")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="start again in a run directory that holds checkpoints (without it, or --resume, such a "
                   "directory is refused)")
    t.add_argument("--cache-dir", default=None, help="processed-data cache [$CRYSTAL_AR_CACHE or ~/.cache/crystal-ar]")
    t.add_argument("--epochs", type=_positive_int, default=None, help="override train.epochs")
    t.add_argument("--max-rows", type=_positive_int, default=None, help="override train.max_train_rows")
    t.add_argument("--seed", type=_nonnegative_int, default=None, help="override train.seed")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    pp = sub.add_parser("preprocess", help="convert CDVAE CSVs with to_asu into the cache; report failures")
    pp.add_argument("files", nargs="+", help="CDVAE CSV files (.csv, .csv.xz, .csv.gz)")
    pp.add_argument("--cache-dir", default=None, help="processed-data cache [$CRYSTAL_AR_CACHE or ~/.cache/crystal-ar]")
    pp.add_argument("--workers", type=_positive_int, default=2, help="to_asu processes [2]")
    pp.add_argument("--symprec", type=_positive_float, default=0.1, help="spglib distance tolerance, Angstrom [0.1]")
    pp.add_argument("--angle-tolerance", type=_positive_float, default=5.0,
                    help="spglib angle tolerance, degrees [5]")
    g = sub.add_parser(
        "sample",
        help="generate crystals (exactly symmetric, under hard constraints, with their log-likelihoods)",
        description="Generate crystals with the model: ancestral sampling under hard constraints (masks), "
        "in-filling of a partial crystal, output as samples.jsonl, samples.extxyz and symmetric CIFs.",
    )
    g.add_argument("-n", "--num", type=_positive_int, default=1000, help="crystals to generate [1000]")
    g.add_argument("--batch-size", type=_positive_int, default=500,
                   help="crystals per vectorised batch; also the block size of the random stream [500]")
    g.add_argument("--checkpoint", default=None, help="checkpoint or run directory [the model shipped in the package]")
    g.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the random stream [0]")
    g.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs [cpu]")
    g.add_argument("--space-group", default=None,
                   help="allowed space groups: numbers and/or Hermann-Mauguin symbols, comma separated "
                   "(225, Fm-3m, 221,225,229)")
    g.add_argument("--elements", default=None, help="allowed elements: the composition is a subset (Li,Fe,P,O)")
    g.add_argument("--require-elements", default=None, help="required elements: the composition is a superset")
    g.add_argument("--partial", default=None,
                   help="in-filling: a partial crystal (JSON AsuCrystal-like record or CIF) kept verbatim in every "
                   "sample")
    g.add_argument("--max-atoms", type=_positive_int, default=None,
                   help="atoms per primitive cell at most [the model's limit]")
    g.add_argument("--temperature", type=_positive_float, default=1.0,
                   help="divides every categorical's logits (reported log-likelihoods stay untempered) [1.0]")
    g.add_argument("--min-distance", type=_positive_float, default=None,
                   help="redraw a site's coordinates while an atom (images included) is closer than this many "
                   "Angstrom (at most 100 times) [off]")
    g.add_argument("--shard", default="0/1", type=_shard, help="draw shard i of n of the stream (i/n) [0/1]")
    g.add_argument("-o", "--out", required=True, help="output folder (samples.jsonl, samples.extxyz, cif/)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the samples of an earlier run in the output folder (without it, such a folder is "
                   "refused)")
    g.add_argument("--cif", default="dir", choices=("dir", "zip", "none"), help="CIFs as OUT/cif/, OUT/cif.zip or none")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes; on the CPU each runs whole blocks (draw, normal forms, scores), on a GPU "
                   "they derive the normal forms (spglib) beside the sampler; 0: all in this process; every "
                   "choice writes the same files [CPU: the CPU count; GPU: CPU count - 1, at least 1]")
    g.add_argument("--threads", type=_positive_int, default=1, help="torch threads [1]")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    s = sub.add_parser("score", help="per-crystal, per-factor log-likelihoods as CSV")
    s.add_argument("input", help="a CIF file, a folder of CIFs, a CDVAE CSV or an extended-XYZ file of periodic "
                   "crystals (.extxyz/.xyz, e.g. samples.extxyz; read with ASE)")
    s.add_argument("--checkpoint", default=None, help="checkpoint or run directory [the model shipped in the package]")
    s.add_argument("-o", "--output", default=None, help="CSV file to write [stdout]")
    s.add_argument("--symprec", type=_positive_float, default=0.1, help="spglib distance tolerance, Angstrom [0.1]")
    s.add_argument("--angle-tolerance", type=_positive_float, default=5.0, help="spglib angle tolerance, degrees [5]")
    s.add_argument(
        "--skip-invalid",
        action="store_true",
        help="report and skip crystals that cannot be converted instead of failing",
    )
    s.add_argument(
        "--workers", type=_nonnegative_int, default=1,
        help="processes for scoring (and for to_asu with --skip-invalid on CSV input); 0 or 1: this process [1]",
    )
    s.add_argument("--threads", type=_positive_int, default=1, help="torch threads [1: fastest for the small factors]")
    s.add_argument("--float64", action="store_true", help="evaluate the model in double precision")
    return p


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_int(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _nonnegative_int(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


SAMPLE_OUTPUTS = ("samples.jsonl", "samples.extxyz", "cif", "cif.zip")
"""What ``crystal-ar sample`` writes into its output folder."""


def _writable_folder(out: Path, what: str = "output folder") -> None:
    """Create ``out`` (and its parents) and check that a file can be written there (:class:`ConfigError` naming
    ``what`` the folder is for)."""
    import tempfile

    from .errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{what} {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {out}: cannot write there ({exc.strerror or exc})") from None


def check_sample_output(out: str | Path, overwrite: bool = False) -> None:
    """Before any work: ``out`` is a folder this process can write, and holds no earlier run's samples unless
    ``overwrite`` (nothing is replaced by accident). Raises :class:`.errors.ConfigError`."""
    from .errors import ConfigError

    out = Path(out)
    earlier = [name for name in SAMPLE_OUTPUTS if (out / name).exists()] if out.is_dir() else []
    if earlier and not overwrite:
        raise ConfigError(f"output folder {out} already holds an earlier run ({', '.join(earlier)}); pass --overwrite "
                          "to replace it, or choose another folder")
    _writable_folder(out)


def check_output_file(path: str | Path) -> None:
    """Before any work: ``path`` can be written as a file (its folder is created). Raises
    :class:`.errors.ConfigError`."""
    from .errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output file {path}: is a folder")
    _writable_folder(path.parent, f"output file {path}: its folder")


def _shard(text: str) -> tuple[int, int]:
    from .generate import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import default_checkpoint, resolve_checkpoint
    from .constraints import build_constraints
    from .errors import ConfigError
    from .generate import SampleRun, SampleSettings, checkpoint_sha256
    from .score import load_model

    check_sample_output(args.out, args.overwrite)
    torch.set_num_threads(args.threads)
    import os

    cores = os.cpu_count() or 2
    workers = args.workers if args.workers is not None else (cores if args.device == "cpu" else max(1, cores - 1))
    settings = SampleSettings(args.num, args.batch_size, args.seed, args.shard, args.temperature, args.min_distance,
                              args.cif, workers)
    constraints = build_constraints(args.space_group, args.elements, args.require_elements, args.partial,
                                    args.max_atoms)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to torch")
    ckpt = resolve_checkpoint(args.checkpoint) if args.checkpoint is not None else default_checkpoint()
    model, meta = load_model(ckpt if ckpt is not None else args.checkpoint)
    model = model.to(args.device)
    info = {"name": "shipped" if args.checkpoint is None else Path(str(ckpt)).name, "sha256": checkpoint_sha256(ckpt),
            "epoch": meta.get("epoch")}
    run = SampleRun(model, info, constraints, settings)
    run.run(args.out, progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import resolve_checkpoint
    from .config import Config
    from .errors import ConfigError
    from .train import train

    cfg = Config.load(args.config)
    _cache_folder(args.cache_dir)
    out = Path(args.out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite starts it again: choose one")
    earlier = resolve_checkpoint(out) if out.is_dir() and not (args.resume or args.overwrite) else None
    if earlier is not None:
        raise ConfigError(f"run directory {out} already holds a training run ({earlier}); pass --resume to continue "
                          "it, --overwrite to start again there, or choose another directory")
    _writable_folder(out, "run directory")
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
    if args.max_rows is not None:
        cfg.train.max_train_rows = args.max_rows
    if args.seed is not None:
        cfg.train.seed = args.seed
    train(
        cfg,
        args.data,
        args.data_dir,
        args.out,
        resume=args.resume,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    return 0


def _cache_folder(cache_dir: str | None) -> None:
    """The processed-data cache folder can be written (checked before any conversion)."""
    from .data import default_cache_dir

    _writable_folder(Path(cache_dir) if cache_dir else default_cache_dir(), "cache folder")


def _preprocess(args: argparse.Namespace) -> int:
    from .data import load_csv

    _cache_folder(args.cache_dir)
    for f in args.files:
        _, rep = load_csv(f, args.cache_dir, args.symprec, args.angle_tolerance, args.workers, progress=True)
        print(rep.summary())
        for ident, why in rep.failures:
            print(f"  failed {ident}: {why}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import torch

    from .score import score_path

    if args.output:
        check_output_file(args.output)
    torch.set_num_threads(args.threads)
    df = score_path(
        args.input,
        args.checkpoint,
        args.symprec,
        args.angle_tolerance,
        strict=not args.skip_invalid,
        workers=args.workers,
        float64=args.float64,
    )
    if args.output:
        df.to_csv(args.output, index=False, float_format="%.10g")
        print(f"wrote {len(df)} rows to {args.output}", file=sys.stderr)
    else:
        df.to_csv(sys.stdout, index=False, float_format="%.10g")
    return 0


def _glue_shard(argv: list[str]) -> list[str]:
    """``--shard -1/2`` as ``--shard=-1/2``: argparse takes a value that starts with '-' and is not a plain negative
    number for an option, and would say "expected one argument" instead of what is wrong with the shard."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--":  # the rest are positional arguments, whatever they look like
            return [*out, a, *it]
        if a == "--shard":
            value = next(it, None)
            out.append("--shard" if value is None else f"--shard={value}")
        else:
            out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crystal-ar`` console script."""
    args = _parser().parse_args(_glue_shard(list(sys.argv[1:] if argv is None else argv)))
    from asu_geometry import AsuGeometryError

    from .allocator import keep_freed_memory
    from .errors import CrystalARError

    keep_freed_memory()  # every command, and the workers it forks (glibc's malloc; crystal_ar_model.allocator)
    try:
        return {"train": _train, "score": _score, "preprocess": _preprocess, "sample": _sample}[args.command](args)
    except (CrystalARError, AsuGeometryError, OSError) as exc:  # OSError: a file or folder that cannot be used
        print(f"crystal-ar: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
