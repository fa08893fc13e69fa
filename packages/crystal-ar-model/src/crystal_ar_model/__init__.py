"""crystal_ar_model: the autoregressive crystal model with exact likelihoods over asymmetric units.

Data pipeline (CDVAE CSV / CIF -> ``asu_geometry.to_asu`` normal form -> cached arrays -> PyG batches), the
global factors p(G), p(G | C), p(C | G), p(C) and the telescoping lattice p(l | G, C), the per-site factors
(GNN context, Wyckoff position, element, shape, coordinates, stop) with exact masks and an atom budget,
training (AdamW, DDP, checkpoints, resume), scoring, vectorised ancestral sampling and the ``crystal-ar`` CLI.

>>> from crystal_ar_model import Config
>>> Config.load("tiny").model.n_coarse
100
"""

from .config import Config, ModelConfig, TrainConfig
from .data import ConversionReport, CrystalTensors, DataSplits, ProcessedDataset, load_csv, load_preset
from .errors import (
    CheckpointFormatError,
    ConfigError,
    CrystalARError,
    DataError,
    TooManyAtomsError,
    UnknownElementError,
)
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
