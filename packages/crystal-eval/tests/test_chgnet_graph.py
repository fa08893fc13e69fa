"""crystal_eval.chgnet_graph builds CHGNet's crystal graph, tensor for tensor, as CHGNet's converter does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("chgnet", reason="the optional extra crystal-eval[stability] (chgnet) is not installed")

import torch  # noqa: E402
from chgnet.graph.converter import CrystalGraphConverter  # noqa: E402
from crystal_eval.chgnet_graph import (  # noqa: E402
    DuplicateEdgeError,
    crystal_graph,
    graph_of,
    line_graph,
    pair_edges,
    supports,
)
from crystal_eval.io import parse_cif  # noqa: E402
from crystal_eval.potential import CHGNetPotential  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TENSORS = ("atomic_number", "atom_frac_coord", "atom_graph", "neighbor_image", "directed2undirected",
           "undirected2directed", "bond_graph", "lattice")  # fmt: skip


@pytest.fixture(scope="module")
def pot() -> CHGNetPotential:
    return CHGNetPotential()


@pytest.fixture(scope="module")
def converter(pot: CHGNetPotential) -> CrystalGraphConverter:
    return pot.model.graph_converter


def fixture_structures() -> list[Structure]:
    cifs = [*pd.read_csv(DATA / "mp20_train_small.csv")["cif"], *pd.read_csv(DATA / "mp20_test_small.csv")["cif"]]
    samples = [p.read_text() for p in sorted((DATA / "samples").glob("[01]*.cif"))]
    return [parse_cif(c) for c in [*cifs, *samples]]


def awkward_structures() -> list[Structure]:
    """Cells that stress the pairing and the line graph: random positions in skewed cells (nearly touching
    atoms, many angles), one atom whose only neighbours are its own images, a cell with no bond short enough
    for an angle, and a long thin cell."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(25):
        n = int(rng.integers(1, 9))
        cell = rng.normal(scale=0.6, size=(3, 3)) + np.eye(3) * 2.2 * n ** (1 / 3)
        out.append(Structure(Lattice(cell), rng.choice(["O", "Fe", "Li", "Si", "Cs"], n), rng.random((n, 3))))
    out.append(Structure(Lattice.cubic(2.1), ["Cu"], [[0, 0, 0]]))
    out.append(Structure(Lattice.cubic(4.0), ["Cu"], [[0, 0, 0]]))  # nearest neighbour 4 Å: no angle
    out.append(Structure(Lattice.orthorhombic(1.3, 7.0, 11.0), ["H", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    return out


def assert_same_graph(ours, theirs) -> None:
    for name in TENSORS:
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert torch.equal(a, b), name
        assert a.requires_grad == b.requires_grad, name
    for name in ("composition", "atom_graph_cutoff", "bond_graph_cutoff", "graph_id", "mp_id"):
        assert getattr(ours, name) == getattr(theirs, name), name


def test_the_graph_is_chgnets_tensor_for_tensor(converter: CrystalGraphConverter):
    structures = fixture_structures() + awkward_structures()
    n_angles = []
    for s in structures:
        ours, theirs = crystal_graph(converter, s), converter(s)
        assert_same_graph(ours, theirs)
        n_angles.append(len(ours.bond_graph))
    assert min(n_angles) == 0 and max(n_angles) > 1000  # an empty line graph and a crowded one were compared


def test_supported_converter_is_used_and_any_other_is_called(converter: CrystalGraphConverter):
    assert supports(converter)

    class Recording(CrystalGraphConverter):
        def forward(self, structure, graph_id=None, mp_id=None):
            self.called = True
            return super().forward(structure, graph_id, mp_id)

    other = Recording(atom_graph_cutoff=converter.atom_graph_cutoff, bond_graph_cutoff=converter.bond_graph_cutoff)
    s = fixture_structures()[0]
    assert not supports(other)
    assert_same_graph(graph_of(other, s), converter(s))
    assert other.called


def test_an_isolated_atom_raises_as_chgnet_does(converter: CrystalGraphConverter):
    lonely = Structure(Lattice.cubic(12.0), ["Cu", "Cu"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # 10.4 Å apart
    with pytest.raises(ValueError, match="isolated atom"):
        converter(lonely)
    with pytest.raises(ValueError, match="2 isolated atom"):
        crystal_graph(converter, lonely)


def test_pairing_by_hand():
    # 0->1 (image 0), 1->0 (image 0), 0->0 (+x), 0->0 (-x), 1->0 (image +y), 0->1 (image -y)
    center = np.array([0, 1, 0, 0, 1, 0])
    neighbor = np.array([1, 0, 0, 0, 0, 1])
    image = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    d2u, u2d = pair_edges(center, neighbor, image)
    assert d2u.tolist() == [0, 0, 1, 1, 2, 2] and u2d.tolist() == [0, 2, 4]
    # angles at atom 0 from the edges of undirected edge 0, then at atom 1, ...: cutoff 3 keeps them all
    bonds = line_graph(center, neighbor, np.full(6, 2.0), d2u, u2d, 2, 3.0)
    # edges at atom 0 grouped by neighbour in order of first appearance: to 1 (edges 0, 5), to 0 (2, 3)
    assert bonds[:3].tolist() == [[0, 0, 0, 2, 5], [0, 0, 0, 1, 2], [0, 0, 0, 1, 3]]
    assert bonds[3:4].tolist() == [[1, 0, 1, 2, 4]]  # atom 1's other edge
    assert len(bonds) == (3 + 1) + (3 + 3) + (1 + 3)  # per undirected edge: its two ends' other edges


def test_unpaired_and_duplicated_edges_are_refused():
    with pytest.raises(ValueError, match="1 of 3 directed edges have no reverse"):  # 0->0 (+x) without -x
        pair_edges(np.array([0, 1, 0]), np.array([1, 0, 0]), np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]]))
    with pytest.raises(DuplicateEdgeError):
        pair_edges(np.array([0, 0, 1]), np.array([1, 1, 0]), np.zeros((3, 3), int))


def test_energies_equal_chgnets_predictions(pot: CHGNetPotential):
    structures = fixture_structures()[:20]
    ref = pot.model.predict_structure(structures, task="e", batch_size=16)
    assert pot.energies_per_atom(structures) == [float(np.asarray(p["e"]).reshape(-1)[0]) for p in ref]
