"""The isotropic volume pre-relaxation (crystal_eval.prerelax): the line search on analytic energies, its
bounds and failure handling, and one CHGNet check (fewer FIRE steps from a squeezed cell, same minimum)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crystal_eval.prerelax import VolumeSearch, prerelax_volumes, scaled, volume_scales
from pymatgen.core import Lattice, Structure

DATA = Path(__file__).resolve().parent / "data"


def crystal(a: float = 4.0) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


class Analytic:
    """A potential whose energy per atom depends on the cube root of the volume per atom only."""

    def __init__(self, energy, fail=lambda length: False) -> None:  # noqa: ANN001
        self.energy, self.fail, self.calls = energy, fail, 0

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        self.calls += 1
        out = []
        for s in structures:
            x = length(s)
            out.append(float("nan") if self.fail(x) else float(self.energy(x)))
        return out

    def relax(self, structure, fmax, max_steps):  # noqa: ANN001, ANN201
        raise NotImplementedError


def length(s: Structure) -> float:
    return (s.volume / len(s)) ** (1 / 3)


@pytest.mark.parametrize("start", [2.6, 3.0, 3.17, 3.4, 3.8])
def test_a_parabola_in_the_lattice_length_is_minimised_exactly(start: float):
    """E = (l - l0)^2 in the length l = (V/N)^(1/3) is a parabola in the scale: its vertex is found to rounding,
    from too dense and too sparse starts alike."""
    l0 = 3.17
    pot = Analytic(lambda x: (x - l0) ** 2)
    s = crystal(start * 2 ** (1 / 3))
    (out,), scales = prerelax_volumes(pot, [s])
    assert length(out) == pytest.approx(l0, abs=1e-9)
    assert scales[0] == pytest.approx(l0 / start, abs=1e-9)


def test_a_lennard_jones_like_well_is_found_closely_and_the_energy_never_rises():
    pot = Analytic(lambda x: (1.1 / x) ** 12 - 2 * (1.1 / x) ** 6)  # minimum at l = 1.1
    starts = np.linspace(0.95, 1.3, 15)
    out, _ = prerelax_volumes(pot, [crystal(x * 2 ** (1 / 3)) for x in starts])
    for x, s in zip(starts, out, strict=True):
        assert length(s) == pytest.approx(1.1, rel=1.5e-2)  # two parabolic steps: a start for FIRE, not a solver
        assert pot.energy(length(s)) <= pot.energy(x) + 1e-15


def test_the_search_stays_inside_its_bounds_and_batches_its_calls():
    sr = VolumeSearch(lo=0.8, hi=1.5)
    pot = Analytic(lambda x: -x)  # always lower when larger: the search runs to the upper bound
    ss = [crystal(3.0), crystal(4.0), crystal(5.0)]
    scales, evals = volume_scales(pot, ss, sr)
    assert np.all(scales <= sr.hi) and np.all(scales > 1.4)
    assert pot.calls == int(evals.max())  # one call per round for all crystals together
    pot = Analytic(lambda x: x)
    scales, _ = volume_scales(pot, ss, sr)
    assert np.all(scales >= sr.lo) and np.all(scales < 0.9)


def test_failed_energies_keep_the_cell_or_end_the_search_in_that_direction():
    pot = Analytic(lambda x: (x - 3.0) ** 2, fail=lambda x: True)
    scales, _ = volume_scales(pot, [crystal(4.0)])
    assert scales.tolist() == [1.0]
    # the potential fails beyond l = 3.3: the search stops there, at a finite, lower energy
    pot = Analytic(lambda x: -x, fail=lambda x: x > 3.3)
    s = crystal(3.0 * 2 ** (1 / 3))
    (out,), _ = prerelax_volumes(pot, [s])
    assert 3.0 < length(out) <= 3.3


def test_scaled_keeps_fractional_coordinates():
    s = crystal()
    t = scaled(s, 1.1)
    assert np.allclose(t.frac_coords, s.frac_coords) and t.volume == pytest.approx(s.volume * 1.1**3)
    with pytest.raises(ValueError, match="lo < 1 - step"):
        VolumeSearch(lo=0.99).validate()


def test_chgnet_squeezed_crystal_prerelaxed_relaxes_in_fewer_steps_to_the_same_energy():
    """A real MP-20 crystal (GaTe, test fixture row 0) squeezed to 90 % of its lattice lengths: the
    pre-relaxation restores most of the lost volume, and the FIRE relaxation that follows takes fewer steps
    and ends at the same energy per atom (within 5 meV) as the one from the squeezed cell."""
    pytest.importorskip("chgnet", reason="the optional extra crystal-eval[stability] (chgnet) is not installed")
    from crystal_eval.io import parse_cif
    from crystal_eval.potential import CHGNetPotential
    from crystal_eval.stability import StabilityConfig, relax_many

    real = parse_cif(pd.read_csv(DATA / "mp20_test_small.csv")["cif"][0])
    squeezed = scaled(real, 0.9)
    pot = CHGNetPotential()
    (pre,), scales = prerelax_volumes(pot, [squeezed])
    assert 1.06 < scales[0] < 1.16
    plain, = relax_many([squeezed], pot, StabilityConfig(n_jobs=1, progress=False, max_steps=300))
    fast, = relax_many([squeezed], pot, StabilityConfig(n_jobs=1, progress=False, max_steps=300,
                                                        prerelax_volume=True))
    assert plain.converged and fast.converged
    assert fast.prerelax_scale == pytest.approx(scales[0]) and plain.prerelax_scale == 1.0
    assert fast.steps < plain.steps
    assert fast.energy_per_atom == pytest.approx(plain.energy_per_atom, abs=5e-3)
    assert json.dumps(fast.composition) == json.dumps(plain.composition)
