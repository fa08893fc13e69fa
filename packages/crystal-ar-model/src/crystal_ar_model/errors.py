"""Named exceptions of :mod:`crystal_ar_model`. All derive from :class:`CrystalARError`.

Errors raised by :mod:`asu_geometry` (unreadable CIF, disordered sites, no symmetry) are passed through
unchanged: they already carry a name and a reason. The CLI turns both families into a one-line message
and a non-zero exit status.
"""

from __future__ import annotations


class CrystalARError(Exception):
    """Base class of every error raised by crystal_ar_model."""


class UnknownElementError(CrystalARError, ValueError):
    """A crystal contains an element outside the model's element vocabulary."""


class TooManyAtomsError(CrystalARError, ValueError):
    """A crystal has more atoms in its primitive cell than the model allows (``ModelConfig.max_atoms``)."""


class CheckpointFormatError(CrystalARError, ValueError):
    """A checkpoint directory is missing, incomplete or written in an unsupported format version."""


class ConfigError(CrystalARError, ValueError):
    """A configuration file or value is invalid."""


class DataError(CrystalARError, ValueError):
    """A dataset file or preset is missing or malformed."""


class NoShippedModelError(CheckpointFormatError):
    """No ``--checkpoint`` was given and this installation ships no model (``crystal_ar_model/pretrained/``)."""


class SamplingError(CrystalARError, RuntimeError):
    """Sampling could not produce the requested crystals (e.g. the scorer cannot read back the samples)."""
