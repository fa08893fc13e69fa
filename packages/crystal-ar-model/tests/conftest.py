"""Shared fixtures: the committed MP-20 fixture, a tiny trained run, the shared-data location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DATA = HERE / "data"
TRAIN_FIXTURE = DATA / "mp20_train300.csv.xz"  # first 300 rows of MP-20 train (CDVAE layout)
TEST_FIXTURE = DATA / "mp20_test20.csv.xz"  # 20 rows of MP-20 test (3 triclinic, 3 monoclinic, 14 other)
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared" / "data" / "mp_20_partial"

TEST_CONFIG = {
    "name": "test",
    "model": {
        "hidden": 32,
        "layers": 2,
        "n_coarse": 100,
        "n_fine": 100,
        "rff_features": 8,
        "gnn_hidden": 16,
        "gnn_filters": 16,
        "gnn_layers": 2,
        "rbf": 8,
        "fourier": 2,
        "shape_fourier": 2,
        "coord_hidden": 16,
        "coord_layers": 1,
    },
    "train": {"seed": 0, "epochs": 4, "batch_size": 32, "checkpoint_every": 1, "workers": 1, "threads": 1},
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "test.json"
    p.write_text(json.dumps(TEST_CONFIG))
    return p


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, config_file: Path) -> Path:
    """A 4-epoch run on the committed fixture (in-process)."""
    from crystal_ar_model.config import Config
    from crystal_ar_model.train import train

    out = tmp_path_factory.mktemp("run")
    train(
        Config.load(config_file),
        str(TRAIN_FIXTURE),
        None,
        out,
        cache_dir=cache_dir,
        progress=False,
        log=lambda _: None,
    )
    return out


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (place ../shared/data beside the checkout)")
    return SHARED


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201
    """``cli(*args)``: ``crystal-ar`` in-process (argparse errors exit through SystemExit) as a CompletedProcess."""
    import subprocess

    from crystal_ar_model.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, out, err)

    return run
