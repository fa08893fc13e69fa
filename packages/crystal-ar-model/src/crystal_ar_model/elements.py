"""The element vocabulary and CGCNN-style element features.

The vocabulary is a sorted tuple of atomic numbers (default H..Pu, Z = 1..94). Element features follow the
recipe of CGCNN's ``atom_init.json`` (Xie & Grossman, PRL 120, 145301 (2018)): one-hot group, period and
block, and one-hot bins of electronegativity, covalent radius, first ionisation energy, electron affinity
and molar volume, with an extra "unknown" bin where pymatgen has no value. They initialise the learned
element embeddings of the composition factor.
"""

from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np

DEFAULT_MAX_Z = 94

# (property, lower edge, upper edge, bins)
_BINNED = (
    ("X", 0.5, 4.0, 10),
    ("atomic_radius", 0.25, 2.75, 10),
    ("ionization_energy", 3.0, 25.0, 10),
    ("electron_affinity", -1.0, 4.0, 10),
    ("molar_volume", 0.0, 60.0, 10),
)
_BLOCKS = ("s", "p", "d", "f")


def default_vocabulary() -> tuple[int, ...]:
    """Atomic numbers 1..94."""
    return tuple(range(1, DEFAULT_MAX_Z + 1))


def _value(el: object, name: str) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = getattr(el, name)
        v = float(v) if v is not None else math.nan
    except Exception:  # pymatgen raises for properties it does not know for heavy elements
        v = math.nan
    return v


@cache
def element_feature(z: int) -> tuple[float, ...]:
    """The CGCNN-style feature vector of element ``z`` (length :data:`FEATURE_DIM`)."""
    from pymatgen.core import Element

    el = Element.from_Z(int(z))
    parts: list[np.ndarray] = []
    group = np.zeros(18)
    group[int(el.group) - 1] = 1.0
    period = np.zeros(7)
    period[int(el.row) - 1] = 1.0
    block = np.zeros(len(_BLOCKS))
    if el.block in _BLOCKS:
        block[_BLOCKS.index(el.block)] = 1.0
    parts += [group, period, block]
    for name, lo, hi, n in _BINNED:
        v = _value(el, name)
        one = np.zeros(n + 1)
        if math.isnan(v):
            one[n] = 1.0
        else:
            one[int(np.clip((v - lo) / (hi - lo) * n, 0, n - 1))] = 1.0
        parts.append(one)
    return tuple(float(x) for x in np.concatenate(parts))


FEATURE_DIM = 18 + 7 + len(_BLOCKS) + sum(n + 1 for *_, n in _BINNED)


def element_feature_matrix(vocabulary: tuple[int, ...]) -> np.ndarray:
    """Features of every element of ``vocabulary``, shape (len(vocabulary), FEATURE_DIM), float32."""
    return np.array([element_feature(z) for z in vocabulary], dtype=np.float32)


def symbol(z: int) -> str:
    """Chemical symbol of atomic number ``z``."""
    from pymatgen.core import Element

    return Element.from_Z(int(z)).symbol
