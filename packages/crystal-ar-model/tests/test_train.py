"""Training: NLL decreases, resume after SIGKILL reproduces the losses, 2-process torchrun (gloo)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from crystal_ar_model.checkpoint import FORMAT_VERSION, read_meta, resolve_checkpoint
from crystal_ar_model.config import Config
from crystal_ar_model.errors import ConfigError
from crystal_ar_model.train import read_metrics

from .conftest import TEST_FIXTURE, TRAIN_FIXTURE


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crystal_ar_model.cli", *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=600,
    )


def test_shipped_configs_load() -> None:
    tiny, default = Config.load("tiny"), Config.load("default")
    assert tiny.model.hidden < default.model.hidden
    assert tiny.train.lr == {
        "space_group": 1e-3,
        "composition": 2e-3,
        "lattice": 1e-3,
        "gnn": 2e-4,
        "atoms": 5e-4,
    }
    assert Config.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ConfigError):
        Config.from_dict({"train": {"learning_rate": 1}})
    with pytest.raises(ConfigError):
        Config.load("no-such-config")


def test_training_reduces_validation_nll(trained_run: Path) -> None:
    m = read_metrics(trained_run)
    assert [r["epoch"] for r in m] == [1, 2, 3, 4]
    assert m[-1]["val"]["nll_total"] < m[0]["val"]["nll_total"] - 0.1
    assert m[-1]["train"]["nll_total"] < m[0]["train"]["nll_total"]
    ckpt = resolve_checkpoint(trained_run)
    assert ckpt is not None and ckpt.name == "epoch-00004"
    meta = read_meta(ckpt)
    assert meta["format_version"] == FORMAT_VERSION and meta["data"]["preset"] == str(TRAIN_FIXTURE)
    assert len(meta["data"]["hash"]) == 64 and meta["versions"]["torch"]
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == ["epoch-00003", "epoch-00004"]


def test_best_model_is_composed_of_each_units_best_epoch(trained_run: Path, cache_dir: Path) -> None:
    """RUN/best takes every selection unit from the epoch of its lowest validation NLL; since the units have disjoint
    parameters, the composed model's validation NLL is the sum of the units' minima (checked by evaluating it)."""
    from crystal_ar_model.data import CrystalTensors, load_preset
    from crystal_ar_model.score import load_model
    from crystal_ar_model.train import SELECTION_UNITS, evaluate, unit_nll, unit_of_parameter

    m = read_metrics(trained_run)
    meta = read_meta(trained_run / "best")
    assert not (trained_run / "best" / "optimizer.safetensors").exists()
    sel = meta["selection"]["units"]
    assert set(sel) == set(SELECTION_UNITS)
    for unit, rec in sel.items():
        best = min(m, key=lambda r, u=unit: unit_nll(r["val"], u))
        assert rec["epoch"] == best["epoch"] and rec["val_nll"] == unit_nll(best["val"], unit)
    model, _ = load_model(trained_run / "best")
    assert {unit_of_parameter(k) for k in model.state_dict()} == set(SELECTION_UNITS)
    val = CrystalTensors(load_preset(str(TRAIN_FIXTURE), None, cache_dir).val, model.vocabulary)
    got = evaluate(model, val)
    assert got["nll_total"] == pytest.approx(meta["selection"]["val_nll_total"], abs=1e-3)
    assert got["nll_total"] <= min(r["val"]["nll_total"] for r in m) + 1e-3


def test_resume_after_sigkill_matches_uninterrupted(
    trained_run: Path, config_file: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Kill the run with SIGKILL in the middle of epoch 3 (step 20; 9 steps per epoch), then --resume."""
    out = tmp_path / "killed"
    common = [
        "train",
        "--config",
        str(config_file),
        "--data",
        str(TRAIN_FIXTURE),
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        "--no-progress",
    ]
    r = _cli(*common, env={**_env(), "CRYSTAL_AR_KILL_AT_STEP": "20"})
    assert r.returncode == -9, r.stderr
    assert [x["epoch"] for x in read_metrics(out)] == [1, 2]
    r = _cli(*common, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr
    got, want = read_metrics(out), read_metrics(trained_run)
    assert [x["epoch"] for x in got] == [1, 2, 3, 4]
    for a, b in zip(got, want, strict=True):
        for split in ("train", "val"):
            for k, v in b[split].items():
                assert a[split][k] == pytest.approx(v, rel=1e-6, abs=1e-6), (a["epoch"], split, k)


def test_torchrun_two_processes(config_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cfg = json.loads(config_file.read_text())
    cfg["train"]["epochs"] = 2
    cfgp = tmp_path / "ddp.json"
    cfgp.write_text(json.dumps(cfg))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "crystal_ar_model.cli",
            "train",
            "--config",
            str(cfgp),
            "--data",
            str(TEST_FIXTURE),
            "--out",
            str(out),
            "--cache-dir",
            str(cache_dir),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = resolve_checkpoint(out)
    assert ckpt is not None and read_meta(ckpt)["world_size"] == 2
    m = read_metrics(out)
    assert len(m) == 2 and all(x["val"]["nll_total"] < 1e9 for x in m)
    from crystal_ar_model.score import load_model

    model, meta = load_model(out)  # loads in a single process
    assert meta["epoch"] == 2 and model.vocabulary[0] == 1


def test_stabiliser_switches_change_exactly_their_term(trained_run: Path, cache_dir: Path) -> None:
    """The ablation switches of the training loss: with noise, z-loss and the mixture prior off, the loss is the
    plain mean NLL; ``mixture_prior`` scales the Dirichlet(1.0001) log prior and nothing else; re-balancing changes
    gradients, never the loss value; noise changes the conditioning, hence the loss."""
    import dataclasses

    import torch
    from crystal_ar_model.data import CrystalTensors, load_csv
    from crystal_ar_model.score import load_model

    model, _ = load_model(trained_run / "best")
    model.train()
    ds, _ = load_csv(TRAIN_FIXTURE, cache_dir=cache_dir)
    batch = CrystalTensors(ds.subset(list(range(16))), model.vocabulary).batch(torch.arange(16))
    base = Config.load("tiny").train
    off = dataclasses.replace(base, atom_noise=0.0, lattice_noise_length=0.0, lattice_noise_angle=0.0, z_loss=0.0,
                              mixture_prior=0.0, rebalance_factors=[])

    def loss(cfg):  # noqa: ANN001, ANN202
        value, stats = model(batch, cfg, torch.Generator().manual_seed(3))
        return float(value.detach()), float(stats["nll_total"])

    plain, nll = loss(off)
    assert plain == pytest.approx(nll / 16, rel=1e-6)
    with_prior, nll_p = loss(dataclasses.replace(off, mixture_prior=1.0))
    half_prior, _ = loss(dataclasses.replace(off, mixture_prior=0.5))
    assert nll_p == nll and with_prior < plain  # Dirichlet(1.0001) log density > 0 at interior weights
    assert half_prior - plain == pytest.approx(0.5 * (with_prior - plain), rel=1e-5)  # float32 loss
    assert loss(dataclasses.replace(off, rebalance_factors=["lattice", "wyckoff"]))[0] == pytest.approx(plain, rel=1e-6)
    assert loss(dataclasses.replace(off, z_loss=1e-2))[0] > plain
    assert loss(dataclasses.replace(off, atom_noise=0.5))[1] != nll


def test_a_run_directory_with_checkpoints_is_never_restarted_silently(
    cli, trained_run: Path, config_file: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Without --resume or --overwrite, training into a run directory that holds checkpoints is refused before any
    work (exit 2), and the run is left as it was."""
    before = {p: p.stat().st_mtime_ns for p in trained_run.rglob("*") if p.is_file()}
    base = ["train", "--config", str(config_file), "--data", str(TRAIN_FIXTURE), "--cache-dir", str(cache_dir),
            "--no-progress"]
    r = cli(*base, "--out", str(trained_run))
    assert r.returncode == 2 and "already holds a training run" in r.stderr and "--resume" in r.stderr, r.stderr
    r = cli(*base, "--out", str(trained_run), "--resume", "--overwrite")
    assert r.returncode == 2 and "choose one" in r.stderr
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    r = cli(*base, "--out", str(a_file))
    assert r.returncode == 2 and "run directory" in r.stderr and "not a folder" in r.stderr
    assert {p: p.stat().st_mtime_ns for p in trained_run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(("d", "message"), [
    ({"model": {"hidden": -1}}, "ModelConfig.hidden must be a whole number >= 1"),
    ({"model": {"hidden": "x"}}, "ModelConfig.hidden must be a whole number >= 1"),
    ({"model": {"max_atoms": 0}}, "ModelConfig.max_atoms must be a whole number >= 1"),
    ({"model": None}, "ModelConfig must be a JSON object"),
    ({"train": {"epochs": 1.5}}, "TrainConfig.epochs must be a whole number >= 1"),
    ({"train": {"seed": -1}}, "TrainConfig.seed must be a whole number >= 0"),
    ({"train": {"symprec": 0}}, "TrainConfig.symprec must be positive"),
    ({"train": {"grad_clip": 0.0}}, "TrainConfig.grad_clip must be positive"),
    ({"train": {"z_loss": float("nan")}}, "TrainConfig.z_loss must be a finite number >= 0"),
    ({"train": {"rebalance_c": 2.0}}, "TrainConfig.rebalance_c must lie in (0, 1]"),
    ({"train": {"lr": {"gnn": -1}}}, "TrainConfig.lr must map parameter groups to positive learning rates"),
    ([], "a config is a JSON object"),
])
def test_config_numbers_are_checked(d, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_dict(d)  # type: ignore[arg-type]
    for preset in ("tiny", "default", "paper"):
        Config.load(preset)  # the shipped presets pass


def test_a_damaged_checkpoint_is_named(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    from crystal_ar_model.errors import CheckpointFormatError
    from crystal_ar_model.score import load_model

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_checkpoint(trained_run), ckpt)
    (ckpt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointFormatError, match="model.safetensors is damaged"):
        load_model(ckpt)
    shutil.rmtree(ckpt)
    shutil.copytree(resolve_checkpoint(trained_run), ckpt)
    meta = json.loads((ckpt / "meta.json").read_text())
    del meta["bins"]
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointFormatError, match="lacks 'bins'"):
        load_model(ckpt)
    (ckpt / "meta.json").write_text("[1, 2]")
    with pytest.raises(CheckpointFormatError, match="not a JSON object"):
        load_model(ckpt)
