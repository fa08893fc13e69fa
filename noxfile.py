"""Every workflow of the monorepo is a nox session.

    nox -s tests                 # all package tests + cross-package tests (what CI runs)
    nox -s tests_asu_geometry    # one package
    nox -s lint                  # ruff
    nox -s demo                  # the main job (see README)

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
    f"./{PACKAGES['crystal_eval']}[test]",
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
    """The main job: show the exact ASU and Wyckoff shapes of a space group (default 192) and plot it."""
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
