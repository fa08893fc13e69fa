"""Build the benchmark report (issue 12): ``docs/results.json``, ``docs/results.md`` and ``docs/figures/``.

    python docs/report/build.py                  # from the committed samples and the shipped model
    python docs/report/build.py --resample       # draw the 2 x 10,000 samples again first (and store them)
    nox -s report [-- --resample ...]            # the same in a fresh nox environment

Stages (each timed; the wall times go into the JSON):

1. **samples**: with ``--resample``, ``crystal-ar sample -n N --seed 0`` and again with ``--min-distance 0.5``;
   the records are stored xz-compressed as ``SAMPLES_DIR/seed0.samples.jsonl.xz`` and
   ``SAMPLES_DIR/seed0-mindist0.5.samples.jsonl.xz`` with a small ``*.run.json`` beside each (the sampler's own
   timing, hardware, command). Without it, the stored files are read (and their checkpoint hash must match).
2. **extxyz**: the crystals as drawn, re-derived from the records (``asu_geometry.writers.to_extxyz``; the same
   frames ``crystal-ar sample`` writes), because crystal-eval reads extxyz but not the ASU records.
3. **crystal-eval** for both sample sets and for the data row (the test rows scored as if generated), fixed seed,
   train/test files from ``crystal_eval.data_row.find_mp20`` (full MP-20 when ``DATA_DIR/mp_20`` exists, else
   the available subset); ``--cache-dir`` should hold the warm reference features (cold: about 70 min).
4. **nll**: ``crystal-ar score`` of the test file with the checkpoint, averaged per factor.
5. **fidelity**: ``crystal_ar_model.fidelity.fidelity_table`` of the seed-0 set; sampled groups and Wyckoff
   dimensions against the test rows (crystal-eval's cached test features).
6. **figures**: crystal-eval's space-group / N_el / density plots of the seed-0 set, Wyckoff-dimension bars,
   NLL curves of the checkpoint's ``metrics.jsonl``, the first 16 seed-0 samples as pictures.
7. **render**: one JSON, then the markdown rendered from it alone (``render.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402  (sibling module; this file runs as a script)

ROOT = Path(__file__).resolve().parents[2]
PAPER_TABLE = ROOT / "docs" / "paper_table1.json"
SETS = {  # key -> (file stem, extra crystal-ar sample options, row label)
    "seed0": ("seed0", [], "crystal-ar, seed 0"),
    "mindist": ("seed0-mindist0.5", ["--min-distance", "0.5"], "crystal-ar, seed 0, --min-distance 0.5"),
}
COLUMNS = [  # key, title, decimals, which direction is better
    ("structural_validity", "Struct. valid %", 2, "higher"),
    ("compositional_validity", "Comp. valid %", 2, "higher"),
    ("un_rate", "U.N. %", 2, "higher"),
    ("wasserstein_density", "W1 density", 4, "lower"),
    ("wasserstein_num_elements", "W1 N_el", 4, "lower"),
    ("jsd_space_group", "JSD space group", 4, "lower"),
    ("jsd_wyckoff_dim", "JSD Wyckoff dim", 4, "lower"),
    ("cmd_crystalnn", "CMD", 4, "lower"),
    ("diversity_structure", "Div. struct.", 4, "data"),  # closer to the data row is better: not compared
    ("diversity_composition", "Div. comp.", 3, "data"),
    ("seconds_per_500", "s / 500 crystals", 1, "hardware"),  # not compared: CPU against the paper's GPU
]
FULL_MP20 = {"train": 27136, "test": 9046, "source": "../shared/data/SOURCES.md (CDVAE MP-20 split sizes)"}
PAPER_HARDWARE = "NVIDIA A40 (as reported by the paper)"
EVAL_SEED = 0
GRID = 16


class ReportError(RuntimeError):
    """A stage of the report failed (message names the stage and the reason)."""


# ------------------------------------------------------------------------------------------------ helpers
def log(msg: str) -> None:
    print(f"[report {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def stage(times: dict[str, float], name: str) -> Iterator[None]:
    """Log and time one stage (wall seconds into ``times[name]``)."""
    log(f"{name} ...")
    t0 = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - t0, 2)
    log(f"{name} done in {times[name]:.1f} s")


def _exe(name: str) -> str:
    cand = Path(sys.executable).parent / name
    found = str(cand) if cand.exists() else shutil.which(name)
    if not found:
        raise ReportError(f"{name} is not installed in this environment")
    return found


def run_tool(cmd: Sequence[str], log_path: Path) -> str:
    """Run a console script, showing its output (progress bars) live and keeping it in ``log_path``."""
    log("$ " + " ".join(cmd))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    buf = bytearray()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(8192):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            fh.write(chunk)
            buf += chunk
        rc = proc.wait()
    text = buf.decode(errors="replace")
    if rc != 0:
        raise ReportError(f"{Path(cmd[0]).name} exited with status {rc}: {text.strip().splitlines()[-1:]}")
    return text


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sample_speed_row(key: str, info: dict[str, Any]) -> dict[str, Any]:
    """The speed-table row of sample set ``key`` from its ``*.run.json`` (``info``)."""
    return {"label": SETS[key][2], "seconds_per_500": info["seconds_per_500"], "digits": 1,
            "hardware": f"{info['hardware']['label']}, torch 1 thread, {workers_label(info)}, "
                        f"load average {info['hardware']['load_average']:.1f}",
            "source": f"{info['file']} ({info['n']} crystals in {info['seconds']:.1f} s)"}


def workers_label(info: dict[str, Any]) -> str:
    """How a CPU sampling run used its processes (``crystal-ar sample --workers``): each worker draws whole
    blocks (the draw, the scorer's normal forms, the redraws and the scores); 0 means all in one process."""
    if info.get("workers") is None:  # the sampler's default: one worker process per core
        return "crystal-ar sample's default workers (one process per core) drawing whole blocks"
    n = int(info["workers"])
    if n == 0:
        return "no worker process (all in one process)"
    return f"{n} worker process{'es' if n > 1 else ''} drawing whole blocks"


def hardware() -> dict[str, Any]:
    """CPU model and core count of this machine, and the load average now."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 1
    return {"cpu": cpu, "cores": cores, "load_average": os.getloadavg()[0],
            "label": f"{cores} CPU cores ({cpu})"}


def rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (machine-independent JSON)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------ stages
SUMMARY_RE = re.compile(r"(\d+) crystals in ([\d.]+) s \(([\d.]+) crystals/s\)")


def draw_samples(key: str, n: int, ckpt: Path, samples_dir: Path, work: Path, workers: int | None) -> dict[str, Any]:
    """``crystal-ar sample`` for one set; stores the xz records and the run's timing beside them."""
    stem, extra, _ = SETS[key]
    out = work / f"sample-{stem}"
    cmd = [_exe("crystal-ar"), "sample", "-n", str(n), "--seed", "0", "--checkpoint", str(ckpt), "-o", str(out),
           "--overwrite", "--cif", "none", *extra]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    hw = hardware()
    t0 = time.perf_counter()
    text = run_tool(cmd, work / f"sample-{stem}.log")
    wall = time.perf_counter() - t0
    m = SUMMARY_RE.search(text)
    if m is None:
        raise ReportError(f"crystal-ar sample printed no '<n> crystals in <t> s' summary (log: {work})")
    crystals, seconds = int(m.group(1)), float(m.group(2))
    samples_dir.mkdir(parents=True, exist_ok=True)
    dest = samples_dir / f"{stem}.samples.jsonl.xz"
    with open(out / "samples.jsonl", "rb") as src, lzma.open(dest.with_suffix(".xz.partial"), "wb", preset=9) as dst:
        shutil.copyfileobj(src, dst)
    os.replace(dest.with_suffix(".xz.partial"), dest)
    info = {"file": dest.name, "n": crystals, "seconds": seconds, "command_wall_seconds": round(wall, 2),
            "crystals_per_s": crystals / seconds, "seconds_per_500": 500.0 * seconds / crystals,
            "workers": workers, "command": ["crystal-ar", *cmd[1:]], "hardware": hw,
            "summary": text[m.start():].strip().splitlines(),
            "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    info["command"][info["command"].index("--checkpoint") + 1] = rel(ckpt)
    info["command"][info["command"].index("-o") + 1] = "OUT"
    (samples_dir / f"{stem}.run.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def load_set(key: str, samples_dir: Path, n: int | None) -> tuple[list[Any], dict[str, Any]]:
    """The records of a stored set (the first ``n`` when given) and its run information."""
    from crystal_ar_model.outputs import read_samples

    stem = SETS[key][0]
    path = samples_dir / f"{stem}.samples.jsonl.xz"
    if not path.is_file():
        raise ReportError(f"{path} does not exist: run with --resample to draw the samples")
    records = read_samples(path)
    with lzma.open(path, "rt") as fh:  # read_samples keeps the crystals, not the run metadata
        shas = {json.loads(ln)["run"]["checkpoint"].get("sha256") for ln in fh if ln.strip()}
    info = json.loads((samples_dir / f"{stem}.run.json").read_text())
    if n is not None:
        if n > len(records):
            raise ReportError(f"-n {n} but {path} holds {len(records)} records: run with --resample")
        records = records[:n]
    return records, {**info, "checkpoint_sha256": sorted(map(str, shas))}


def write_extxyz(records: Sequence[Any], path: Path) -> Path:
    """The crystals as drawn, as extxyz frames (what crystal-eval reads): the same text as the ``samples.extxyz``
    that ``crystal-ar sample`` wrote for these records."""
    from asu_geometry.writers import to_extxyz

    path.write_text(to_extxyz([r.sample for r in records], [{"id": r.id, **r.logp} for r in records]))
    return path


def crystal_eval(samples: Path, train: Sequence[Path], test: Path, out: Path, label: str, cache: Path | None,
                 jobs: int, plots: Path | None = None) -> dict[str, Any]:
    cmd = [_exe("crystal-eval"), str(samples), "--train", *map(str, train), "--test", str(test),
           "-o", str(out), "--details", str(out.with_suffix(".details.csv")), "--seed", str(EVAL_SEED),
           "--label", label, "--jobs", str(jobs)]
    if cache is not None:
        cmd += ["--cache-dir", str(cache)]
    if plots is not None:
        cmd += ["--plots", str(plots)]
    run_tool(cmd, out.with_suffix(".log"))
    return json.loads(out.read_text())


def test_nll(test: Path, ckpt: Path, work: Path, workers: int) -> dict[str, Any]:
    """``crystal-ar score`` of the test file; mean negative log-likelihood per factor."""
    import pandas as pd

    out = work / "test-scores.csv"
    run_tool([_exe("crystal-ar"), "score", str(test), "--checkpoint", str(ckpt), "-o", str(out), "--skip-invalid",
              "--workers", str(workers)], work / "score.log")
    df = pd.read_csv(out)
    from crystal_eval.io import read_cdvae_csv

    n_rows = len(read_cdvae_csv(test))
    cols = [c for c in df.columns if c.startswith("logp_")]
    factors = [{"factor": c.removeprefix("logp_"), "nats": float(-df[c].mean())} for c in cols]
    return {"file": test.name, "n_rows": n_rows, "n_scored": len(df), "n_skipped": n_rows - len(df),
            "factors": factors, "ablations": ablation_section()}


ABLATION_JSON = Path(__file__).resolve().parent / "ablation.json"


def ablation_section() -> dict[str, Any]:
    """The stabiliser ablations, read from the committed ``docs/report/ablation.json`` (made by
    ``docs/report/ablation.py``: five training runs, too long for this session)."""
    if not ABLATION_JSON.is_file():
        return {"status": "not run", "reason": "no docs/report/ablation.json (run docs/report/ablation.py).",
                "rows": []}
    d = json.loads(ABLATION_JSON.read_text())
    base = next(r["test_nll"]["total"] for r in d["rows"] if r["key"] == "baseline")
    return {"status": f"read from `{rel(ABLATION_JSON)}`", "reason": "; ".join([d["budget_note"], d["protocol"]]),
            "command": d["command"], "epochs": d["epochs"], "hardware": d["hardware"]["label"],
            "baseline_vs_shipped": next(r.get("shipped_run_val_nll_max_abs_diff") for r in d["rows"]
                                        if r["key"] == "baseline"),
            "rows": [{"key": r["key"], "label": r["label"], "n_scored": r["n_scored"], "test_nll": r["test_nll"],
                      "best_epochs": r["best_epochs"], "delta_total": r["test_nll"]["total"] - base}
                     for r in d["rows"]]}


def wyckoff_dims(crystal: Any) -> list[int]:
    import asu_geometry as ag

    g = ag.space_group(crystal.space_group)
    return [g.wyckoff(s.wyckoff).dim for s in crystal.sites]


def distributions(records: Sequence[Any], test: Path, cache: Path | None, top: int = 10) -> dict[str, Any]:
    """Sampled space groups and Wyckoff dimensions (as drawn) against crystal-eval's test features."""
    import asu_geometry as ag
    from crystal_eval.cache import FeatureCache
    from crystal_eval.evaluation import EvalConfig, test_reference

    cfg = EvalConfig()
    ref = test_reference([test], cfg, FeatureCache(str(cache) if cache else None))
    sg = Counter(r.sample.space_group for r in records)
    tg = Counter(int(g) for g in ref.space_groups)
    n, nt = len(records), len(ref.space_groups)
    dims = Counter(d for r in records for d in wyckoff_dims(r.sample))
    nd = sum(dims.values())
    th = [float(v) for v in ref.wyckoff_hist]
    return {
        "n_samples": n, "n_test": nt, "test_symprec": cfg.symprec,
        "n_groups_samples": len(sg), "n_groups_test": len(tg),
        "space_group_top": [{"number": g, "symbol": ag.space_group(g).symbol, "samples_pct": 100.0 * k / n,
                             "test_pct": 100.0 * tg.get(g, 0) / nt} for g, k in sg.most_common(top)],
        "wyckoff_dim": {"dims": [0, 1, 2, 3], "samples_pct": [100.0 * dims.get(d, 0) / nd for d in range(4)],
                        "test_pct": [100.0 * v / sum(th) for v in th]},
    }


def paper_rows() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The paper's rows from docs/paper_table1.json: transcribed values first, else the project notes' values
    (flagged as unverified), else None."""
    table = json.loads(PAPER_TABLE.read_text())
    notes = table.get("unverified_values_from_project_notes", {})
    rows = []
    for model, vals in table["rows"].items():
        values, unverified = {}, {}
        for key, *_ in COLUMNS:
            v = vals.get(key)
            if v is None and notes.get(model, {}).get(key) is not None:
                v = notes[model][key]
                unverified[key] = True
            values[key] = v
        rows.append({"key": f"paper:{model}", "label": model, "protocol": "paper, full MP-20 protocol",
                     "group": "paper", "values": values, "unverified": unverified})
    return rows, table


def grid_entries(records: Sequence[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    import asu_geometry as ag
    from asu_geometry.writers import to_structures

    first = list(records[:GRID])
    structures = to_structures([r.sample for r in first])
    entries = [{"id": r.id, "formula": s.composition.reduced_formula, "space_group": r.sample.space_group,
                "symbol": ag.space_group(r.sample.space_group).symbol, "logp_total": r.logp.get("logp_total")}
               for r, s in zip(first, structures, strict=True)]
    return structures, entries


# ------------------------------------------------------------------------------------------------ main
def build(args: argparse.Namespace) -> dict[str, Any]:
    import figures
    from crystal_ar_model.checkpoint import default_checkpoint, find_metrics, read_meta, resolve_checkpoint
    from crystal_ar_model.fidelity import RELATIONS, fidelity_table
    from crystal_ar_model.generate import checkpoint_sha256
    from crystal_ar_model.score import load_model
    from crystal_eval.data_row import find_mp20

    t_all = time.perf_counter()
    times: dict[str, float] = {}
    out_dir, samples_dir = Path(args.out_dir), Path(args.samples_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="crystal-ar-report-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else None
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    sample_workers = None if args.jobs == 0 else max(jobs - 1, 0)
    hw = hardware()

    ckpt = resolve_checkpoint(args.checkpoint) if args.checkpoint else default_checkpoint()
    if ckpt is None:
        raise ReportError(f"{args.checkpoint}: no checkpoint found")
    meta = read_meta(ckpt)
    sha = checkpoint_sha256(ckpt)
    model, _ = load_model(ckpt)
    n_params = int(sum(p.numel() for p in model.parameters()))
    del model
    data_label, train, test = find_mp20(Path(args.data_dir))
    full = data_label == "data (MP-20)"

    # 1. samples
    sets: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    with stage(times, "samples"):
        for key in SETS:
            if args.resample:
                draw_samples(key, args.n or 10_000, ckpt, samples_dir, work, sample_workers)
            sets[key] = load_set(key, samples_dir, args.n)
            got = set(sets[key][1]["checkpoint_sha256"])
            if got != {sha}:
                raise ReportError(f"{SETS[key][0]}: the samples come from checkpoint(s) {sorted(map(str, got))}, "
                                  f"not {ckpt} (sha256 {sha[:12]}); run with --resample")
    n = len(sets["seed0"][0])

    # 2. extxyz for crystal-eval
    with stage(times, "extxyz"):
        xyz = {key: write_extxyz(recs, work / f"{SETS[key][0]}.extxyz") for key, (recs, _) in sets.items()}

    # 3. crystal-eval
    evals: dict[str, dict[str, Any]] = {}
    for key in SETS:
        with stage(times, f"crystal-eval {SETS[key][0]}"):
            evals[key] = crystal_eval(xyz[key], train, test, work / f"eval-{SETS[key][0]}.json", SETS[key][2],
                                      cache, jobs, plots=work / "plots" if key == "seed0" else None)
    with stage(times, "crystal-eval data row"):
        evals["data"] = crystal_eval(test, train, test, work / "eval-data.json", data_label, cache, jobs)

    # 4. NLL
    with stage(times, "test NLL"):
        nll = test_nll(test, ckpt, work, jobs)

    # 5. fidelity and distributions
    with stage(times, "symmetry fidelity"):
        seed0 = sets["seed0"][0]
        fid = fidelity_table([r.sample for r in seed0], progress=True)
        fid.update(file=rel(samples_dir / f"{SETS['seed0'][0]}.samples.jsonl.xz"), relations=list(RELATIONS),
                   symprecs=list(fid["spglib"]), tolerance_text=f"{fid['tolerance']:g}")
        dist = distributions(seed0, test, cache)

    # 6. figures
    figs: list[dict[str, str]] = []
    with stage(times, "figures"):
        for name, title, caption in (
                ("space_groups", "Space groups", "U.N. crystals of crystal-eval's valid draw of the seed-0 set "
                 "against the test rows, spglib at symprec 0.1"),
                ("num_elements", "Number of elements", "same population"),
                ("density", "Density", "same population, g/cm^3")):
            shutil.copyfile(work / "plots" / f"{name}.png", fig_dir / f"{name}.png")
            figs.append({"title": title, "caption": caption, "path": f"figures/{name}.png"})
        wd = dist["wyckoff_dim"]
        figures.wyckoff_dim_bars(wd["samples_pct"], wd["test_pct"], fig_dir / "wyckoff_dims.png", "seed 0")
        figs.append({"title": "Wyckoff dimensions", "caption": f"all {n} seed-0 samples as drawn against the test "
                     "rows", "path": "figures/wyckoff_dims.png"})
        metrics_path = Path(args.metrics) if args.metrics else find_metrics(ckpt)
        if metrics_path is not None:
            metrics = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln.strip()]
            units = {u: v["epoch"] for u, v in meta.get("selection", {}).get("units", {}).items()}
            figures.nll_curves(metrics, fig_dir / "nll_curves.png", units)
            figs.append({"title": "NLL curves", "caption": f"{rel(metrics_path)}, {len(metrics)} epochs",
                         "path": "figures/nll_curves.png"})
        else:
            log("no metrics.jsonl beside the checkpoint: NLL curves skipped (pass --metrics)")
        structures, grid = grid_entries(seed0)
        titles = [f"{g['formula']}  {g['symbol']} ({g['space_group']})\nlog p = {g['logp_total']:.1f}" for g in grid]
        figures.sample_grid(structures, titles, fig_dir / "samples_grid.png")
        figs.append({"title": f"The first {len(grid)} seed-0 samples", "caption": "not selected; formula, sampled "
                     "space group and the model's log-likelihood (nats) of each", "path": "figures/samples_grid.png"})

    # 7. the JSON and the page
    speed_rows = []
    for key in SETS:
        info = sets[key][1]
        speed_rows.append(sample_speed_row(key, info))
    prow, paper = paper_rows()
    for r in prow:
        if r["values"].get("seconds_per_500") is not None:
            speed_rows.append({"label": r["label"], "seconds_per_500": r["values"]["seconds_per_500"], "digits": 0,
                               "hardware": PAPER_HARDWARE, "source": "paper" + (
                                   ", unverified (project notes)" if r["unverified"].get("seconds_per_500") else "")})
    rows = []
    for key in SETS:
        v = {k: evals[key].get(k) for k, *_ in COLUMNS}
        v["seconds_per_500"] = sets[key][1]["seconds_per_500"]
        rows.append({"key": key, "label": SETS[key][2], "protocol": "MP-20 available-subset protocol" if not full
                     else "full MP-20 protocol (ours)", "group": "ours", "values": v,
                     "intervals_95": table_intervals(evals[key])})
    v = {k: evals["data"].get(k) for k, *_ in COLUMNS}
    rows.append({"key": "data", "label": "data (test rows as samples)", "protocol": rows[0]["protocol"],
                 "group": "data", "values": v, "intervals_95": table_intervals(evals["data"])})
    rows += prow
    ev_conf = evals["seed0"]["meta"]["config"]
    ref = evals["data"]["meta"]["reference"]
    sel = meta.get("selection", {}).get("units", {})
    train_cfg = meta["config"]["train"]
    report = {
        "format": render.FORMAT,
        "title": "Benchmark report: crystal-ar on " + ("MP-20" if full else "the MP-20 available subset"),
        "built": {"command": args.command_label, "json": "results.json", "git_commit": git_commit(),
                  "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "stages": times},
        "hardware": hw,
        "model": {"name": rel(ckpt), "sha256": sha, "epoch": meta.get("epoch"), "parameters": n_params,
                  "config": meta["config"].get("name", "?"),
                  "description": f"crystal-ar ({meta['config'].get('name', '?')} config)",
                  "selection": {u: s["epoch"] for u, s in sel.items()},
                  "val_nll_total": meta.get("selection", {}).get("val_nll_total")},
        "data": {"protocol_ours": rows[0]["protocol"], "protocol_paper": "paper, full MP-20 protocol",
                 "train_files": [p.name for p in train], "test_files": [test.name],
                 "n_train_rows": ref["n_train"], "n_test_rows": ref["n_test"], "full_mp20": FULL_MP20,
                 "train_fraction_pct": 100.0 * ref["n_train"] / FULL_MP20["train"]},
        "samples": {key: {**info, "n": len(recs)} for key, (recs, info) in sets.items()},
        "table": {
            "columns": [{"key": k, "title": t, "digits": d, "better": b} for k, t, d, b in COLUMNS],
            "rows": rows,
            "eval": {"seed": ev_conf["seed"], "n_un": ev_conf["n_un"], "n_eval": ev_conf["n_eval"],
                     "population": "unique-and-novel (U.N.)" if ev_conf["subsets"]["cmd_crystalnn"] == "un"
                     else ev_conf["subsets"]["cmd_crystalnn"], "symprec": ev_conf["symprec"],
                     "conventions": evals["seed0"]["meta"]["conventions"]["js"] + "; density: "
                     + evals["seed0"]["meta"]["conventions"]["density"] + "."},
            "notes": [
                "† value from this project's notes, NOT verified against the paper (arXiv 2505.10994): "
                + paper["status"].split(".")[0] + "; see docs/paper_table1.json.",
                "n/a: not available (not transcribed from the paper, or not applicable).",
                "The data row scores the test rows themselves against the training rows: the best a model can be "
                "expected to reach on this protocol.",
                "The available test rows are not a random sample of the MP-20 test split: after the first 1000 "
                "rows they hold only binary and ternary compounds (../shared/data/SOURCES.md).",
            ],
        },
        "stability": stability_section(),
        "nll": nll,
        "fidelity": fid,
        "distributions": dist,
        "speed": {"rows": speed_rows},
        "figures": figs,
        "grid": grid,
        "evals": {k: {"label": SETS[k][2] if k in SETS else data_label, "report": e} for k, e in evals.items()},
        "discussion": {
            "ours_row": "seed0", "paper_row": "paper:WyckoffAUGen", "data_row": "data",
            "training_hardware": f"CPU, {meta.get('world_size', 1)} process(es) x {train_cfg.get('threads', 1)} "
                                 f"torch thread(s), batch {train_cfg.get('batch_size')}",
            "selection_text": ", ".join(f"{u} from epoch {s['epoch']}" for u, s in sel.items()) or "last epoch",
            "paper_rows_text": "The paper's Table 1 could not be read from any stored copy; only values quoted in "
                               "this project's notes are shown (marked †) and all others are n/a. The WyckoffAUGen "
                               "name does not occur in the paper's stored excerpts (docs/paper_table1.json).",
            "experiment": "train the same configuration on the full MP-20 training split and rebuild this report "
                          "on the full test split (commands below); if the gap to the paper's row closes, the data "
                          "explain it, otherwise the model size and training budget do.",
            "full_protocol_commands": [
                "crystal-ar train --config default --data mp20 --data-dir DIR --out runs/full",
                "python docs/report/build.py --resample --checkpoint runs/full/best --data-dir PARENT_OF_mp_20 "
                "--out-dir out/full-report --samples-dir out/full-report/samples",
            ],
        },
    }
    times["total"] = round(time.perf_counter() - t_all, 2)
    out_json = out_dir / "results.json"
    out_json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "results.md").write_text(render.render(json.loads(out_json.read_text())))
    log(f"wrote {out_json}, {out_dir / 'results.md'} and {len(figs)} figures in {fig_dir} "
        f"({times['total']:.0f} s; work files in {work})")
    return report


TABLE_INTERVAL_KEYS = ("structural_validity", "compositional_validity", "un_rate")


def table_intervals(rep: dict[str, Any]) -> dict[str, list[float] | None]:
    """95 % Wilson intervals of a crystal-eval report's Table 1 rates (structural and compositional validity over
    all samples, U.N. over the valid draw): the report's own ``meta.intervals_95``, or, for a report written before
    crystal-eval recorded them, the same intervals from its counts."""
    from crystal_eval.metrics import wilson_interval

    m = rep["meta"]
    if m.get("intervals_95"):
        return {k: (list(v) if v else None) for k, v in m["intervals_95"].items() if k in TABLE_INTERVAL_KEYS}
    counts = {
        "structural_validity": (m["n_struct_valid"], m["n_samples"]),
        "compositional_validity": (m["n_comp_valid"], m["n_samples"]),
        "un_rate": (m["n_unique_and_novel"], m["n_un"]),
    }
    return {k: (list(iv) if (iv := wilson_interval(*c)) else None) for k, c in counts.items()}


STABILITY_JSONS = (  # committed crystal-eval --stability reports, each with the command that produced it
    Path(__file__).resolve().parent / "samples-stability.json",
    Path(__file__).resolve().parent / "data-row-stability.json",
)
STABILITY_KEYS = ("stable_rate", "stable_rate_0", "sun_rate", "sun_rate_0", "relax_rmsd_median", "sg_kept_rate")


def stability_intervals(rep: dict[str, Any]) -> dict[str, list[float] | None]:
    """95 % Wilson intervals of a committed ``--stability`` report's rates: the report's own ``intervals_95``, or,
    for a report written before crystal-eval recorded them, the same intervals from its counts."""
    from crystal_eval.metrics import wilson_interval

    sm = rep["stability_meta"]
    if sm.get("intervals_95"):
        return sm["intervals_95"]
    n_kept = round(rep["sg_kept_rate"] * sm["n_space_group_compared"] / 100) if sm["n_space_group_compared"] else 0
    counts = {
        "stable_rate": (sm["n_stable"], sm["n_evaluated"]),
        "stable_rate_0": (sm["n_stable_0"], sm["n_evaluated"]),
        "sun_rate": (sm["n_stable"], sm["n_draw"]),
        "sun_rate_0": (sm["n_stable_0"], sm["n_draw"]),
        "sg_kept_rate": (n_kept, sm["n_space_group_compared"]),
    }
    return {k: (list(iv) if (iv := wilson_interval(*c)) else None) for k, c in counts.items()}


OLD_RELAX_CELL = ("the cell as given (the report predates `--relax-cell`; with today's crystal-eval, "
                  "`--relax-cell input` relaxes the same cells)")


def stability_section() -> dict[str, Any]:
    """The stability columns, read from the committed crystal-eval ``--stability`` reports in ``docs/report/``
    (each holds the command that produced it). They are not recomputed by the report session: CHGNet relaxations
    of thousands of crystals do not fit its time budget on 2 CPU cores."""
    rows = []
    for path in STABILITY_JSONS:
        if not path.is_file():
            continue
        d = json.loads(path.read_text())
        rep = d["report"]
        sm = rep["stability_meta"]
        rows.append({"label": d["label"], "what": d["what"], "command": d["command"], "file": rel(path),
                     "potential": sm["label"], "n_evaluated": sm["n_evaluated"], "n_draw": sm["n_draw"],
                     "values": {k: rep[k] for k in STABILITY_KEYS}, "intervals_95": stability_intervals(rep),
                     "relax_cell": sm["config"].get("relax_cell") or OLD_RELAX_CELL})
    if not rows:
        return {"status": "not run", "reason": "no committed crystal-eval --stability report in docs/report/.",
                "rows": []}
    return {"status": "read from committed crystal-eval --stability reports",
            "reason": "they are not recomputed by this session (CHGNet relaxations are too slow for it on 2 CPU "
                      "cores); each row names its population and the command that produced it.", "rows": rows}


def refresh_committed(out_dir: Path, samples_dir: Path = ROOT / "docs" / "samples") -> None:
    """Replace the sections of ``out_dir/results.json`` that are read from committed files (the crystal-eval
    ``--stability`` reports, :func:`stability_section`; the stabiliser ablations, :func:`ablation_section`), derive
    Table 1's rate intervals from the crystal-eval reports the JSON holds (:func:`table_intervals`), the speed rows
    of our sample sets from their committed ``*.run.json`` (:func:`sample_speed_row`), and render
    ``results.md`` again; every other value is kept."""
    path = out_dir / "results.json"
    if not path.is_file():
        raise ReportError(f"{path}: no report to refresh; run the whole session first")
    report = json.loads(path.read_text())
    report["stability"] = stability_section()
    report["nll"]["ablations"] = ablation_section()
    for row in report["table"]["rows"]:  # Table 1's rate intervals, from the crystal-eval reports the JSON holds
        if row.get("key") in report.get("evals", {}):
            row["intervals_95"] = table_intervals(report["evals"][row["key"]]["report"])
    ours = {SETS[key][2]: key for key in SETS}  # the speed rows of our sample sets, from their run.json files
    for i, row in enumerate(report["speed"]["rows"]):
        run_json = samples_dir / f"{SETS[ours[row['label']]][0]}.run.json" if row["label"] in ours else None
        if run_json is not None and run_json.is_file():
            report["speed"]["rows"][i] = sample_speed_row(ours[row["label"]], json.loads(run_json.read_text()))
    path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "results.md").write_text(render.render(json.loads(path.read_text())))
    log(f"refreshed the stability section of {path} ({len(report['stability']['rows'])} row(s)), the ablations "
        f"({len(report['nll']['ablations']['rows'])} run(s)) and results.md")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/report/build.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--resample", action="store_true", help="draw both sample sets again and store them")
    p.add_argument("-n", type=int, default=None,
                   help="samples per set [with --resample 10000; else every stored record (the first N if given)]")
    p.add_argument("--checkpoint", default=None, help="checkpoint or run directory [the shipped model]")
    p.add_argument("--metrics", default=None, help="the training run's metrics.jsonl [beside the checkpoint]")
    p.add_argument("--data-dir", default=os.environ.get("CRYSTAL_EVAL_DATA", str(ROOT.parent / "shared" / "data")),
                   help="folder with mp_20/ (full split) or mp_20_partial/ [$CRYSTAL_EVAL_DATA or ../shared/data]")
    p.add_argument("--out-dir", default=str(ROOT / "docs"), help="results.json, results.md, figures/ [docs/]")
    p.add_argument("--samples-dir", default=str(ROOT / "docs" / "samples"),
                   help="stored sample sets (*.samples.jsonl.xz, *.run.json) [docs/samples/]")
    p.add_argument("--work-dir", default=None, help="intermediate files (extxyz, eval JSON, logs) [a temp folder]")
    p.add_argument("--cache-dir", default=os.environ.get("CRYSTAL_EVAL_CACHE"),
                   help="crystal-eval feature cache [$CRYSTAL_EVAL_CACHE or crystal-eval's default]")
    p.add_argument("--jobs", type=int, default=0,
                   help="processes: crystal-eval --jobs, score --workers, sample --workers jobs-1 [0: all cores]")
    p.add_argument("--refresh-committed", "--refresh-stability", dest="refresh", action="store_true",
                   help="only re-read the committed --stability reports and ablation.json into OUT_DIR/results.json "
                   "and re-render results.md (no sampling or evaluation)")
    p.add_argument("--command-label", default="python docs/report/build.py", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        p.error("-n must be at least 1")
    try:
        if args.refresh:
            refresh_committed(Path(args.out_dir), Path(args.samples_dir))
        else:
            build(args)
    except (ReportError, FileNotFoundError) as exc:
        print(f"report: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
