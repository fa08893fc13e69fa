"""The reference convex hull for E_hull: built once from reference crystals, cached on disk.

E_hull of a crystal of composition x (fractions x_el) and energy e (eV/atom) is ``e - h(x)``, where
``h`` is the lower convex hull of the reference energies over the composition simplex of the crystal's
elements (pymatgen ``PhaseDiagram.get_hull_energy_per_atom``; Ong et al., Chem. Mater. 20, 1798
(2008)). Negative values mean below the reference hull. One small ``PhaseDiagram`` per chemical system
(the entries whose elements are a subset of it) is built on demand, since a single diagram over the
~90 elements of MP-20 is out of reach for qhull.

Two hulls (``mode``):

* ``"ml"`` (default): self-consistent. Every reference crystal gets a single-point energy from the same
  potential that relaxes the generated crystals, on its DFT-relaxed structure as stored in the CSV.
  Elemental references are the lowest-energy elemental entries among the references. An element with
  no elemental reference crystal (the partial MP-20 files hold 29 unary rows) gets a chemical potential
  fitted on the reference compounds: least squares of ``e_ML - e_form_DFT = sum_el x_el mu_el`` over
  all reference rows with a DFT formation energy. Systematic errors of the potential then cancel between
  the generated crystal and the references it is compared with.
* ``"dft"``: the hull of the CSVs' DFT ``formation_energy_per_atom`` (elements at 0). A generated crystal's
  formation energy is ``e_ML - sum_el x_el mu_el`` with the fitted ``mu`` above for every element; the
  hull's shape is then exactly DFT's, but each E_hull carries the potential's error against DFT in full.

The expensive part (the single points) is cached in the :class:`crystal_eval.cache.FeatureCache` under
the reference files' content hash and the potential's identity.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element, Structure

from crystal_eval.io import InputError, file_sha256, parse_cif, read_cdvae_csv

if TYPE_CHECKING:
    from pymatgen.analysis.phase_diagram import PhaseDiagram

HullMode = Literal["ml", "dft"]
HULL_VERSION = 1


@dataclass
class ReferenceEnergies:
    """Per-reference-row data the hull needs (picklable; this is what the disk cache holds)."""

    names: list[str]
    compositions: list[dict[str, float]]  # element -> amount in the cell (empty if the CIF is unreadable)
    ml_energy: list[float]  # eV/atom, single point of the potential (NaN on failure)
    dft_formation: list[float]  # eV/atom from the CSV (NaN when absent)
    potential: str
    file_hash: str


def chemsys_key(elements: Iterable[str]) -> str:
    """Canonical chemical-system key, e.g. ``'Cl-Na'``."""
    return "-".join(sorted(set(elements)))


def fit_chemical_potentials(
    compositions: Sequence[Mapping[str, float]], ml_energy: Sequence[float], dft_formation: Sequence[float]
) -> tuple[dict[str, float], float]:
    """Least-squares ``mu`` with ``e_ML - e_form = sum_el x_el mu_el``; returns ``(mu, rms residual eV/atom)``.

    Rows with a NaN energy are skipped. Raises ValueError when no row is usable.
    """
    rows = [
        (c, e - f)
        for c, e, f in zip(compositions, ml_energy, dft_formation, strict=True)
        if c and math.isfinite(e) and math.isfinite(f)
    ]
    if not rows:
        raise ValueError("no reference row has both a potential energy and a DFT formation energy")
    elements = sorted({el for c, _ in rows for el in c})
    col = {el: j for j, el in enumerate(elements)}
    x = np.zeros((len(rows), len(elements)))
    y = np.zeros(len(rows))
    for i, (c, d) in enumerate(rows):
        total = sum(c.values())
        for el, amt in c.items():
            x[i, col[el]] = amt / total
        y[i] = d
    mu, *_ = np.linalg.lstsq(x, y, rcond=None)
    rms = float(np.sqrt(np.mean((x @ mu - y) ** 2)))
    return {el: float(mu[col[el]]) for el in elements}, rms


@dataclass
class ReferenceHull:
    """Hull energies ``h(x)`` over the reference set; see the module docstring for the two modes."""

    mode: HullMode
    energies: ReferenceEnergies
    mu: dict[str, float] = field(default_factory=dict)  # fitted chemical potentials (eV/atom, ML scale)
    mu_rms: float = float("nan")
    _groups: dict[str, list[tuple[dict[str, float], float]]] = field(default_factory=dict, repr=False)
    _diagrams: dict[str, Any] = field(default_factory=dict, repr=False)
    _elemental: set[str] = field(default_factory=set, repr=False)
    energies_paths: list[str] = field(default_factory=list, repr=False)  # the files it was built from

    def __post_init__(self) -> None:
        e = self.energies
        have_dft = any(math.isfinite(f) for f in e.dft_formation)
        if have_dft:
            self.mu, self.mu_rms = fit_chemical_potentials(e.compositions, e.ml_energy, e.dft_formation)
        elif self.mode == "dft":
            raise InputError("hull mode 'dft' needs a formation_energy_per_atom column in the reference files")
        groups: dict[str, list[tuple[dict[str, float], float]]] = defaultdict(list)
        for comp, eml, ef in zip(e.compositions, e.ml_energy, e.dft_formation, strict=True):
            value = eml if self.mode == "ml" else ef
            if comp and math.isfinite(value):
                groups[chemsys_key(comp)].append((comp, value))
                if len(comp) == 1:
                    self._elemental.add(next(iter(comp)))
        self._groups = dict(groups)

    @property
    def elements(self) -> set[str]:
        """Elements the hull can place (an elemental reference or a fitted chemical potential)."""
        return set(self._elemental) | set(self.mu)

    def _terminal(self, el: str) -> float | None:
        """Energy per atom of a synthetic elemental entry (None when the references hold the element)."""
        if self.mode == "dft":
            return 0.0
        if el in self._elemental:
            return None
        if el in self.mu:
            return self.mu[el]
        raise ValueError(f"element {el} has no elemental reference crystal and no fitted chemical potential")

    def diagram(self, elements: Iterable[str]) -> PhaseDiagram:
        """The pymatgen ``PhaseDiagram`` of a chemical system (built once, then kept)."""
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

        els = sorted(set(elements))
        key = chemsys_key(els)
        if key in self._diagrams:
            return self._diagrams[key]
        missing = [el for el in els if el not in self.elements]
        if missing:
            raise ValueError(f"element(s) {', '.join(missing)} not in the reference hull")
        entries = []
        for r in range(1, len(els) + 1):
            for sub in combinations(els, r):
                for comp, e in self._groups.get(chemsys_key(sub), []):
                    entries.append(PDEntry(Composition(comp), e * sum(comp.values())))
        for el in els:
            t = self._terminal(el)
            if t is not None:
                entries.append(PDEntry(Composition({el: 1}), t))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd_ = PhaseDiagram(entries, elements=[Element(el) for el in els])
        self._diagrams[key] = pd_
        return pd_

    def hull_energy(self, composition: Mapping[str, float]) -> float:
        """``h(x)`` in the hull's own scale (ML energy per atom, or DFT formation energy per atom)."""
        comp = Composition(dict(composition))
        return float(self.diagram(composition.keys()).get_hull_energy_per_atom(comp))

    def e_above_hull(self, composition: Mapping[str, float], ml_energy_per_atom: float) -> float:
        """E_hull (eV/atom) of a crystal with this composition and potential energy; raises ValueError if
        an element cannot be placed."""
        if not math.isfinite(ml_energy_per_atom):
            raise ValueError("non-finite energy")
        comp = {str(k): float(v) for k, v in composition.items()}
        if self.mode == "ml":
            return ml_energy_per_atom - self.hull_energy(comp)
        missing = [el for el in comp if el not in self.mu]
        if missing:
            raise ValueError(f"element(s) {', '.join(missing)} have no fitted chemical potential")
        total = sum(comp.values())
        formation = ml_energy_per_atom - sum(a / total * self.mu[el] for el, a in comp.items())
        return formation - self.hull_energy(comp)

    def reference_e_above_hull(self) -> np.ndarray:
        """E_hull of every reference row against the hull it belongs to (NaN where it failed): the sanity figure."""
        e = self.energies
        out = np.full(len(e.names), np.nan)
        for i, (comp, eml, ef) in enumerate(zip(e.compositions, e.ml_energy, e.dft_formation, strict=True)):
            value = eml if self.mode == "ml" else ef
            if comp and math.isfinite(value):
                try:
                    out[i] = value - self.hull_energy(comp)
                except ValueError:
                    pass
        return out


