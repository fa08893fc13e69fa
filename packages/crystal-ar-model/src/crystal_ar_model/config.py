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


AT_LEAST = {  # smallest allowed value of a number (others: >= 0); floats named in POSITIVE must be > 0
    "seed": 0, "workers": 0,
}
POSITIVE = {"rff_scale", "rbf_cutoff", "adam_eps", "grad_clip", "symprec", "angle_tolerance"}


def _check_numbers(obj: Any) -> None:
    """:class:`ConfigError` for a setting of the wrong type or range: whole numbers (no bools) at least 1 (``seed``
    and ``workers`` at least 0; ``None`` where the default is ``None``), finite real numbers at least 0 (those in
    :data:`POSITIVE` above 0, ``rebalance_c`` in (0, 1]), learning rates positive."""
    name = type(obj).__name__
    for f in fields(obj):
        v, default = getattr(obj, f.name), f.default
        where = f"{name}.{f.name}"
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{where} must be true or false, got {v!r}")
        elif isinstance(default, int) or (default is None and f.name in ("max_train_rows", "threads")):
            if v is None and default is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < AT_LEAST.get(f.name, 1):
                raise ConfigError(f"{where} must be a whole number >= {AT_LEAST.get(f.name, 1)}, got {v!r}")
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ConfigError(f"{where} must be a finite number >= 0, got {v!r}")
            if f.name in POSITIVE and not v > 0:
                raise ConfigError(f"{where} must be positive, got {v!r}")
            if f.name == "rebalance_c" and not 0 < v <= 1:
                raise ConfigError(f"{where} must lie in (0, 1], got {v!r}")
    lr = getattr(obj, "lr", None)
    if lr is not None:
        if not isinstance(lr, dict) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                               and 0 < x < float("inf") for x in lr.values()):
            raise ConfigError(f"{name}.lr must map parameter groups to positive learning rates, got {lr!r}")


@dataclass
class Config:
    """A complete run configuration."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of every setting (``name``, ``model``, ``train``); :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """A config from :meth:`to_dict`'s layout, every setting checked for type and range (:class:`ConfigError` names
        the first bad one)."""
        def build(kind: type, sub: Any) -> Any:
            if not isinstance(sub, dict):
                raise ConfigError(f"{kind.__name__} must be a JSON object, got {sub!r}")
            known = {f.name for f in fields(kind)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
            obj = kind(**sub)
            _check_numbers(obj)
            return obj

        if not isinstance(d, dict):
            raise ConfigError(f"a config is a JSON object, got {type(d).__name__}")
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
