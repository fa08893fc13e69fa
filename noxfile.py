"""Every workflow of the monorepo is a nox session.

    nox -s tests                 # all package tests + cross-package tests (what CI runs)
    nox -s tests_asu_geometry    # one package
    nox -s lint                  # ruff
    nox -s sample                # the main job: generate crystals with the shipped model (see README)
    nox -s demo                  # the exact ASU and Wyckoff shapes of one space group, printed and plotted

Every session installs with ``constraints.txt`` so CI and developers resolve the same versions.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
PACKAGES = {
    "asu_geometry": "packages/asu-geometry",
    "polygon_flows": "packages/polygon-flows",
    "crystal_ar_model": "packages/crystal-ar-model",
    "crystal_eval": "packages/crystal-eval",
}
# Installation order respects the dependency direction (leaves first).
ALL_WITH_TEST_EXTRAS = [
    f"./{PACKAGES['asu_geometry']}[test,build]",
    f"./{PACKAGES['polygon_flows']}[test]",
    f"./{PACKAGES['crystal_ar_model']}[test]",
    f"./{PACKAGES['crystal_eval']}[test,stability]",  # stability: CHGNet, weights in the wheel
]

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


def _install(session: nox.Session, *specs: str) -> None:
    session.install("-c", CONSTRAINTS, "torch==2.13.0")  # CPU wheel first: never an unpinned CUDA torch
    session.install("-c", CONSTRAINTS, *specs)


def _pytest(session: nox.Session, *paths: str) -> None:
    workers = os.environ.get("PYTEST_WORKERS", "auto")
    session.run("pytest", "-n", workers, "--durations=15", *paths, *session.posargs)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Install all four packages and run every test (packages/*/tests and tests/)."""
    _install(session, *ALL_WITH_TEST_EXTRAS)
    _pytest(session, *[f"{p}/tests" for p in PACKAGES.values()], "tests")


def _package_session(module: str, path: str) -> None:
    extras = "[test,build]" if module == "asu_geometry" else "[test]"

    @nox.session(python="3.11", name=f"tests_{module}")
    def _session(session: nox.Session) -> None:
        deps = {
            "crystal_ar_model": [
                f"./{PACKAGES['asu_geometry']}",
                f"./{PACKAGES['polygon_flows']}",
            ]
        }.get(module, [])
        _install(session, *deps, f"./{path}{extras}")
        _pytest(session, f"{path}/tests")

    _session.__doc__ = f"Run the tests of {path} only."


for _module, _path in PACKAGES.items():
    _package_session(_module, _path)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check over the whole repository."""
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Show the exact ASU and Wyckoff shapes of a space group (default 192) and plot them (asu-geometry alone)."""
    _install(session, f"./{PACKAGES['asu_geometry']}")
    sg = session.posargs[0] if session.posargs else "192"
    session.run("asu-geometry", "show", sg)
    session.run("asu-geometry", "plot", sg, "-o", f"asu{sg}.png")


@nox.session(python="3.11")
def benchmark_asu_geometry(session: nox.Session) -> None:
    """Print the asu-geometry loading, to_asu and to_asu_point figures quoted in its README."""
    _install(session, f"./{PACKAGES['asu_geometry']}")
    session.run("python", "benchmarks/asu_geometry_bench.py", *session.posargs)


@nox.session(python="3.11")
def benchmark_polygon_flows(session: nox.Session) -> None:
    """Print the polygon-flows accuracy and throughput figures quoted in its README."""
    _install(session, f"./{PACKAGES['polygon_flows']}")
    session.run("python", "benchmarks/polygon_flows_bench.py", *session.posargs)


MODEL_STACK = [f"./{PACKAGES['asu_geometry']}", f"./{PACKAGES['polygon_flows']}", f"./{PACKAGES['crystal_ar_model']}"]


@nox.session(python="3.11")
def train(session: nox.Session) -> None:
    """Train crystal-ar (default: the tiny config on mp20-available from ../shared/data into runs/tiny).

    Arguments after ``--`` replace the defaults and go to ``crystal-ar train``, e.g.
    ``nox -s train -- --config default --data mp20 --data-dir DIR --out runs/default``.
    """
    _install(session, *MODEL_STACK)
    args = session.posargs or ["--config", "tiny", "--data", "mp20-available",
                               "--data-dir", str(ROOT.parent / "shared" / "data" / "mp_20_partial"),
                               "--out", str(ROOT / "runs" / "tiny")]
    session.run("crystal-ar", "train", *args)