# ----------------------------------------------------------------------------- building and caching


def reference_file_hash(paths: Sequence[str | Path]) -> str:
    """Combined content hash of the reference CSVs (order matters)."""
    h = hashlib.sha256(b"hull-reference:v1\n")
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def read_reference_rows(paths: Sequence[str | Path]) -> tuple[list[str], list[str], list[float]]:
    """``(names, cifs, dft_formation_energy_per_atom)`` of the reference CSVs (NaN without the column)."""
    names: list[str] = []
    cifs: list[str] = []
    formation: list[float] = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise InputError(f"stability reference file not found: {p}")
        df: pd.DataFrame = read_cdvae_csv(p)
        ids = df["material_id"] if "material_id" in df.columns else pd.Series(range(len(df)))
        names += [str(x) for x in ids]
        cifs += [c if isinstance(c, str) else "" for c in df["cif"]]
        col = df["formation_energy_per_atom"] if "formation_energy_per_atom" in df.columns else None
        formation += [float(x) for x in col] if col is not None else [float("nan")] * len(df)
    return names, cifs, formation


def composition_dict(structure: Structure) -> dict[str, float]:
    """Element -> amount of a Structure's cell (oxidation states dropped)."""
    return {el.symbol: float(a) for el, a in structure.composition.element_composition.items()}


def build_reference_energies(
    paths: Sequence[str | Path],
    single_points: Callable[[list[str]], list[tuple[dict[str, float], float]]],
    potential_id: str,
) -> ReferenceEnergies:
    """Read the references and compute their energies with ``single_points(cifs) -> [(composition, e)]``."""
    names, cifs, formation = read_reference_rows(paths)
    if not cifs:
        raise InputError("the stability reference files hold no rows")
    res = single_points(cifs)
    return ReferenceEnergies(
        names=names,
        compositions=[c for c, _ in res],
        ml_energy=[e for _, e in res],
        dft_formation=formation,
        potential=potential_id,
        file_hash=reference_file_hash(paths),
    )


def energies_cache_key(paths: Sequence[str | Path], potential_id: str) -> str:
    """Cache key of the reference energies: file hashes + potential identity + format version."""
    blob = json.dumps([HULL_VERSION, potential_id, reference_file_hash(paths)])
    return "hullref:" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def parse_for_hull(cif: str) -> Structure | None:
    """Parse one reference CIF (None if unreadable)."""
    try:
        return parse_cif(cif)
    except ValueError:
        return None
