"""Configuration dataclasses, loadable from JSON (shipped presets: ``tiny``, ``default``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import ConfigError

SHIPPED = ("tiny", "default", "paper")


@dataclass
class ModelConfig:
    """Network sizes, the lattice discretisation and the atom budget.

    ``hidden``/``layers``: the global factors (space group, composition, lattice). ``max_atoms``: the most atoms
    a crystal may have in its primitive cell (sum over sites of multiplicity / centring points). ``gnn_*``: the
    context GNN (node width, edge-filter width, interaction blocks), ``rbf``/``rbf_cutoff`` the Gaussian
    distance basis (Angstrom), ``fourier`` the frequencies of the coordinate features of the nodes,
    ``shape_fourier`` those of the piece-vertex features. ``coord_*``: the coordinate factor's MLP width and
    depth and mixture sizes.
    """

    hidden: int = 128
    layers: int = 2
    n_coarse: int = 100
    n_fine: int = 100
    rff_features: int = 16
    rff_scale: float = 4.0
    max_z: int = 94
    max_atoms: int = 20
    gnn_hidden: int = 64
    gnn_filters: int = 64
    gnn_layers: int = 3
    rbf: int = 32
    rbf_cutoff: float = 10.0
    fourier: int = 4
    shape_fourier: int = 4
    coord_hidden: int = 64
    coord_layers: int = 2
    segment_components: int = 10
    polygon_components: int = 30
    torus_components: int = 50


@dataclass
class TrainConfig:
    """Optimisation, regularisation, data and checkpointing settings."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 256
    eval_batch_size: int = 2048
    lr: dict[str, float] = field(
        default_factory=lambda: {
            "space_group": 1e-3,
            "composition": 2e-3,
            "lattice": 1e-3,
            "gnn": 2e-4,
            "atoms": 5e-4,
        }
    )
    weight_decay: float = 1e-5
    adam_eps: float = 1e-5
    grad_clip: float = 1.0
    rebalance_c: float = 0.3
    rebalance_factors: list[str] = field(default_factory=lambda: ["lattice", "wyckoff", "element", "stop"])
    z_loss: float = 1e-4
    mixture_prior: float = 1.0  # weight of the Dirichlet(1.0001) log prior of the coordinate mixtures; 0: off
    lattice_noise_length: float = 0.01
    lattice_noise_angle: float = 1.0
    atom_noise: float = 0.2  # Angstrom, Gaussian on the conditioning sites within their Wyckoff subspace
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    max_train_rows: int | None = None
    symprec: float = 0.1
    angle_tolerance: float = 5.0
    workers: int = 2
    threads: int | None = None  # torch threads per process; 1 is fastest for the small global factors


@dataclass
class Config:
    """A complete run configuration."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        def build(kind: type, sub: dict[str, Any]) -> Any:
            known = {f.name for f in fields(kind)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
            return kind(**sub)

        unknown = set(d) - {"name", "model", "train"}
        if unknown:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        return cls(
            name=str(d.get("name", "custom")),
            model=build(ModelConfig, d.get("model", {})),
            train=build(TrainConfig, d.get("train", {})),
        )

    @classmethod
    def load(cls, name_or_path: str | Path) -> Config:
        """A shipped preset (``tiny``, ``default``, ``paper``) or a JSON file."""
        s = str(name_or_path)
        if s in SHIPPED:
            text = files("crystal_ar_model").joinpath(f"configs/{s}.json").read_text()
        else:
            p = Path(s)
            if not p.is_file():
                raise ConfigError(f"config {s!r} is neither a shipped preset {SHIPPED} nor a file")
            text = p.read_text()
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"invalid config {s!r}: {exc}") from exc
