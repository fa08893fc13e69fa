"""CHGNet's energy with each message's first linear layer applied before the gather: the same network, fewer flops.

Every convolution of CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023); chgnet 0.4.2,
``chgnet.model.layers``) gathers the features of a message's parts, concatenates them and feeds the row to a
gated MLP whose first layers (of its core and of its gate) are linear::

    AtomConv, per directed bond (i, j):       x = [a_i, b_ij, a_j]            (atoms a, undirected bonds b)
    BondConv and AngleUpdate, per angle:      x = [b_i, b_j, t_ijk, a_c]      (angles t, centre atom c)
    GatedMLP(x) = act(norm(core(x))) * sigmoid(norm(gate(x))),  core(x) = tail(W x + w)

A linear map of a concatenation is the sum of the linear maps of its parts,
``W [u, v, z] = W_u u + W_v v + W_z z``, and a gather commutes with a linear map, ``(W a)[i] = W (a[i])``. So
:class:`SplitCHGNet` applies each first layer once per atom and once per bond, and gathers and adds the results
per message; only the angle part is multiplied per angle. CHGNet 0.3.0 on generated crystals has about 75
directed bonds within 6 A per atom and as many angles as directed bonds, so most of its multiply-adds were these
first layers. :func:`batch_graphs` assembles the batch of crystal graphs (``BatchedGraph.from_graphs``) with one
tensor operation per step for all crystals instead of one per crystal. Figures:
``benchmarks/chgnet_forward_bench.py``.

The weights, the layer order and every other operation are CHGNet's own modules, called as CHGNet calls
them; only float32 sums are taken in another order, so energies agree with ``CHGNet._compute`` to about
1e-6 eV/atom and forces to about 1e-5 of their size (``tests/test_chgnet_forward.py``). :func:`supports`
says whether a model has the layers this module knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _first_linear(mlp: nn.Module) -> tuple[nn.Linear, list[nn.Module]] | None:
    """The first ``Linear`` of a CHGNet ``MLP`` and the modules after it, or None when only dropouts with p = 0
    (or none) come before it."""
    layers = list(getattr(mlp, "layers", []))
    for k, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            return layer, layers[k + 1 :]
        if not (isinstance(layer, nn.Dropout) and layer.p == 0):
            return None
    return None


@dataclass
class _SplitLinear:
    """A linear layer's weight cut by the parts of its input (``blocks[k]`` acts on part ``k``) and its bias."""

    blocks: list[Tensor]
    bias: Tensor | None

    @classmethod
    def of(cls, linear: nn.Linear, parts: list[int]) -> _SplitLinear:
        weight = linear.weight.detach()
        bias = None if linear.bias is None else linear.bias.detach()
        return cls([w.contiguous() for w in torch.split(weight, parts, dim=1)], bias)

    def gathered(self, parts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
        """``W [x_0[i_0], x_1[i_1], ...] + w`` computed as ``sum_k (W_k x_k)[i_k] + w``: each part ``x_k`` is
        multiplied once per row of its own table, then its rows are gathered by ``i_k`` (None: taken as they are,
        one per message). The bias is added to the first part's table: every message takes one row of it."""
        out: Tensor | None = None
        for k, ((values, index), weight) in enumerate(zip(parts, self.blocks, strict=True)):
            term = F.linear(values, weight, self.bias if k == 0 else None)
            if index is not None:
                term = torch.index_select(term, 0, index)
            out = term if out is None else out.add_(term)  # a tensor made here: adding in place is safe
        if out is None:
            raise ValueError("a linear layer of no parts")
        return out


@dataclass
class SplitGatedMLP:
    """A CHGNet ``GatedMLP`` whose first layers (of the core and of the gate) are split by the parts of its input;
    ``core_tail`` and ``gate_tail`` are the modules after them."""

    module: nn.Module
    core: _SplitLinear
    gate: _SplitLinear
    core_tail: list[nn.Module]
    gate_tail: list[nn.Module]

    @classmethod
    def of(cls, gated: nn.Module, parts: list[int]) -> SplitGatedMLP | None:
        """Split ``gated`` by input parts of widths ``parts``; None when its layers are not the expected ones."""
        core, gate = _first_linear(gated.mlp_core), _first_linear(gated.mlp_gate)
        if core is None or gate is None:
            return None
        (lin_c, tail_c), (lin_g, tail_g) = core, gate
        if lin_c.in_features != sum(parts) or lin_g.in_features != sum(parts):
            return None
        return cls(gated, _SplitLinear.of(lin_c, parts), _SplitLinear.of(lin_g, parts), tail_c, tail_g)

    def __call__(self, parts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
        """``GatedMLP.forward`` of the concatenation of the gathered parts (see :meth:`_SplitLinear.gathered`):
        ``act(norm(core)) * sigmoid(norm(gate))``."""
        core, gate = self.core.gathered(parts), self.gate.gathered(parts)
        for layer in self.core_tail:
            core = layer(core)
        for layer in self.gate_tail:
            gate = layer(gate)
        g = self.module
        if g.norm is not None:
            core, gate = g.bn1(core), g.bn2(gate)
        return g.activation(core) * g.sigmoid(gate)


def _split_each(layers: Any, kind: type, attr: str, parts: list[int]) -> list[SplitGatedMLP | None] | None:
    """The split gated MLP (attribute ``attr``) of every layer of type ``kind`` (None for an absent layer), or
    None when a layer is of another type or its gated MLP cannot be split."""
    out: list[SplitGatedMLP | None] = []
    for layer in layers:
        if layer is None:
            out.append(None)
            continue
        split = SplitGatedMLP.of(getattr(layer, attr), parts) if type(layer) is kind else None
        if split is None:
            return None
        out.append(split)
    return out


def _split_layers(model: nn.Module) -> tuple[list[SplitGatedMLP | None], ...] | None:
    """The split gated MLPs of the atom, bond and angle layers, or None when any layer is not CHGNet's."""
    from chgnet.model.layers import AngleUpdate, AtomConv, BondConv

    atom_dim = model.atom_embedding.embedding.embedding_dim
    bond_dim = model.bond_embedding.out_features
    angle_dim = model.angle_embedding.out_features
    angle_parts = [bond_dim, bond_dim, angle_dim, atom_dim]  # BondConv and AngleUpdate: [b_i, b_j, t, a_c]
    atoms = _split_each(model.atom_conv_layers, AtomConv, "twoBody_atom", [atom_dim, bond_dim, atom_dim])
    bonds = _split_each(model.bond_conv_layers, BondConv, "twoBody_bond", angle_parts)
    angles = _split_each(model.angle_layers, AngleUpdate, "twoBody_bond", angle_parts)
    if atoms is None or bonds is None or angles is None or None in atoms:
        return None
    if len(atoms) != model.n_conv or len(bonds) != model.n_conv - 1 or len(angles) != model.n_conv - 1:
        return None
    return atoms, bonds, angles


def _checked_layers(model: nn.Module) -> tuple[list[SplitGatedMLP | None], ...] | None:
    """:func:`_split_layers` of ``model`` when :func:`supports` holds, else None."""
    try:
        from chgnet.model import CHGNet
    except ImportError:
        return None
    from crystal_eval import chgnet_graph

    if chgnet_graph._chgnet_version() not in chgnet_graph.SUPPORTED_CHGNET:
        return None
    if not isinstance(model, CHGNet) or model.training:
        return None
    return _split_layers(model)


def supports(model: nn.Module) -> bool:
    """Whether :class:`SplitCHGNet` computes ``model``'s energy: the installed chgnet is one this module was checked
    against (``crystal_eval.chgnet_graph.SUPPORTED_CHGNET``), and ``model`` is a CHGNet in evaluation mode whose
    convolutions are chgnet's ``AtomConv``, ``BondConv`` and ``AngleUpdate`` with gated MLPs that start with a
    linear layer."""
    return _checked_layers(model) is not None


class SplitCHGNet:
    """CHGNet's energy (``CHGNet._compute``'s ``"e"``) with the first layers applied before the gathers.

    ``energy(batch)`` returns the energy per crystal (eV/atom for an intensive model, as ``_compute``) and the
    atoms per crystal; gradients flow to the batch's atom positions and strains as through ``_compute``. Raises
    ValueError for a model that :func:`supports` rejects (:meth:`of` returns None instead).
    """

    def __init__(self, model: nn.Module) -> None:
        layers = _checked_layers(model)
        if layers is None:
            raise ValueError("SplitCHGNet needs a CHGNet in evaluation mode with chgnet 0.4's convolution layers")
        self.model = model
        atoms, self.bond_mlps, self.angle_mlps = layers
        self.atom_mlps: list[SplitGatedMLP] = [a for a in atoms if a is not None]

    @classmethod
    def of(cls, model: nn.Module) -> SplitCHGNet | None:
        """``SplitCHGNet(model)``, or None for a model that :func:`supports` rejects."""
        try:
            return cls(model)
        except ValueError:  # the only error __init__ raises: the model is not supported
            return None

    def _atom_conv(self, k: int, atom: Tensor, bond: Tensor, ctx: _Graph) -> Tensor:
        """``AtomConv.forward`` of layer ``k``: messages from ``[a_centre, b, a_neighbour]``."""
        layer = self.model.atom_conv_layers[k]
        messages = self.atom_mlps[k]([(atom, ctx.centre), (bond, ctx.d2u), (atom, ctx.neighbour)])
        new = _aggregate(messages * ctx.bond_weight_ag, ctx.centre, len(atom))
        return _residual(layer, new, atom, "atom_norm")

    @staticmethod
    def _angle_parts(atom: Tensor, bond: Tensor, angle: Tensor, ctx: _Graph) -> list[tuple[Tensor, Tensor | None]]:
        """The input of a ``BondConv`` or ``AngleUpdate`` gated MLP, ``[b_i, b_j, t, a_centre]`` per angle, the
        bonds taken from those that angles refer to."""
        used = torch.index_select(bond, 0, ctx.used_bonds)
        return [(used, ctx.bond_i), (used, ctx.bond_j), (angle, None), (atom, ctx.angle_centre)]

    def energy(self, g: Any) -> tuple[Tensor, Tensor]:
        """Energies of the crystals of the batch ``g`` (a :class:`GraphBatch` or chgnet's ``BatchedGraph``) and their
        atom counts."""
        m = self.model
        atoms_per_graph = torch.bincount(g.atom_owners)
        atom = m.atom_embedding(g.atomic_numbers - 1)
        bond = m.bond_embedding(g.bond_bases_ag)
        ctx = _Graph.of(g, m.bond_weights_ag(g.bond_bases_ag), m.bond_weights_bg(g.bond_bases_bg))
        angle = m.angle_embedding(g.angle_bases) if ctx.has_angles else None
        for k in range(m.n_conv - 1):
            atom = self._atom_conv(k, atom, bond, ctx)
            bond_mlp = self.bond_mlps[k]
            if angle is None or bond_mlp is None:
                continue
            update = bond_mlp(self._angle_parts(atom, bond, angle, ctx)) * ctx.bond_weight_bg
            bond = _residual(m.bond_conv_layers[k], _aggregate(update, ctx.bond_owner, len(bond)), bond, "bond_norm")
            angle_mlp = self.angle_mlps[k]
            if angle_mlp is not None:
                layer = m.angle_layers[k]
                new = angle_mlp(self._angle_parts(atom, bond, angle, ctx))
                if layer.resnet:
                    new = new + angle
                angle = new if layer.angle_norm is None else layer.angle_norm(new)
        atom = self._atom_conv(m.n_conv - 1, atom, bond, ctx)
        if m.readout_norm is not None:
            atom = m.readout_norm(atom)
        if m.mlp_first:
            energy = m.pooling(m.mlp(atom), g.atom_owners).view(-1)
        else:
            energy = m.mlp(m.pooling(atom, g.atom_owners)).view(-1) * atoms_per_graph
        if m.is_intensive:
            energy = energy / atoms_per_graph
        return energy, atoms_per_graph


@dataclass
class _Graph:
    """The index tensors and bond weights of a batched graph, shared by every layer."""

    centre: Tensor  # directed bond -> its centre atom
    neighbour: Tensor  # directed bond -> its neighbour atom
    d2u: Tensor  # directed bond -> undirected bond
    bond_weight_ag: Tensor  # per directed bond
    has_angles: bool
    used_bonds: Tensor  # the undirected bonds that angles refer to
    bond_i: Tensor  # angle -> its first bond, in used_bonds
    bond_j: Tensor  # angle -> its second bond, in used_bonds
    bond_owner: Tensor  # angle -> its first bond (the owner of its bond update), among all bonds
    angle_centre: Tensor  # angle -> its centre atom
    bond_weight_bg: Tensor  # per angle, the product of its two bonds' weights

    @classmethod
    def of(cls, g: Any, weight_ag: Tensor, weight_bg: Tensor) -> _Graph:
        ag = g.batched_atom_graph
        d2u = g.directed2undirected
        bg = g.batched_bond_graph
        has_angles = len(g.angle_bases) != 0 and bg.dim() == 2 and len(bg) > 0
        if has_angles:
            used, inverse = torch.unique(bg[:, 1:3], return_inverse=True)
            bond_i, bond_j = inverse[:, 0].contiguous(), inverse[:, 1].contiguous()
            owner, centre = bg[:, 1].contiguous(), bg[:, 0].contiguous()
            weight = torch.index_select(weight_bg, 0, owner) * torch.index_select(weight_bg, 0, bg[:, 2])
        else:
            used = bond_i = bond_j = owner = centre = weight = d2u.new_zeros(0)
        return cls(ag[:, 0].contiguous(), ag[:, 1].contiguous(), d2u, torch.index_select(weight_ag, 0, d2u),
                   has_angles, used, bond_i, bond_j, owner, centre, weight)  # fmt: skip


def _aggregate(rows: Tensor, owners: Tensor, n: int) -> Tensor:
    """``chgnet.model.functions.aggregate(rows, owners, average=False, num_owner=n)``: sums of rows per owner."""
    return rows.new_zeros((n, rows.shape[1])).index_add_(0, owners, rows)


def _residual(layer: nn.Module, new: Tensor, old: Tensor, norm: str) -> Tensor:
    """The end of ``AtomConv``/``BondConv.forward``: output MLP, residual connection, normalisation."""
    if layer.use_mlp_out:
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + old
    norm_layer: Callable[[Tensor], Tensor] | None = getattr(layer, norm)
    return new if norm_layer is None else norm_layer(new)


# ----------------------------------------------------------------------------- the batch of graphs


@dataclass
class GraphBatch:
    """What ``chgnet.model.model.BatchedGraph.from_graphs(..., compute_stress=True)`` makes of a list of crystal
    graphs, assembled with one tensor operation per step for the whole batch instead of one per crystal.

    ``positions`` (all atoms, Cartesian, A) and ``strains`` (one 3x3 per crystal) are what forces and stresses
    are taken against: ``-dE/d positions`` and ``(1/V) dE/d strains``. The other fields carry
    ``BatchedGraph``'s names and meaning, so :meth:`SplitCHGNet.energy` reads either.
    """

    atomic_numbers: Tensor
    atom_owners: Tensor
    atoms_per_crystal: list[int]
    positions: Tensor
    strains: Tensor
    volumes: Tensor
    bond_bases_ag: Tensor
    bond_bases_bg: Tensor
    angle_bases: Tensor
    batched_atom_graph: Tensor
    directed2undirected: Tensor
    batched_bond_graph: Tensor


def _offsets(counts: list[int]) -> list[int]:
    """The start of each block of a concatenation of blocks of ``counts`` rows."""
    out, total = [], 0
    for n in counts:
        out.append(total)
        total += n
    return out


def _owners(counts: list[int]) -> Tensor:
    """The block index of every row of a concatenation of blocks of ``counts`` rows."""
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))


