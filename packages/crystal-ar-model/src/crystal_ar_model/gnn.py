r"""The context network h = GNN(G, C, L, sites so far), with PyTorch Geometric.

For a state (a partial crystal, :mod:`.prefix`):

* node init ``u_i = MLP(e_w || e_a || Fourier(x_i))``: e_w from asu-geometry's 231 Wyckoff features (standardised,
  plus a learned per-position embedding initialised at 0), e_a a learned element embedding initialised from
  CGCNN-style features, ``Fourier(x) = (sin 2 pi k x_j, cos 2 pi k x_j)``, k = 1..K, j = 1..3 of the fractional
  coordinates of the ASU site; the empty crystal is a learnable seed node;
* edges: every minimum image in the primitive cell (:func:`.periodic.minimum_image_edges`, ties kept),
  ``e_ij = (1 / m_ij) MLP(r_hat_ij || RBF(d_ij))`` with r_hat in the Cartesian frame fixed by the conventional
  lattice parameters and ``m_ij`` the number of tied minimum images of that pair (so that tied copies together
  weigh as one neighbour);
* L interaction blocks (:class:`InteractionBlock`): ``f_ij = MLP(e_ij || u_i || u_j)``,
  ``u_i <- u_i + a * MLP(GraphNorm((1 / sqrt |N_i|) sum_j u_j * f_ij))`` with a learnable ``a`` initialised at 0
  (each block starts as the identity) and |N_i| the number of neighbour images (sum of 1 / m_ij);
* jumping knowledge: the concatenation ``[u^0, ..., u^L]``;
* variance-preserving attention pooling weighted by multiplicities: per state, ``alpha_i = m_i exp(s_i) /
  sum_j m_j exp(s_j)`` (m_i the site's multiplicity, s_i a learned score), ``g = sum_i alpha_i v_i /
  sqrt(sum_i alpha_i^2)`` (unit variance for independent unit-variance v_i, whatever the number of sites);
* ``h = MLP(g || e_G || e_C || e_rho || e_L)`` (:class:`ContextHead`), with e_rho the *construction state*:
  atoms used and left of the budget, sites placed, the number density of the partial crystal (atoms per
  cubic Angstrom of the primitive cell), the elements of C still missing, and the last site's element and
  Wyckoff position (the order rules condition on them).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.nn import GraphNorm, MessagePassing
from torch_geometric.utils import scatter, softmax

from .factors import mlp
from .features import NUM_SPACE_GROUPS


def fourier_features(x: Tensor, frequencies: int) -> Tensor:
    """(..., 3) fractional coordinates -> (..., 6K): sin and cos of 2 pi k x_j, k = 1..K (period 1)."""
    k = torch.arange(1, frequencies + 1, device=x.device, dtype=x.dtype)
    ang = 2 * math.pi * x.unsqueeze(-1) * k  # (..., 3, K)
    return torch.cat([ang.sin(), ang.cos()], -1).flatten(-2)


class GaussianRBF(nn.Module):
    """``n`` Gaussians with centres evenly spaced on [0, cutoff] and width equal to the spacing."""

    def __init__(self, n: int, cutoff: float) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, cutoff, n), persistent=False)
        self.width = cutoff / max(n - 1, 1)

    def forward(self, d: Tensor) -> Tensor:
        r"""Expansion (..., n) of distances ``d`` (...): :math:`\exp(-((d - \mu_k) / w)^2)` for each centre
        :math:`\mu_k`."""
        return torch.exp(-(((d.unsqueeze(-1) - self.centres) / self.width) ** 2))


class WyckoffEmbedding(nn.Module):
    """e_w: a linear map of the standardised 231 asu-geometry features plus a learned per-position vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        import asu_geometry as ag

        f = torch.as_tensor(np.asarray(ag.wyckoff_feature_matrix(), dtype=np.float32))
        std = f.std(0)
        f = (f - f.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
        self.register_buffer("features", f, persistent=False)
        self.proj = nn.Linear(f.shape[1], dim)
        self.emb = nn.Embedding(f.shape[0], dim)
        nn.init.zeros_(self.emb.weight)

    def forward(self, index: Tensor) -> Tensor:
        """Embeddings (..., dim) of Wyckoff position ids (...): projected features plus the learned vector."""
        return self.proj(self.features[index]) + self.emb(index)

    def all(self) -> Tensor:
        """(1731, dim) embeddings of every position (cheaper than :meth:`forward` on many repeated indices)."""
        return self.proj(self.features) + self.emb.weight


class ElementEmbedding(nn.Module):
    """e_a: learned element vectors initialised from CGCNN-style features, projected to ``dim``."""

    def __init__(self, element_features: np.ndarray, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(torch.tensor(element_features, dtype=torch.float32), freeze=False)
        self.proj = nn.Linear(element_features.shape[1], dim)

    def forward(self, index: Tensor) -> Tensor:
        """Embeddings (..., dim) of vocabulary indices (...): the projected element features."""
        return self.proj(self.table(index))

    def all(self) -> Tensor:
        """(V, dim) embeddings of the whole vocabulary."""
        return self.proj(self.table.weight)


class InteractionBlock(MessagePassing):
    """One residual update ``u <- u + a * MLP(GraphNorm((1/sqrt|N_i|) sum_j u_j * f_ij))`` (module docstring).

    ``f_ij = MLP(e_ij || u_i || u_j)``: its first linear layer is applied to e, u_i and u_j separately (the same
    map, computed once per edge feature and once per node instead of once per edge).
    """

    def __init__(self, hidden: int, filters: int, edge_dim: int) -> None:
        super().__init__(aggr="add")
        self.edge_in = nn.Linear(edge_dim, filters)
        self.recv_in = nn.Linear(hidden, filters, bias=False)
        self.send_in = nn.Linear(hidden, filters, bias=False)
        self.filter_out = nn.Linear(filters, hidden)
        self.norm = GraphNorm(hidden)
        self.update_mlp = mlp(hidden, hidden, hidden, 2)
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(
        self,
        u: Tensor,
        edge_index: Tensor,
        edge_in: Tensor,
        inv_sqrt_deg: Tensor,
        node_state: Tensor,
        num_states: int,
    ) -> Tensor:
        """One update of the node states ``u``; ``edge_in`` = ``self.edge_in(e)`` per edge of ``edge_index``."""
        m = self.propagate(
            edge_index, x=u, e=edge_in, r=self.recv_in(u), s=self.send_in(u), size=(u.shape[0], u.shape[0])
        )
        return self.residual_update(u, m, inv_sqrt_deg, node_state, num_states)

    def residual_update(
        self, u: Tensor, m: Tensor, inv_sqrt_deg: Tensor, node_state: Tensor, num_states: int
    ) -> Tensor:
        """The residual update from the summed messages ``m`` of every node."""
        m = m * inv_sqrt_deg.unsqueeze(-1)
        return u + self.scale * self.update_mlp(self.norm(m, node_state, num_states))

    def message(self, x_j: Tensor, e: Tensor, r_i: Tensor, s_j: Tensor) -> Tensor:  # type: ignore[override]
        """Message of each edge: the sender's state ``x_j`` times a filter of the edge's input ``e`` (from its direction
        and distance) and the receiver's and sender's inputs ``r_i``, ``s_j``."""
        return x_j * self.filter_out(torch.nn.functional.silu(e + r_i + s_j))

    def edge_messages(self, x: Tensor, edge_in: Tensor, sender: Tensor, receiver: Tensor) -> Tensor:
        """The message of every edge (sender -> receiver indices into ``x``), as :meth:`message` computes it."""
        return self.message(x[sender], edge_in, self.recv_in(x)[receiver], self.send_in(x)[sender])


class AttentionPool(nn.Module):
    """Variance-preserving attention pooling over each state's sites, weighted by multiplicities."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.score = nn.Linear(d_in, 1)
        self.value = nn.Linear(d_in, d_out)

    def forward(self, x: Tensor, weight: Tensor, index: Tensor, num_states: int) -> Tensor:
        """Pooled states (num_states, d_out): softmax attention over the rows of ``x`` grouped by ``index``, with log
        ``weight`` added to the scores, normalised by the square root of the summed squared attention weights (variance
        preserving)."""
        alpha = softmax(self.score(x).squeeze(-1) + torch.log(weight), index, num_nodes=num_states)
        pooled = scatter(alpha.unsqueeze(-1) * self.value(x), index, 0, dim_size=num_states, reduce="sum")
        norm = scatter(alpha**2, index, 0, dim_size=num_states, reduce="sum").clamp(min=1e-12).sqrt()
        return pooled / norm.unsqueeze(-1)


class _UsesSharedEmbeddings(nn.Module):
    """A module that calls the model's element and Wyckoff embeddings without registering (owning) them."""

    _shared: tuple[ElementEmbedding, WyckoffEmbedding]

    @property
    def element_embedding(self) -> ElementEmbedding:
        return self._shared[0]

    @property
    def wyckoff_embedding(self) -> WyckoffEmbedding:
        return self._shared[1]


class CrystalGNN(_UsesSharedEmbeddings):
    """Node init, edge embedding, interaction blocks, jumping knowledge and pooling -> g per state."""

    def __init__(
        self,
        element_embedding: ElementEmbedding,
        wyckoff_embedding: WyckoffEmbedding,
        hidden: int,
        filters: int,
        layers: int,
        rbf: int,
        cutoff: float,
        fourier: int,
    ) -> None:
        super().__init__()
        self._shared = (element_embedding, wyckoff_embedding)  # owned by the model; not registered here
        self.fourier = fourier
        self.node_init = mlp(2 * hidden + 6 * fourier, hidden, hidden, 2)
        self.seed = nn.Parameter(torch.randn(hidden) * 0.1)
        self.rbf = GaussianRBF(rbf, cutoff)
        self.edge_mlp = mlp(3 + rbf, filters, filters, 2)
        self.blocks = nn.ModuleList([InteractionBlock(hidden, filters, filters) for _ in range(layers)])
        self.pool = AttentionPool((layers + 1) * hidden, hidden)
        self.first_layer_by_prefix_sums = True  # same result, fewer edge evaluations (tested against False)

    def forward(
        self,
        graph: object,
        site_wyckoff: Tensor,
        site_element: Tensor,
        site_frac: Tensor,
        site_mult: Tensor,
        edges: object,
    ) -> Tensor:
        """g (S, hidden) for a :class:`.prefix.PrefixGraph` over sites with the given attributes (site tensors
        are indexed by ``graph.node_atom``) and the crystals' :class:`.periodic.CrystalEdges` (indexed by
        ``graph.edge_ref``)."""
        edge_vector, edge_ties = edges.vector, edges.ties  # type: ignore[attr-defined]
        na = graph.node_atom  # type: ignore[attr-defined]
        seed = na < 0
        atom = na.clamp(min=0)
        dtype = self.seed.dtype
        init_atoms = None
        if site_wyckoff.numel():
            init_atoms = self.node_init(
                torch.cat(
                    [
                        self.wyckoff_embedding(site_wyckoff),
                        self.element_embedding(site_element),
                        fourier_features(site_frac.to(dtype), self.fourier),
                    ],
                    -1,
                )
            )
            init = init_atoms[atom]
            u = torch.where(seed.unsqueeze(-1), self.seed.expand_as(init), init)
            weight = torch.where(seed, torch.ones_like(site_mult[atom]), site_mult[atom]).to(dtype)
        else:
            u = self.seed.expand(na.shape[0], -1)
            weight = torch.ones(na.shape[0], dtype=dtype, device=na.device)
        # edge features: once per distinct crystal edge, then gathered for every state that contains it
        d = edge_vector.norm(dim=-1, keepdim=True)
        feat = torch.cat([(edge_vector / d.clamp(min=1e-9)).to(dtype), self.rbf(d.squeeze(-1).to(dtype))], -1)
        e = self.edge_mlp(feat) / edge_ties.to(dtype).unsqueeze(-1)
        ref = graph.edge_ref  # type: ignore[attr-defined]
        ei = graph.edge_index  # type: ignore[attr-defined]
        deg = scatter((1.0 / edge_ties.to(dtype))[ref], ei[1], 0, dim_size=na.shape[0], reduce="sum")
        inv_sqrt_deg = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros_like(deg))
        ns = graph.node_state  # type: ignore[attr-defined]
        s = graph.num_states  # type: ignore[attr-defined]
        jk = [u]
        for i, block in enumerate(self.blocks):
            edge_in = block.edge_in(e)  # per distinct edge
            if i == 0 and self.first_layer_by_prefix_sums and site_wyckoff.numel():
                m = self._first_layer_messages(block, init_atoms, edge_in, graph, edges)
                u = block.residual_update(u, m, inv_sqrt_deg, ns, s)
            else:
                u = block(u, ei, edge_in[ref], inv_sqrt_deg, ns, s)
            jk.append(u)
        return self.pool(torch.cat(jk, -1), weight, ns, s)

    @staticmethod
    def _first_layer_messages(
        block: InteractionBlock, init_atoms: Tensor, edge_in: Tensor, graph: object, edges: object
    ) -> Tensor:
        """Summed first-layer messages of every node, from one message per *distinct* edge.

        Before the first update every node of a site has the same state in all prefixes (its initial
        embedding), so an edge's first-layer message is the same in every prefix that contains it: it is
        computed once per distinct edge and only gathered and summed per prefix (no MLP per prefix edge).
        """
        recv, send = edges.receiver, edges.sender  # type: ignore[attr-defined]
        msg = block.edge_messages(init_atoms, edge_in, send, recv)  # (E_u, H)
        ei = graph.edge_index  # type: ignore[attr-defined]
        n = graph.node_atom.shape[0]  # type: ignore[attr-defined]
        return scatter(msg[graph.edge_ref], ei[1], 0, dim_size=n, reduce="sum")  # type: ignore[attr-defined]


class ContextHead(_UsesSharedEmbeddings):
    """``h = MLP(g || e_G || e_C || e_rho || e_L)`` (module docstring; e_rho: the construction state)."""

    def __init__(
        self,
        element_embedding: ElementEmbedding,
        wyckoff_embedding: WyckoffEmbedding,
        sg_features: np.ndarray,
        hidden: int,
    ) -> None:
        super().__init__()
        self._shared = (element_embedding, wyckoff_embedding)  # owned by the model; not registered here
        sg = torch.as_tensor(sg_features, dtype=torch.float32)
        std = sg.std(0)
        self.register_buffer(
            "sg_features", (sg - sg.mean(0)) / torch.where(std > 0, std, torch.ones_like(std)), persistent=False
        )
        self.sg_proj = nn.Linear(sg.shape[1], hidden)
        self.sg_emb = nn.Embedding(NUM_SPACE_GROUPS, hidden)
        self.comp_proj = nn.Linear(hidden, hidden)
        self.missing_proj = nn.Linear(hidden, hidden)
        self.rho_scalars = nn.Linear(6, hidden)
        self.no_last = nn.Parameter(torch.zeros(hidden))
        self.lattice_proj = nn.Linear(10, hidden)
        self.out = mlp(5 * hidden, hidden, hidden, 2)

    def forward(
        self,
        g: Tensor,
        space_group: Tensor,
        comp: Tensor,
        missing: Tensor,
        count: Tensor,
        budget: Tensor,
        sites: Tensor,
        last_wyckoff: Tensor,
        last_element: Tensor,
        lattice: Tensor,
        primitive_volume: Tensor,
    ) -> Tensor:
        """All per state: ``comp``/``missing`` (S, V) bool, ``count``/``budget``/``sites`` (S,) long, ``last_*``
        (S,) long (-1 before the first site), ``lattice`` (S, 6), ``primitive_volume`` (S,) cubic Angstrom."""
        dt = g.dtype
        elems = self.element_embedding.all()  # (V, H)
        c = comp.to(dt)
        n_c = c.sum(-1, keepdim=True).clamp(min=1)
        e_g = self.sg_proj(self.sg_features[space_group - 1]) + self.sg_emb(space_group - 1)
        e_c = self.comp_proj(c @ elems / n_c)
        mi = missing.to(dt)
        b = budget.to(dt).unsqueeze(-1)
        scal = torch.cat(
            [
                count.to(dt).unsqueeze(-1) / b,
                (budget - count).to(dt).unsqueeze(-1) / b,
                sites.to(dt).unsqueeze(-1) / b,
                mi.sum(-1, keepdim=True) / n_c,
                n_c / 10,
                10 * count.to(dt).unsqueeze(-1) / primitive_volume.to(dt).unsqueeze(-1),
            ],
            -1,
        )
        has_last = (last_wyckoff >= 0).unsqueeze(-1)
        last = self.element_embedding(last_element.clamp(min=0)) + self.wyckoff_embedding(last_wyckoff.clamp(min=0))
        e_rho = self.missing_proj(mi @ elems) + self.rho_scalars(scal) + torch.where(has_last, last, self.no_last)
        lat = lattice.to(dt)
        ang = torch.deg2rad(lat[:, 3:])
        e_l = self.lattice_proj(
            torch.cat(
                [
                    lat[:, :3] / 10,
                    torch.log(lat[:, :3]),
                    ang.cos(),
                    (primitive_volume.to(dt) ** (1 / 3) / 10).unsqueeze(-1),
                ],
                -1,
            )
        )
        return self.out(torch.nn.functional.silu(torch.cat([g, e_g, e_c, e_rho, e_l], -1)))
