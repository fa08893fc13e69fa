"""crystal_ar_model: the autoregressive crystal model with exact likelihoods over asymmetric units.

Part 1 (this version): data pipeline (CDVAE CSV / CIF -> ``asu_geometry.to_asu`` -> cached arrays -> PyG
batches), the three global factors p(G), p(G | C), p(C | G), p(C) and the telescoping lattice factor
p(l | G, C), training (AdamW, DDP, checkpoints, resume), scoring and the ``crystal-ar`` CLI.

>>> from crystal_ar_model import Config
>>> Config.load("tiny").model.n_coarse
100
"""

from .config import Config, ModelConfig, TrainConfig
from .data import ConversionReport, CrystalTensors, DataSplits, ProcessedDataset, load_csv, load_preset
from .errors import CheckpointFormatError, ConfigError, CrystalARError, DataError, UnknownElementError
from .factors import (
    CompositionDistribution,
    CompositionFactor,
    LatticeBins,
    LatticeDistribution,
    LatticeFactor,
    SpaceGroupGivenComposition,
    SpaceGroupPrior,
)
from .model import LOGP_KEYS, CrystalARModel

__version__ = "0.1.0"

__all__ = [
    "LOGP_KEYS",
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
    "SpaceGroupGivenComposition",
    "SpaceGroupPrior",
    "TrainConfig",
    "UnknownElementError",
    "load_csv",
    "load_preset",
]
