r"""The per-site categorical heads: Wyckoff position, element, shape (piece) and stop.

Given the context h of a state (:mod:`.gnn`), site i of the construction sequence is drawn as

* p(w_i | h): logits ``MLP(h || e_w)`` over the positions of G (masked, :mod:`.masks`);
* p(a_i | w_i, h): logits ``MLP(e_a || h || e_w)`` over the element vocabulary (masked);
* p(s_i | a_i, w_i, h): logits ``MLP(e_s || h || e_w || e_a)`` over the pieces of w_i inside the ASU (the
  anchored sections for site 0 of a polar group); e_s is a DeepSets embedding of the piece, ``rho(sum_v
  phi(Fourier(v)))`` over its vertices v (fractional coordinates). A position with a single piece has
  log-probability 0 (nothing is chosen);
* the coordinates, p(x_i | s_i, ...) (:class:`.coords.CoordinateFactor`, context ``h || e_w || e_a``);
* p(stop | h) after each site: a Bernoulli, written as two logits (stop, continue), masked by
  :func:`.masks.stop_mask`.

Each ``MLP(x || y || ...)`` is a two-layer MLP whose first linear layer is applied to the parts separately
(mathematically the same map; it avoids materialising the concatenation for every candidate).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .gnn import ElementEmbedding, WyckoffEmbedding, _UsesSharedEmbeddings, fourier_features
from .shapes import shape_table

NEG_INF = float("-inf")


class _SplitMLP(nn.Module):
    """``Linear(silu(sum_k W_k x_k + b))`` to one output per row: an MLP on a concatenation, split by parts."""

    def __init__(self, parts: int, dim: int, hidden: int, out: int = 1) -> None:
        super().__init__()
        self.parts = nn.ModuleList([nn.Linear(dim, hidden, bias=k == 0) for k in range(parts)])
        self.out = nn.Linear(hidden, out)

    def forward(self, *xs: Tensor) -> Tensor:
        z = self.parts[0](xs[0])
        for lin, x in zip(self.parts[1:], xs[1:], strict=True):
            z = z + lin(x)
        return self.out(torch.nn.functional.silu(z))


class ShapeEmbedding(nn.Module):
    """e_s = rho(sum_v phi(Fourier(v))) over the vertices v of a piece (DeepSets, permutation invariant)."""

    def __init__(self, dim: int, frequencies: int) -> None:
        super().__init__()
        t = shape_table()
        self.register_buffer("vertices", t.vertices.to(torch.float32), persistent=False)
        self.register_buffer("vertex_mask", t.vertex_mask, persistent=False)
        self.frequencies = frequencies
        self.phi = nn.Sequential(nn.Linear(6 * frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.rho = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, piece: Tensor) -> Tensor:
        """Embeddings (..., dim) of piece ids (...): the masked sum of the vertices' features, then rho."""
        v = self.vertices[piece]  # (..., V, 3)
        m = self.vertex_mask[piece].unsqueeze(-1).to(v.dtype)
        return self.rho((self.phi(fourier_features(v, self.frequencies)) * m).sum(-2))


