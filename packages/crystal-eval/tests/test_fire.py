"""Batched FIRE (crystal_eval.fire) against ASE's FIRE on FrechetCellFilter, with a Lennard-Jones potential.

Float64 throughout: with the same potential, the batched optimiser must follow ASE's trajectory to
rounding error (same step counts, positions, cells and energies), whatever the batch composition.
"""

from __future__ import annotations

import time
from itertools import product

import numpy as np
import pytest
from crystal_eval.fire import EnergyForcesStress, FireParameters, expm_frechet_adjoint, fire_relax, fire_update
from scipy.linalg import expm_frechet

ase = pytest.importorskip("ase", reason="the optional extra crystal-eval[stability] (ase) is not installed")

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.filters import FrechetCellFilter  # noqa: E402
from ase.optimize import FIRE  # noqa: E402
from ase.stress import full_3x3_to_voigt_6_stress  # noqa: E402

RC = 2.5  # LJ cutoff (sigma = epsilon = 1)


def lj_efs(cell: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Shifted-force Lennard-Jones (energy and force continuous at ``RC``): total energy, forces and stress
    ``(1/V) dE/dstrain``, summed over every periodic image within the cutoff (numpy, float64).

    ``phi(r) = 4 (r^-12 - r^-6) - phi(RC) - (r - RC) phi'(RC)``; ``f_i = sum phi'(|d|) d / |d|`` and
    ``dE/dstrain = 1/2 sum phi'(|d|) d d^T / |d|`` over pairs ``d = r_j + T - r_i`` (each pair twice).
    """
    heights = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    spread = np.ptp(positions @ np.linalg.inv(cell), axis=0)
    reach = [int(np.ceil(RC / h + sp)) + 1 for h, sp in zip(heights, spread, strict=True)]
    shifts = np.array(list(product(*(range(-k, k + 1) for k in reach)))) @ cell
    d = positions[None, :, None] + shifts[None, None] - positions[:, None, None]  # (i, j, T, 3)
    r2 = np.einsum("ijtk,ijtk->ijt", d, d)
    m = (r2 < RC**2) & (r2 > 1e-18)
    owner, d = np.nonzero(m)[0], d[m]  # the pairs within the cutoff
    r = np.sqrt(r2[m])

    def phi(x):
        return 4.0 * (x**-12 - x**-6)

    def dphi(x):
        return 4.0 * (-12.0 * x**-13 + 6.0 * x**-7)

    e = phi(r) - phi(RC) - (r - RC) * dphi(RC)
    de_over_r = (dphi(r) - dphi(RC)) / r
    forces = np.zeros_like(positions)
    np.add.at(forces, owner, de_over_r[:, None] * d)
    stress = 0.5 * np.einsum("p,pk,pl->kl", de_over_r, d, d) / abs(np.linalg.det(cell))
    return 0.5 * float(e.sum()), forces, stress


class NumpyLJ(Calculator):
    """:func:`lj_efs` as an ASE calculator (the reference path: ASE's FIRE on FrechetCellFilter)."""

    implemented_properties = ("energy", "forces", "stress")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        e, f, s = lj_efs(self.atoms.cell[:], self.atoms.positions)
        self.results = {"energy": e, "forces": f, "stress": full_3x3_to_voigt_6_stress(s)}


class LJBatch:
    """A BatchCalculator over :func:`lj_efs` (one crystal after the other); records its batch sizes."""

    def __init__(self, slow: frozenset[int] = frozenset(), bad: frozenset[int] = frozenset(), sleep: float = 0.0):
        self.slow, self.bad, self.sleep, self.calls = slow, bad, sleep, []

    def prepare(self, cell, positions, numbers):
        tag = int(numbers[0]) - 18  # crystals are told apart by their element (Ar + tag)
        if tag in self.slow:
            time.sleep(self.sleep)
        if tag in self.bad:
            raise ValueError("a crystal the potential cannot handle")
        return np.array(cell), np.array(positions)

    def cost(self, prepared) -> float:
        return float(len(prepared[1]))

    def evaluate(self, batch):
        self.calls.append(len(batch))
        out = []
        for cell, positions in batch:
            e, f, s = lj_efs(cell, positions)
            out.append(EnergyForcesStress(e / len(positions), f, s))
        return out


def lj_crystals(n: int = 6, seed: int = 0) -> list[Atoms]:
    """Strained, rattled fcc cells of 4 and 8 atoms (LJ units), different lattice constants."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Ar", "fcc", a=1.6 + 0.05 * k, cubic=True).repeat((1 + k % 2, 1, 1))
        strain = rng.uniform(-0.03, 0.03, (3, 3))
        a.set_cell(a.cell[:] @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


def ase_relax(a: Atoms, fmax: float, steps: int):
    b = a.copy()
    b.calc = NumpyLJ()
    opt = FIRE(FrechetCellFilter(b), logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return b.cell[:].copy(), b.positions.copy(), b.get_potential_energy() / len(b), opt.nsteps, converged


def as_input(crystals: list[Atoms], tags: bool = False):
    return [(a.cell[:], a.positions, np.full(len(a), 18 + (i if tags else 0))) for i, a in enumerate(crystals)]


def test_lennard_jones_forces_and_stress_are_its_derivatives():
    """The test potential is consistent (central differences of the energy), else FIRE would not converge."""
    a = lj_crystals(2)[1]
    cell, pos, h = a.cell[:], a.positions, 1e-5
    _, forces, stress = lj_efs(cell, pos)
    for i, k in product(range(len(pos)), range(3)):
        d = np.zeros_like(pos)
        d[i, k] = h
        assert -(lj_efs(cell, pos + d)[0] - lj_efs(cell, pos - d)[0]) / (2 * h) == pytest.approx(forces[i, k], abs=1e-6)
    for k, m in product(range(3), repeat=2):
        eps = np.zeros((3, 3))
        eps[k, m] = eps[m, k] = h / 2 if k != m else h
        up, down = (lj_efs(cell @ (np.eye(3) + sg * eps), pos @ (np.eye(3) + sg * eps))[0] for sg in (1, -1))
        assert (up - down) / (2 * h) / abs(np.linalg.det(cell)) == pytest.approx(stress[k, m], abs=1e-6)


@pytest.fixture(scope="module")
def ase_reference() -> list:
    """ASE's FIRE on FrechetCellFilter for :func:`lj_crystals` (4, 8, 4, 8, 4, 8 atoms), fmax 1e-3."""
    return [ase_relax(a, 1e-3, 500) for a in lj_crystals()]


@pytest.mark.parametrize(("batch_size", "batch_atoms", "largest_batch"), [(1, 512, 1), (4, 12, 3), (32, 512, 6)])
def test_batched_fire_follows_ase_fire_on_frechet_cell_filter(
    batch_size: int, batch_atoms: int, largest_batch: int, ase_reference: list
):
    crystals, ref = lj_crystals(), ase_reference  # batch_atoms 12 holds the three 4-atom cells at most
    calc = LJBatch()
    res = fire_relax(as_input(crystals), calc, fmax=1e-3, max_steps=500, batch_size=batch_size,
                     batch_atoms=batch_atoms)  # fmt: skip
    assert max(calc.calls) == largest_batch  # crystals really were evaluated together
    for r, (cell, pos, e, steps, converged) in zip(res, ref, strict=True):
        assert r.error is None and r.converged and converged and r.steps == steps > 30
        assert np.abs(r.cell - cell).max() < 1e-10 and np.abs(r.positions - pos).max() < 1e-10
        assert r.energy_per_atom == pytest.approx(e, abs=1e-12)


def test_step_cap_stops_a_crystal_at_the_state_of_ase_and_leaves_the_batch_alone():
    crystals = lj_crystals(4)
    clean = fire_relax(as_input(crystals), LJBatch(), fmax=1e-3, max_steps=500)
    cap = int(np.median([r.steps for r in clean]))
    res = fire_relax(as_input(crystals), LJBatch(), fmax=1e-3, max_steps=cap)
    capped = [k for k, r in enumerate(clean) if r.steps > cap]
    assert 0 < len(capped) < len(crystals)
    for k, (r, c) in enumerate(zip(res, clean, strict=True)):
        if k in capped:  # stopped after `cap` steps, exactly where ASE stops with steps=cap
            cell, pos, e, steps, converged = ase_relax(crystals[k], 1e-3, cap)
            assert not converged and not r.converged and r.error is None and r.steps == steps == cap
            assert np.abs(r.positions - pos).max() < 1e-10 and r.energy_per_atom == pytest.approx(e, abs=1e-12)
        else:  # converged below the cap: the same result as without a cap
            assert r.converged and r.steps == c.steps and np.abs(r.positions - c.positions).max() < 1e-12


def test_time_limit_and_failures_are_per_crystal():
    crystals = lj_crystals(4)
    clean = fire_relax(as_input(crystals, tags=True), LJBatch(), fmax=1e-3, max_steps=500)
    limit = 0.5 + 3 * max(r.seconds for r in clean)  # far above what each crystal needs (the machine may be loaded)
    calc = LJBatch(slow=frozenset({1}), bad=frozenset({2}), sleep=limit / 4)  # 1: charged limit / 4 a step
    res = fire_relax(as_input(crystals, tags=True), calc, fmax=1e-3, max_steps=500, limit=limit)
    assert res[1].timed_out and res[1].error.startswith("TimeLimitExceeded") and np.isnan(res[1].energy_per_atom)
    assert limit < res[1].seconds < 2 * limit and res[1].steps <= 4 < clean[1].steps  # stopped early
    assert not res[2].timed_out and "cannot handle" in res[2].error and res[2].steps == 0
    for k in (0, 3):  # the others are untouched by their neighbours' fate
        assert res[k].error is None and res[k].steps == clean[k].steps and res[k].seconds < limit
        assert np.abs(res[k].positions - clean[k].positions).max() < 1e-10


def test_non_finite_forces_fail_that_crystal_only():
    class NaNForOne(LJBatch):
        def evaluate(self, batch):
            out = super().evaluate(batch)
            return [EnergyForcesStress(r.energy_per_atom, r.forces * np.nan, r.stress) if len(a[1]) == 8 else r
                    for a, r in zip(batch, out, strict=True)]  # fmt: skip

    crystals = lj_crystals(2)  # 4 and 8 atoms
    res = fire_relax(as_input(crystals), NaNForOne(), fmax=1e-3, max_steps=500)
    assert res[0].error is None and res[0].converged
    assert "non-finite" in res[1].error and not res[1].timed_out


def test_frechet_adjoint_equals_nine_directional_derivatives():
    rng = np.random.default_rng(1)
    x, a = rng.normal(size=(4, 3, 3)) * 0.1, rng.normal(size=(4, 3, 3))
    g = expm_frechet_adjoint(x, a)
    for b, (m, n) in product(range(4), product(range(3), repeat=2)):
        e = np.zeros((3, 3))
        e[m, n] = 1.0
        assert g[b, m, n] == pytest.approx(np.sum(expm_frechet(x[b], e, compute_expm=False) * a[b]), abs=1e-13)


def test_fire_update_rules():
    """First step from rest; uphill (P <= 0) resets velocity, mixing and halves dt; maxstep caps the step."""
    p = FireParameters()
    g = np.zeros((3, 4, 3))
    g[:, 0, 0] = 1.0
    x, v = np.zeros_like(g), np.zeros_like(g)
    v[1, 0, 0], v[2, 0, 0] = -1.0, 1.0  # crystal 1 moves uphill, crystal 2 downhill
    first = np.array([True, False, False])
    x1, v1, dt, a, n_pos = fire_update(x, v, g, first, np.full(3, 0.1), np.full(3, 0.05), np.array([0, 3, 6]), p)
    assert v1[0, 0, 0] == pytest.approx(0.1) and x1[0, 0, 0] == pytest.approx(0.01)  # v = dt g, dr = dt v
    assert dt[1] == pytest.approx(0.05) and a[1] == p.astart and n_pos[1] == 0 and v1[1, 0, 0] == pytest.approx(0.05)
    assert dt[2] == pytest.approx(0.11) and a[2] == pytest.approx(0.05 * p.fa) and n_pos[2] == 7
    big = fire_update(x, v * 100, g * 100, first, np.full(3, 1.0), np.full(3, 0.1), np.zeros(3, int), p)[0]
    assert np.sqrt((big**2).sum(axis=(1, 2))) == pytest.approx(np.full(3, p.maxstep))