@nox.session(python="3.11")
def score(session: nox.Session) -> None:
    """Per-crystal, per-factor log-likelihoods (default: the 20-crystal test fixture with runs/tiny).

    Arguments after ``--`` replace the defaults: ``nox -s score -- INPUT --checkpoint DIR [-o out.csv]``.
    """
    _install(session, *MODEL_STACK)
    args = session.posargs or [
        str(ROOT / PACKAGES["crystal_ar_model"] / "tests" / "data" / "mp20_test20.csv.xz"),
        "--checkpoint", str(ROOT / "runs" / "tiny"), "-o", str(ROOT / "runs" / "tiny" / "scores.csv")]
    session.run("crystal-ar", "score", *args)


@nox.session(python="3.11")
def sample(session: nox.Session) -> None:
    """Generate crystals with ``crystal-ar sample`` (default: 100 crystals from the shipped model into out/samples,
    replacing an earlier run there).

    Arguments after ``--`` replace the defaults: ``nox -s sample -- -n 1000 --space-group 225 -o out/fcc``.
    """
    _install(session, *MODEL_STACK)
    args = session.posargs or ["-n", "100", "-o", str(ROOT / "out" / "samples"), "--overwrite"]
    session.run("crystal-ar", "sample", *args)


@nox.session(python="3.11", name="generate-and-evaluate")
def generate_and_evaluate(session: nox.Session) -> None:
    """Sample N crystals (``N=1000``; extra ``crystal-ar sample`` options after ``--``) into out/generated, then
    evaluate them with crystal-eval against the shared MP-20 files: train = train.first1000 + val.partial,
    test = test.partial (the "MP-20 available subset" protocol); writes out/generated/crystal-eval.json."""
    _install(session, *MODEL_STACK, f"./{PACKAGES['crystal_eval']}")
    data = Path(os.environ.get("CRYSTAL_EVAL_DATA", str(ROOT.parent / "shared" / "data"))) / "mp_20_partial"
    out = ROOT / "out" / "generated"
    session.run("crystal-ar", "sample", "-n", os.environ.get("N", "1000"), "-o", str(out), "--overwrite",
                *session.posargs)
    session.run("crystal-eval", str(out / "samples.extxyz"), "--train", str(data / "train.first1000.csv.xz"),
                str(data / "val.partial.csv.xz"), "--test", str(data / "test.partial.csv.xz"),
                "-o", str(out / "crystal-eval.json"), "--details", str(out / "crystal-eval-details.csv"))


@nox.session(python="3.11")
def benchmark_crystal_ar(session: nox.Session) -> None:
    """Print the crystal-ar preprocessing, training and scoring throughput figures."""
    _install(session, *MODEL_STACK)
    session.run("python", "benchmarks/crystal_ar_bench.py", *session.posargs)


@nox.session(python="3.11", name="evaluate-data")
def evaluate_data(session: nox.Session) -> None:
    """crystal-eval "data" row: MP-20 test scored as a model's output against train+val (partial files
    from ../shared/data unless the full mp_20/ CSVs are there); writes out/crystal-eval-data/."""
    session.install("-c", CONSTRAINTS, f"./{PACKAGES['crystal_eval']}")  # no torch needed
    data_dir = os.environ.get("CRYSTAL_EVAL_DATA", str(ROOT.parent / "shared" / "data"))
    session.run("python", "-m", "crystal_eval.data_row", "--data-dir", data_dir,
                "-o", str(ROOT / "out" / "crystal-eval-data"), *session.posargs)


@nox.session(python="3.11")
def benchmark_crystal_eval(session: nox.Session) -> None:
    """Wall time of a full crystal-eval run on 10,000 real crystals, cold and warm cache."""
    session.install("-c", CONSTRAINTS, f"./{PACKAGES['crystal_eval']}")
    session.run("python", "benchmarks/crystal_eval_bench.py", *session.posargs)


@nox.session(python="3.11")
def report(session: nox.Session) -> None:
    """The benchmark report: docs/results.json, docs/results.md and docs/figures/ from the committed samples
    (docs/samples/) and the shipped model. Arguments after ``--`` go to ``docs/report/build.py``, e.g.
    ``nox -s report -- --resample`` (draw the 2 x 10,000 samples again) or ``-- --cache-dir DIR``."""
    _install(session, *MODEL_STACK, f"./{PACKAGES['crystal_eval']}", "ase")  # ase: the sample-grid pictures
    session.run("python", "docs/report/build.py", "--command-label", "nox -s report", *session.posargs,
                env={"OMP_NUM_THREADS": "1"})


@nox.session(python="3.11")
def ablation(session: nox.Session) -> None:
    """The training-stabiliser ablations of the report: five trainings of the ``default`` config (the shipped
    recipe and each stabiliser switched off), scored on the test rows, into docs/report/ablation.json. Resumable.
    Arguments after ``--`` go to ``docs/report/ablation.py`` (e.g. ``-- --epochs 25 --lanes 2``); then
    ``nox -s report -- --refresh-committed`` puts the table into docs/results.md."""
    _install(session, *MODEL_STACK, f"./{PACKAGES['crystal_eval']}")
    session.run("python", "docs/report/ablation.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})
