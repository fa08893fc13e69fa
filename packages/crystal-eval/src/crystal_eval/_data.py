"""Frozen tables shipped with the package (see ``data/`` and ``scripts/build_package_data.py``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("crystal_eval").joinpath("data", name).read_text())


def smact14() -> dict[str, Any]:
    """SMACT14 oxidation states, Pauling electronegativities and the SMACT metal list."""
    return _load("smact14.json")


def wyckoff_dof() -> dict[str, dict[str, int]]:
    """``{space group number (str): {Wyckoff letter: number of free coordinates}}``."""
    return _load("wyckoff_dof.json")["dof"]


@cache
def comp_scaler() -> tuple[np.ndarray, np.ndarray]:
    """CDVAE's Magpie means and standard deviations (132 each), MIT-licensed, see ``data/``."""
    d = _load("cdvae_comp_scaler.json")
    return np.asarray(d["means"], dtype=float), np.asarray(d["stds"], dtype=float)
