"""``crystal_eval.chgnet_forward``: CHGNet's energy with the first layers split, and the batch of graphs.

The split forward is the same network with float32 sums taken in another order, so every comparison here is
against CHGNet's own forward on the same batched graph (and ``batch_graphs`` against CHGNet's
``BatchedGraph.from_graphs``): the shipped 0.3.0 weights on real, rattled and random crystals, and small random
CHGNets of other architectures (other widths, readouts, norms, activations, layers switched off). A model the
module does not know is refused and the calculator falls back to ``_compute``.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("chgnet", reason="the optional extra crystal-eval[stability] (chgnet) is not installed")

import torch  # noqa: E402
from chgnet.model import CHGNet  # noqa: E402
from chgnet.model.model import BatchedGraph  # noqa: E402
from crystal_eval.chgnet_forward import SplitCHGNet, batch_graphs, supports  # noqa: E402
from crystal_eval.io import parse_cif  # noqa: E402
from crystal_eval.potential import CHGNetBatchCalculator, CHGNetPotential  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

TEST = Path(__file__).resolve().parent / "data" / "mp20_test_small.csv"


@pytest.fixture(scope="module")
def shipped() -> CHGNet:
    return CHGNetPotential().model


def crystals() -> list[Structure]:
    """Six real crystals, rattled and strained copies of three, two with atoms at random positions (atoms
    0.7 A apart at least, as in generated crystals) and a sparse one with no bond within 3 A (no angles)."""
    rng = np.random.default_rng(0)
    cifs = pd.read_csv(TEST)["cif"]
    real = [parse_cif(cifs[i]) for i in (0, 4, 10, 25, 27, 29)]
    out = list(real)
    for s in real[:3]:
        t = s.copy()
        t.apply_strain(rng.uniform(-0.03, 0.03, 3).tolist())
        out.append(Structure(t.lattice, t.species, t.cart_coords + rng.normal(scale=0.1, size=(len(t), 3)),
                             coords_are_cartesian=True))  # fmt: skip
    for s in real[3:5]:
        while True:
            t = Structure(s.lattice, s.species, rng.random((len(s), 3)))
            if t.distance_matrix[np.triu_indices(len(t), 1)].min() >= 0.7:
                out.append(t)
                break
    out.append(Structure(Lattice.cubic(3.5), ["Na"], [[0, 0, 0]]))
    return out


def energies_and_gradients(model: CHGNet, structures: list[Structure], split: bool) -> tuple[np.ndarray, ...]:
    """Energies per atom, ``dE/dr`` per atom and ``dE/dstrain`` per crystal (float64 copies of float32)."""
    graphs = [model.graph_converter(s) for s in structures]
    with torch.enable_grad():
        bg = BatchedGraph.from_graphs(graphs, model.bond_basis_expansion, model.angle_basis_expansion,
                                      compute_stress=True)
        if split:
            energy, n_atoms = SplitCHGNet(model).energy(bg)
        else:
            pred = model._compute(bg)
            energy, n_atoms = pred["e"], pred["atoms_per_graph"]
        total = (energy * n_atoms).sum() if model.is_intensive else energy.sum()
        grads = torch.autograd.grad(total, [*bg.atom_positions, *bg.strains])
    k = len(structures)
    return (energy.detach().double().numpy(), np.concatenate([g.double().numpy() for g in grads[:k]]),
            np.stack([g.double().numpy() for g in grads[k:]]))  # fmt: skip


def assert_same_network(model: CHGNet, structures: list[Structure]) -> None:
    """Energies, forces and strain derivatives of the split forward equal ``_compute``'s to float32 rounding
    (relative to their size), and they are not all zero."""
    e0, f0, s0 = energies_and_gradients(model, structures, split=False)
    e1, f1, s1 = energies_and_gradients(model, structures, split=True)
    for ref, got in ((e0, e1), (f0, f1), (s0, s1)):
        scale = np.abs(ref).max()
        assert scale > 0 and np.all(np.isfinite(got))
        assert np.abs(got - ref).max() <= 2e-5 * scale + 1e-6


def test_shipped_model_is_supported_and_matches_its_own_forward(shipped: CHGNet):
    assert supports(shipped)
    structures = crystals()
    e0, f0, s0 = energies_and_gradients(shipped, structures, split=False)
    e1, f1, s1 = energies_and_gradients(shipped, structures, split=True)
    assert np.abs(e1 - e0).max() < 2e-5  # eV/atom
    assert np.abs(f1 - f0).max() < 1e-5 * np.abs(f0).max() + 1e-4  # eV/A; the random crystals' forces are large
    assert np.abs(s1 - s0).max() < 1e-5 * np.abs(s0).max() + 1e-3  # eV per unit strain
    assert np.abs(f0).max() > 10  # the near-touching crystals are in the batch


def test_a_batch_without_angles(shipped: CHGNet):
    """No bond within 3 A anywhere in the batch: the bond and angle layers are skipped, as by CHGNet."""
    sparse = sparse_crystals()
    assert all(len(shipped.graph_converter(s).bond_graph) == 0 for s in sparse)
    e0, _, s0 = energies_and_gradients(shipped, sparse, split=False)
    e1, _, s1 = energies_and_gradients(shipped, sparse, split=True)
    assert np.abs(e1 - e0).max() < 1e-5 and np.abs(s1 - s0).max() < 1e-4


ARCHITECTURES = {
    "other widths, hidden lists, relu": dict(atom_fea_dim=12, bond_fea_dim=10, angle_fea_dim=6, num_radial=7,
                                             num_angular=5, n_conv=3, atom_conv_hidden_dim=[9, 7],
                                             bond_conv_hidden_dim=8, angle_layer_hidden_dim=5,
                                             non_linearity="relu"),
    "average readout, no norms, gelu": dict(atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5,
                                            num_angular=5, n_conv=2, mlp_first=False, read_out="ave",
                                            gMLP_norm=None, readout_norm=None, non_linearity="gelu",
                                            is_intensive=False),
    "attention readout, batch norms": dict(atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5,
                                           num_angular=5, n_conv=3, mlp_first=False, read_out="attn",
                                           gMLP_norm="batch", readout_norm="batch"),
    "no angle update": dict(atom_fea_dim=8, bond_fea_dim=6, angle_fea_dim=4, num_radial=5, num_angular=5,
                            n_conv=3, update_angle=False),
    "no bond update": dict(atom_fea_dim=8, bond_fea_dim=6, angle_fea_dim=4, num_radial=5, num_angular=5,
                           n_conv=3, update_bond=False),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_random_chgnets_of_other_architectures(name: str):
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its size
        model = CHGNet(composition_model=None, **ARCHITECTURES[name])
    with torch.no_grad():  # random affine norms and biases, so that none of them is the identity
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    assert supports(model)
    assert_same_network(model, crystals()[:9])


def test_unknown_models_are_refused_and_the_calculator_falls_back(shipped: CHGNet):
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet(composition_model=None, atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5,
                       num_angular=5, n_conv=2)  # fmt: skip
    assert not supports(model)  # a new CHGNet is in training mode: dropouts would act on the concatenation
    with pytest.raises(ValueError, match="evaluation mode"):
        SplitCHGNet(model)
    model.eval()
    assert supports(model)
    model.atom_conv_layers[0].twoBody_atom.mlp_core.layers[0] = torch.nn.Dropout(0.1)  # not a first layer
    assert not supports(model)
    assert not supports(torch.nn.Linear(2, 2))
    assert CHGNetBatchCalculator(model).split is None  # falls back to CHGNet._compute
    assert CHGNetBatchCalculator(shipped).split is not None
    assert CHGNetBatchCalculator(shipped, split_layers=False).split is None


def test_another_chgnet_version_is_not_trusted(shipped: CHGNet, monkeypatch: pytest.MonkeyPatch):
    """The module reimplements chgnet 0.4.2's forward and batching: with another installed version the calculator
    uses CHGNet's own."""
    import crystal_eval.chgnet_graph as chgnet_graph

    assert supports(shipped)
    monkeypatch.setattr(chgnet_graph, "_chgnet_version", lambda: "0.5.0")
    assert not supports(shipped)
    assert CHGNetBatchCalculator(shipped).split is None