def batch_graphs(model: nn.Module, graphs: list[Any]) -> GraphBatch:
    """The batch of CHGNet crystal graphs ``graphs`` with its bond and angle bases, differentiable in the atom
    positions and the strains, as ``BatchedGraph.from_graphs(graphs, ..., compute_stress=True)`` computes them
    (chgnet 0.4.2, ``chgnet.model.encoders.BondEncoder.forward``): the strained lattice ``L (1 + e)``, Cartesian
    positions ``f L (1 + e)``, bond vectors ``r_i - (r_j + n L (1 + e))`` with the neighbour's image ``n``, their
    lengths' radial bases (undirected bonds) and the angles' Fourier bases. The same numbers up to float32
    rounding (``tests/test_chgnet_forward.py``)."""
    n_atoms = [int(g.atomic_number.shape[0]) for g in graphs]
    atom_graphs = [g.atom_graph.reshape(-1, 2) for g in graphs]
    n_directed = [len(a) for a in atom_graphs]
    n_undirected = [len(g.undirected2directed) for g in graphs]
    atom_at, directed_at, undirected_at = _offsets(n_atoms), _offsets(n_directed), _offsets(n_undirected)
    atom_owner, edge_owner = _owners(n_atoms), _owners(n_directed)

    lattices = torch.stack([g.lattice for g in graphs])
    strains = lattices.new_zeros(lattices.shape).requires_grad_(True)
    strained = lattices @ (torch.eye(3, dtype=lattices.dtype) + strains)
    volumes = (strained[:, 0] * torch.linalg.cross(strained[:, 1], strained[:, 2])).sum(dim=1).detach()
    frac = torch.cat([g.atom_frac_coord for g in graphs])
    positions = torch.bmm(frac.unsqueeze(1), strained[atom_owner]).squeeze(1)

    atom_graph = torch.cat([a + off for a, off in zip(atom_graphs, atom_at, strict=True)])
    image = torch.cat([g.neighbor_image for g in graphs]).to(lattices.dtype)
    shift = torch.bmm(image.unsqueeze(1), strained[edge_owner]).squeeze(1)
    bond_vectors = positions[atom_graph[:, 0]] - (positions[atom_graph[:, 1]] + shift)
    lengths = torch.norm(bond_vectors, dim=1)
    bond_vectors = bond_vectors / lengths[:, None]
    u2d = torch.cat([g.undirected2directed + off for g, off in zip(graphs, directed_at, strict=True)])
    undirected_lengths = torch.index_select(lengths, 0, u2d)
    encoder = model.bond_basis_expansion
    bases_ag, bases_bg = encoder.rbf_expansion_ag(undirected_lengths), encoder.rbf_expansion_bg(undirected_lengths)

    n_angles = [len(g.bond_graph) for g in graphs]
    if sum(n_angles):
        bond_graph = torch.cat([g.bond_graph for g, n in zip(graphs, n_angles, strict=True) if n])
        angle_owner = _owners(n_angles)  # the crystal of every angle; crystals without angles own none

        def shift(offsets: list[int]) -> Tensor:  # each angle's crystal's offset, as bond_graph's integers
            return torch.tensor(offsets, dtype=bond_graph.dtype)[angle_owner]

        directed, undirected = shift(directed_at), shift(undirected_at)
        angle_bases = model.angle_basis_expansion(bond_vectors[bond_graph[:, 2] + directed],
                                                  bond_vectors[bond_graph[:, 4] + directed])  # fmt: skip
        batched_bond_graph = torch.stack([bond_graph[:, 0] + shift(atom_at), bond_graph[:, 1] + undirected,
                                          bond_graph[:, 3] + undirected], dim=1)  # fmt: skip
    else:
        angle_bases, batched_bond_graph = torch.tensor([]), torch.tensor([])
    return GraphBatch(
        atomic_numbers=torch.cat([g.atomic_number for g in graphs]),
        atom_owners=atom_owner.to(torch.int32),
        atoms_per_crystal=n_atoms,
        positions=positions,
        strains=strains,
        volumes=volumes,
        bond_bases_ag=bases_ag,
        bond_bases_bg=bases_bg,
        angle_bases=angle_bases,
        batched_atom_graph=atom_graph,
        directed2undirected=torch.cat([g.directed2undirected + off for g, off in zip(graphs, undirected_at,
                                                                                      strict=True)]),  # fmt: skip
        batched_bond_graph=batched_bond_graph,
    )
