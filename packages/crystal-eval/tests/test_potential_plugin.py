"""Another potential behind ``--stability``: any ASE calculator or ``Potential`` factory (``--potential``).

ASE's EMT (Jacobsen et al., Surf. Sci. 366, 394 (1996); Cu, Ni, Al, Au and a few more elements, float64, fast)
stands in for a universal potential a user would plug in: the checks are the wiring (factory -> workers ->
hull -> relaxation -> report), the adapter's forces and stress (the relaxation must end at EMT's own
equilibrium, found here with ASE alone) and the errors.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ase = pytest.importorskip("ase", reason="the optional extra crystal-eval[stability] (ase) is not installed")

from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from crystal_eval.cache import FeatureCache  # noqa: E402
from crystal_eval.cli import main  # noqa: E402
from crystal_eval.io import InputError  # noqa: E402
from crystal_eval.potential import (  # noqa: E402
    AseCalculatorPotential,
    RelaxFailure,
    RelaxOutcome,
    load_potential,
    potential_id,
)
from crystal_eval.stability import StabilityConfig, evaluate_stability  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402

SPEC = "ase.calculators.emt:EMT"
DATA = Path(__file__).resolve().parent / "data"


def emt_fcc_lattice_constant(symbol: str) -> float:
    """EMT's equilibrium fcc lattice constant, from ASE alone (energy minimised over the cubic cell's edge)."""

    def energy(a: float) -> float:
        atoms = bulk(symbol, "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return float(atoms.get_potential_energy())

    return float(minimize_scalar(energy, bounds=(3.0, 4.5), method="bounded", options={"xatol": 1e-7}).x)


def strained(symbol: str, seed: int) -> Structure:
    """The conventional fcc cell 4 % too large, sheared and rattled."""
    rng = np.random.default_rng(seed)
    atoms = bulk(symbol, "fcc", a=1.04 * emt_fcc_lattice_constant(symbol), cubic=True)
    shear = rng.uniform(-0.02, 0.02, (3, 3))
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + (shear + shear.T) / 2), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    return AseAtomsAdaptor.get_structure(atoms)


def test_ase_calculator_relaxes_to_the_calculators_own_equilibrium_as_ase_fire_does():
    pot = load_potential(SPEC)
    assert isinstance(pot, AseCalculatorPotential) and pot.label == SPEC
    a0 = emt_fcc_lattice_constant("Cu")
    crystals = [strained("Cu", seed) for seed in range(3)]
    batched = pot.relax_batch(crystals, 0.002, 500, None)
    for s, b in zip(crystals, batched, strict=True):
        a = pot.relax(s, 0.002, 500)
        assert isinstance(b, RelaxOutcome) and b.converged and a.converged and b.seconds > 0
        # one float64 calculator: the batched FIRE follows ASE's trajectory
        assert b.steps == a.steps
        assert b.energy_per_atom == pytest.approx(a.energy_per_atom, abs=1e-9)
        np.testing.assert_allclose(b.structure.lattice.matrix, a.structure.lattice.matrix, atol=1e-6)
        # the stress the adapter hands FIRE has the right sign and scale: the cell ends at EMT's a0
        assert (4 * b.structure.volume / len(b.structure)) ** (1 / 3) == pytest.approx(a0, abs=1e-3)
        assert sorted(b.structure.lattice.abc) == pytest.approx([a0] * 3, abs=2e-3)


def test_single_points_and_relaxations_fail_alone_where_the_calculator_fails():
    pot = load_potential(SPEC)
    cu = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # EMT has no Fe
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = EMT()
    e_cu, e_fe = pot.energies_per_atom([cu, fe])
    assert e_cu == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-12) and np.isnan(e_fe)
    ok, bad = pot.relax_batch([strained("Cu", 0), fe], 0.01, 200, 30.0)
    assert isinstance(ok, RelaxOutcome) and ok.converged
    assert isinstance(bad, RelaxFailure) and not bad.timed_out and "No EMT-potential for Fe" in bad.reason


class SlowEMT(EMT):
    """EMT that takes at least 20 ms per evaluation."""

    def calculate(self, *args, **kwargs):
        import time

        time.sleep(0.02)
        super().calculate(*args, **kwargs)


def test_the_time_limit_holds_for_each_crystal_of_a_plugged_in_calculator():
    pot = AseCalculatorPotential(SlowEMT(), "slow EMT")
    out = pot.relax_batch([strained("Cu", 1), strained("Ni", 2)], 1e-6, 10_000, 0.3)
    for r in out:
        assert isinstance(r, RelaxFailure) and r.timed_out
        assert 0.29 <= r.seconds < 1.0  # its own evaluations only, stopped at the limit (timer resolution)


class SleepyEMT(EMT):
    """EMT that waits 100 ms per evaluation without using the CPU (as a remote or GPU potential might)."""

    def calculate(self, *args, **kwargs):
        import time

        time.sleep(0.1)
        super().calculate(*args, **kwargs)


def test_a_cpu_time_limit_does_not_count_the_calculators_waiting():
    """SleepyEMT waits 100 ms per evaluation: 10 steps run past a 0.5 s wall-clock limit, but use far less than
    0.5 s of CPU (EMT on 4 atoms takes milliseconds), so under ``clock="cpu"`` they reach the step cap instead."""
    from threadpoolctl import threadpool_limits

    pot = AseCalculatorPotential(SleepyEMT(), "sleepy EMT")
    crystals = [strained("Cu", 1), strained("Ni", 2)]
    wall = pot.relax_batch(crystals, 1e-6, 10, 0.5)
    assert all(isinstance(r, RelaxFailure) and r.timed_out for r in wall)
    with threadpool_limits(1):  # as crystal-eval relaxes: a spinning BLAS thread would use up CPU time too
        cpu = pot.relax_batch(crystals, 1e-6, 10, 0.5, clock="cpu")
    for r in cpu:
        assert isinstance(r, RelaxOutcome) and r.steps == 10 and not r.converged
        assert r.seconds < 0.5  # CPU seconds charged, not the 1.1 s and more of wall time


def test_a_plugged_in_relax_batch_without_a_clock_serves_the_wall_clock_only():
    """A plug-in whose ``relax_batch`` predates the ``clock`` parameter: used as before for the wall clock; with
    ``clock="cpu"`` the crystals are relaxed one at a time by its ``relax`` under a CPU-time limit instead."""
    from crystal_eval.potential import relax_structures

    class OldPlugin(AseCalculatorPotential):
        calls: list[str] = []

        def relax(self, structure, fmax, max_steps):
            self.calls.append("relax")
            return super().relax(structure, fmax, max_steps)

        def relax_batch(self, structures, fmax, max_steps, limit=None):  # no clock parameter
            self.calls.append("relax_batch")
            return super().relax_batch(structures, fmax, max_steps, limit)

    pot = OldPlugin(EMT(), "EMT")
    crystals = [strained("Cu", 3), strained("Ni", 4)]
    relax_structures(pot, crystals, 0.05, 50, 30.0)
    assert pot.calls == ["relax_batch"]
    pot.calls.clear()
    out = relax_structures(pot, crystals, 0.05, 50, 30.0, clock="cpu")
    assert pot.calls == ["relax", "relax"] and all(isinstance(r, RelaxOutcome) for r in out)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ase.calculators.emt", "expected MODULE:FACTORY"),
        ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
        ("ase.calculators.emt:NoSuchCalculator", "ase.calculators.emt has no attribute NoSuchCalculator"),
        ("math:pi", "pi is a float, not a zero-argument callable"),
        ("math:sqrt", "calling it failed (TypeError"),
        ("builtins:dict", "it returned a dict, which is neither a crystal_eval Potential"),
    ],
)
def test_a_bad_potential_spec_is_an_input_error_naming_the_problem(spec: str, message: str):
    with pytest.raises(InputError, match=re.escape(f"--potential {spec!r}: {message}")):
        load_potential(spec)


def test_a_potential_factory_is_used_as_it_is():
    pytest.importorskip("chgnet", reason="the optional extra crystal-eval[stability] (chgnet) is not installed")
    from crystal_eval.potential import CHGNetPotential

    pot = load_potential("crystal_eval.potential:CHGNetPotential")
    assert type(pot) is CHGNetPotential and pot.label == "CHGNet 0.3.0"


def test_the_cache_identity_is_the_spec_and_its_distributions_version():
    assert potential_id(SPEC) == f"{SPEC} (ase {ase.__version__})"
    assert potential_id("a_module_of_my_own:factory") == "a_module_of_my_own:factory (unversioned)"


def _reference_csv(path: Path) -> Path:
    """Elemental fcc Cu, Ni, Au and Al and the L1_2 compounds Cu3Au and Ni3Al, at EMT's fcc lattice constants."""
    rows = []
    for symbol in ("Cu", "Ni", "Au", "Al"):
        s = AseAtomsAdaptor.get_structure(bulk(symbol, "fcc", a=emt_fcc_lattice_constant(symbol), cubic=True))
        rows.append((f"ref-{symbol}", s))
    for corner, face, a in (("Au", "Cu", 3.75), ("Al", "Ni", 3.57)):
        s = Structure(Lattice.cubic(a), [corner, face, face, face], [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
        rows.append((f"ref-{s.composition.reduced_formula}", s))
    pd.DataFrame({"material_id": [n for n, _ in rows], "cif": [s.to(fmt="cif") for _, s in rows]}).to_csv(path)
    return path


def test_stability_with_an_ase_calculator_end_to_end(tmp_path: Path):
    refs = [_reference_csv(tmp_path / "refs.csv")]
    cfg = StabilityConfig(potential=partial(load_potential, SPEC), potential_id=potential_id(SPEC),
                          potential_label=SPEC, n_jobs=1, progress=False, fmax=0.01, max_steps=400)  # fmt: skip
    crystals = [strained("Cu", 3), strained("Au", 4)]
    res = evaluate_stability(crystals, 4, refs, cfg, FeatureCache(tmp_path / "cache"))
    rep, meta = res.report, res.report["stability_meta"]
    assert meta["label"] == f"ML-potential stability ({SPEC}), not DFT"
    assert meta["potential"] == potential_id(SPEC) and meta["hull"]["n_reference_failed"] == 0
    # the relaxed elements end at EMT's own minimum, where the elemental references of the hull sit (E_hull
    # cannot be below 0; above it only by what fmax leaves of the relaxation)
    assert all(-1e-9 <= e <= 1e-4 for e in res.details["e_hull"])
    assert rep["stable_rate"] == 100.0 and rep["sun_rate"] == 50.0 and meta["n_failed"] == 0
    assert len(res.reference_e_hull) == 6 and np.nanmax(np.abs(res.reference_e_hull)) < 1.0


def test_the_e_hull_curve_meets_the_stable_rate_at_the_threshold():
    from crystal_eval.stability import e_hull_cdf

    e = [-0.01, 0.05, 0.2, float("nan")]  # the NaN (a failed crystal) stays in the denominator
    assert e_hull_cdf(e, [-1.0, 0.0, 0.1, 0.2, 5.0]).tolist() == [0.0, 0.25, 0.5, 0.75, 0.75]
    assert e_hull_cdf([], [0.1]).tolist() == [0.0]
    rng = np.random.default_rng(0)
    e = np.where(rng.random(200) < 0.1, np.nan, rng.normal(0.1, 0.2, 200))
    stable_rate = 100 * np.mean(np.nan_to_num(e, nan=np.inf) <= 0.1)  # the report's definition
    assert e_hull_cdf(e, [0.1])[0] == pytest.approx(stable_rate / 100, abs=1e-15)


def test_cli_potential_option(tmp_path: Path, capsys):
    out = tmp_path / "r.json"
    args = [str(DATA / "samples"), "--train", str(DATA / "mp20_train_small.csv"), "--test"]
    args += [str(DATA / "mp20_test_small.csv"), "-o", str(out), "--relax-steps", "20"]
    args += ["--jobs", "1", "-q", "--cache-dir", str(tmp_path / "cache")]
    plots = tmp_path / "plots"
    assert main([*args, "--stability", "--potential", SPEC, "--plots", str(plots)]) == 0
    assert {p.name for p in plots.iterdir()} == {"space_groups.png", "num_elements.png", "density.png",
                                                 "stability.png"}  # fmt: skip
    assert (plots / "stability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(out.read_text())["stability_meta"]
    assert meta["label"] == f"ML-potential stability ({SPEC}), not DFT"
    assert meta["potential"] == potential_id(SPEC)
    # EMT knows none of these crystals' elements: each fails alone, with the reason, and counts as not stable
    assert meta["n_failed"] == meta["n_evaluated"] > 0 and meta["n_stable"] == 0
    assert f"ML-potential stability ({SPEC}), not DFT" in capsys.readouterr().out
    out.unlink()
    for extra, message in (
        (["--stability", "--potential", "no_such_module_xyz:f"], "cannot import no_such_module_xyz"),
        (["--stability", "--potential", SPEC, "--potential-model", "0.3.0"], "cannot go with --potential"),
        (["--potential", SPEC], "add --stability"),
    ):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("crystal-eval: error:") and message in err and "Traceback" not in err
        assert not out.exists()