@pytest.mark.parametrize("split", [True, False])
def test_the_calculator_gives_the_same_relaxation_inputs_either_way(shipped: CHGNet, split: bool):
    """``CHGNetBatchCalculator`` with and without the split layers against CHGNet's ``predict_structure``."""
    structures = crystals()[:9]
    calc = CHGNetBatchCalculator(shipped, split_layers=split)
    got = calc.evaluate([calc.prepare(s.lattice.matrix, s.cart_coords, np.array(s.atomic_numbers))
                         for s in structures])  # fmt: skip
    for g, ref in zip(got, shipped.predict_structure(structures, task="efs"), strict=True):
        assert g.energy_per_atom == pytest.approx(float(ref["e"]), abs=2e-5)
        assert np.abs(g.forces - ref["f"]).max() < 1e-5 * np.abs(ref["f"]).max() + 1e-4
        assert np.abs(g.stress * 160.21766208 - ref["s"]).max() < 1e-5 * np.abs(ref["s"]).max() + 1e-3  # GPa


def sparse_crystals() -> list[Structure]:
    """Two crystals without a bond within 3 A (no angles), one of them with a force on its atoms."""
    return [Structure(Lattice.cubic(3.5), ["Na"], [[0, 0, 0]]),
            Structure(Lattice.orthorhombic(5.0, 5.6, 6.2), ["K", "K"], [[0, 0, 0], [0.45, 0.35, 0.3]])]  # fmt: skip