class AtomHeads(_UsesSharedEmbeddings):
    """Wyckoff, element, shape and stop logits (unmasked; the model applies :mod:`.masks`)."""

    def __init__(
        self,
        element_embedding: ElementEmbedding,
        wyckoff_embedding: WyckoffEmbedding,
        hidden: int,
        shape_frequencies: int = 4,
    ) -> None:
        super().__init__()
        self._shared = (element_embedding, wyckoff_embedding)  # owned by the model; not registered here
        self.wyckoff = _SplitMLP(2, hidden, hidden)
        self.element = _SplitMLP(3, hidden, hidden)
        self.shape_embedding = ShapeEmbedding(hidden, shape_frequencies)
        self.shape = _SplitMLP(4, hidden, hidden)
        self.stop = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))
        t = shape_table()
        self.register_buffer("piece_offset", t.piece_offset, persistent=False)
        self.register_buffer("piece_count", t.piece_count, persistent=False)
        self.max_pieces = t.max_pieces

    def wyckoff_logits(self, h: Tensor, positions: Tensor, valid: Tensor | None = None) -> Tensor:
        """(S, W) logits for the candidate global positions (S, W); only the ``valid`` entries are computed
        (the others are -inf)."""
        e_w = self.wyckoff_embedding.all()
        if valid is None:
            return self.wyckoff(h.unsqueeze(1), e_w[positions]).squeeze(-1)
        rows, cols = valid.nonzero(as_tuple=True)
        out = torch.full(positions.shape, NEG_INF, dtype=h.dtype, device=h.device)
        out[rows, cols] = self.wyckoff(h[rows], e_w[positions[rows, cols]]).squeeze(-1)
        return out

    def element_logits(self, h: Tensor, e_w: Tensor, elements: Tensor | None = None) -> Tensor:
        """Element logits given the chosen position's embedding e_w (S, H): over the vocabulary (S, V), or over
        the candidate vocabulary indices ``elements`` (S, K) (entries < 0 are padding; their logits are
        meaningless and must be masked by the caller)."""
        e_a = self.element_embedding.all()  # (V, H)
        if elements is not None:
            e_a = e_a[elements.clamp(min=0)]  # (S, K, H)
        else:
            e_a = e_a.unsqueeze(0)
        return self.element(e_a, h.unsqueeze(1), e_w.unsqueeze(1)).squeeze(-1)

    def pieces(self, wyckoff: Tensor, anchored: Tensor) -> tuple[Tensor, Tensor]:
        """(S, P) candidate piece ids and validity for positions (S,) (anchored sections where ``anchored``)."""
        a = anchored.long()
        off = self.piece_offset[wyckoff, a]
        cnt = self.piece_count[wyckoff, a]
        ar = torch.arange(self.max_pieces, device=wyckoff.device)
        valid = ar < cnt.unsqueeze(-1)
        return torch.where(valid, off.unsqueeze(-1) + ar, off.unsqueeze(-1)), valid

    def shape_logits(self, h: Tensor, e_w: Tensor, e_a: Tensor, pieces: Tensor, valid: Tensor) -> Tensor:
        """(S, P) logits over candidate pieces (S, P) with validity ``valid``; rows with a single piece (no
        choice) and invalid entries are not computed (0 and -inf)."""
        out = torch.where(valid, torch.zeros((), dtype=h.dtype, device=h.device), NEG_INF).expand(pieces.shape).clone()
        choose = valid.sum(-1) > 1
        rows = choose.nonzero().squeeze(-1)
        if rows.numel():
            uniq, inv = torch.unique(pieces[rows], return_inverse=True)
            e_s = self.shape_embedding(uniq)[inv]  # (R, P, H)
            lg = self.shape(e_s, h[rows].unsqueeze(1), e_w[rows].unsqueeze(1), e_a[rows].unsqueeze(1)).squeeze(-1)
            out[rows] = lg.masked_fill(~valid[rows], NEG_INF)
        return out

    def stop_logits(self, h: Tensor) -> Tensor:
        """(S, 2) logits of (stop, continue)."""
        return self.stop(h)


def masked_log_softmax(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """log-probabilities over the allowed entries (-inf elsewhere) and the z-loss term ``logsumexp^2`` (0 where
    fewer than two entries are allowed: nothing is chosen there)."""
    masked = logits.masked_fill(~mask, NEG_INF)
    lse = torch.logsumexp(masked, -1, keepdim=True)
    logp = torch.where(
        mask, masked - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse)), torch.full_like(masked, NEG_INF)
    )
    choice = mask.sum(-1) > 1
    zsq = torch.where(choice & torch.isfinite(lse.squeeze(-1)), lse.squeeze(-1) ** 2, torch.zeros_like(lse.squeeze(-1)))
    return logp, zsq
