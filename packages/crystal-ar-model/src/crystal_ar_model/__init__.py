"""crystal_ar_model: the autoregressive crystal model with exact likelihoods over asymmetric units.

Data pipeline (CDVAE CSV / CIF -> ``asu_geometry.to_asu`` normal form -> cached arrays -> PyG batches), the
global factors p(G), p(G | C), p(C | G), p(C) and the telescoping lattice p(l | G, C), the per-site factors
(GNN context, Wyckoff position, element, shape, coordinates, stop) with exact masks and an atom budget,
training (AdamW, DDP, checkpoints, resume), scoring, vectorised ancestral sampling and the ``crystal-ar`` CLI.

>>> from crystal_ar_model import Config
>>> Config.load("tiny").model.n_coarse
100
"""

from typing import TYPE_CHECKING

from .config import Config, ModelConfig, TrainConfig
from .errors import (
    CheckpointFormatError,
    ConfigError,
    CrystalARError,
    DataError,
    TooManyAtomsError,
    UnknownElementError,
)

if TYPE_CHECKING:
    from .data import ConversionReport, CrystalTensors, DataSplits, ProcessedDataset, load_csv, load_preset
    from .factors import (
        CompositionDistribution,
        CompositionFactor,
        LatticeBins,
        LatticeDistribution,
        LatticeFactor,
        SpaceGroupGivenComposition,
        SpaceGroupPrior,
    )
    from .masks import BudgetTables, budget_tables
    from .model import FACTORS, LOGP_KEYS, CrystalARModel
    from .sampling import SampleBatch, sample

_LAZY = {
    **dict.fromkeys(("ConversionReport", "CrystalTensors", "DataSplits", "ProcessedDataset", "load_csv",
                     "load_preset"), "data"),
    **dict.fromkeys(("CompositionDistribution", "CompositionFactor", "LatticeBins", "LatticeDistribution",
                     "LatticeFactor", "SpaceGroupGivenComposition", "SpaceGroupPrior"), "factors"),
    **dict.fromkeys(("BudgetTables", "budget_tables"), "masks"),
    **dict.fromkeys(("FACTORS", "LOGP_KEYS", "CrystalARModel"), "model"),
    **dict.fromkeys(("SampleBatch", "sample"), "sampling"),
}
"""Names imported on first use (PEP 562): they need torch and PyTorch Geometric, which take seconds to import,
so ``crystal-ar --help`` and the configs do not pay for them."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.2.0"

__all__ = [
    "FACTORS",
    "LOGP_KEYS",
    "BudgetTables",
    "CheckpointFormatError",
    "CompositionDistribution",
    "CompositionFactor",
    "Config",
    "ConfigError",
    "ConversionReport",
    "CrystalARError",
    "CrystalARModel",
    "CrystalTensors",
    "DataError",
    "DataSplits",
    "LatticeBins",
    "LatticeDistribution",
    "LatticeFactor",
    "ModelConfig",
    "ProcessedDataset",
    "SampleBatch",
    "SpaceGroupGivenComposition",
    "SpaceGroupPrior",
    "TooManyAtomsError",
    "TrainConfig",
    "UnknownElementError",
    "budget_tables",
    "load_csv",
    "load_preset",
    "sample",
]