@pytest.mark.parametrize("angles", [True, False], ids=["mixed batch", "no angles at all"])
def test_batch_graphs_is_chgnets_batched_graph(shipped: CHGNet, angles: bool):
    """The same indices exactly, the same bases and volumes to float32 rounding, and the same derivatives of the
    bases with respect to the positions and strains (a batch with angles and one crystal without, and a batch
    without any)."""
    structures = crystals()[:12] if angles else sparse_crystals()
    graphs = [shipped.graph_converter(s) for s in structures]
    assert all(len(g.bond_graph) == 0 for g in graphs) != angles
    with torch.enable_grad():
        ref = BatchedGraph.from_graphs(graphs, shipped.bond_basis_expansion, shipped.angle_basis_expansion,
                                       compute_stress=True)  # fmt: skip
        got = batch_graphs(shipped, graphs)
        for name in ("atomic_numbers", "atom_owners", "batched_atom_graph", "directed2undirected",
                     "batched_bond_graph"):  # fmt: skip
            assert torch.equal(getattr(got, name).long(), getattr(ref, name).long()), name
        for name in ("bond_bases_ag", "bond_bases_bg", "angle_bases", "volumes"):
            a, b = getattr(got, name), getattr(ref, name)
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
        assert got.atoms_per_crystal == [len(s) for s in structures]
        assert torch.allclose(got.positions, torch.cat(ref.atom_positions), rtol=1e-6, atol=1e-5)
        weights = [torch.linspace(0.5, 1.5, b.shape[1]) for b in (ref.bond_bases_ag, ref.bond_bases_bg)]

        def scalar(batch):  # a function of every basis, weighted so that no derivative cancels by symmetry
            out = (batch.bond_bases_ag * weights[0]).sum() + (batch.bond_bases_bg * weights[1]).sum()
            return out + (batch.angle_bases.sum() if len(batch.angle_bases) else 0.0)

        d_ref = torch.autograd.grad(scalar(ref), [*ref.atom_positions, *ref.strains])
        d_got = torch.autograd.grad(scalar(got), [got.positions, got.strains])
    k = len(structures)
    assert torch.allclose(torch.cat(d_ref[:k]), d_got[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(torch.stack(d_ref[k:]), d_got[1], rtol=1e-4, atol=1e-3)
    assert d_got[0].abs().max() > 0.1 and d_got[1].abs().max() > 0.1
