"""Cut planes with exact boundary semantics (Grosse-Kunstleve, Wong, Mustyakimov & Adams 2011).

A cut is the half-space ``n . x + c >= 0`` with an integer inward normal ``n`` and a rational offset
``c``. A point with ``n . x + c > 0`` is inside, ``< 0`` outside; *on* the plane (``= 0``) the nested
cut expression decides when there is one, otherwise the ``inclusive`` flag does. Nested expressions
combine cuts with ``&`` and ``|`` and apply the same rule recursively, which is how a facet of an
asymmetric unit is split into an included and an excluded part.

Two evaluators share this one definition: :meth:`Cut.contains` is exact on
:class:`fractions.Fraction` coordinates; :meth:`Cut.contains_array` works on float arrays, treating
``|n . x + c| <= eps`` as *on the plane* (the tie rule then applies, so boundary points that are
symmetry images of each other are classified consistently). :class:`CompiledCuts` makes the same float
decisions for a whole conjunction of cuts in one vectorised pass; it is what
:meth:`asu_geometry.AsymmetricUnit.contains` uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Union

import numpy as np

from ._rational import fstr

Node = Union["Cut", "CutExpression"]


@dataclass(frozen=True)
class Cut:
    """Half-space ``normal . x + offset >= 0`` with a tie rule for points on its plane."""

    normal: tuple[int, int, int]
    offset: Fraction
    inclusive: bool = True
    nested: Node | None = None

    def value(self, x: Sequence[Fraction]) -> Fraction:
        """Exact ``n . x + c``."""
        n = self.normal
        return n[0] * x[0] + n[1] * x[1] + n[2] * x[2] + self.offset

    def contains(self, x: Sequence[Fraction]) -> bool:
        """Exact membership with the tie rule."""
        v = self.value(x)
        if v > 0:
            return True
        if v < 0:
            return False
        if self.nested is None:
            return self.inclusive
        return self.nested.contains(x)

    def contains_array(self, x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
        """Vectorised membership of float points ``x`` (shape (..., 3)); ``|value| <= eps`` is a tie."""
        v = x @ np.asarray(self.normal, dtype=float) + float(self.offset)
        out = v > eps
        on = np.abs(v) <= eps
        if np.any(on):
            if self.nested is None:
                tie = np.full(on.shape, self.inclusive)
            else:
                tie = self.nested.contains_array(x, eps)
            out = out | (on & tie)
        return out

    def iter_cuts(self) -> Iterator[Cut]:
        """This cut and every cut nested in it (depth first)."""
        yield self
        if self.nested is not None:
            yield from self.nested.iter_cuts()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: normal ``n``, offset ``c`` (exact, as a string), ``inclusive`` and any nested cut."""
        d: dict[str, Any] = {"n": list(self.normal), "c": fstr(self.offset), "inclusive": self.inclusive}
        if self.nested is not None:
            d["nested"] = self.nested.to_dict()
        return d

    def __str__(self) -> str:
        terms = []
        for coef, name in zip(self.normal, "xyz", strict=True):
            if coef:
                terms.append(f"{'+' if coef > 0 else '-'}{abs(coef) if abs(coef) != 1 else ''}{name}")
        lhs = "".join(terms).lstrip("+")
        s = f"{lhs} {'>=' if self.inclusive else '>'} {fstr(-self.offset)}"
        if self.nested is not None:
            s += f" [on plane: {self.nested}]"
        return s


@dataclass(frozen=True)
class CutExpression:
    """``lhs & rhs`` or ``lhs | rhs`` of nested cuts."""

    op: str
    lhs: Node
    rhs: Node

    def __post_init__(self) -> None:
        if self.op not in ("&", "|"):
            raise ValueError(f"cut expression operator must be '&' or '|', got {self.op!r}")

    def contains(self, x: Sequence[Fraction]) -> bool:
        """Exact membership of a rational point: both sides (``&``) or either side (``|``)."""
        if self.op == "&":
            return self.lhs.contains(x) and self.rhs.contains(x)
        return self.lhs.contains(x) or self.rhs.contains(x)

    def contains_array(self, x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
        """Membership of float points (..., 3) within ``eps``, as a boolean array."""
        a = self.lhs.contains_array(x, eps)
        b = self.rhs.contains_array(x, eps)
        return (a & b) if self.op == "&" else (a | b)

    def iter_cuts(self) -> Iterator[Cut]:
        """Every cut of both sides (depth first)."""
        yield from self.lhs.iter_cuts()
        yield from self.rhs.iter_cuts()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: operator ``op`` and both sides."""
        return {"op": self.op, "lhs": self.lhs.to_dict(), "rhs": self.rhs.to_dict()}

    def __str__(self) -> str:
        return f"({self.lhs}) {self.op} ({self.rhs})"


class CompiledCuts:
    """The float evaluator of a conjunction of cuts, compiled for speed on small batches.

    Top-level cuts without nesting become one matrix product and one comparison: with ``v = n . x + c``,
    an inclusive cut holds iff ``v >= -eps`` and an exclusive one iff ``v > eps`` (a tie resolved by the
    inclusion flag). The planes of nested cuts form a second matrix, and only their tie rules are walked
    node by node. Same decisions as ``all(c.contains_array(x, eps) for c in cuts)``.
    """

    def __init__(self, cuts: Sequence[Cut]) -> None:
        simple = [c for c in cuts if c.nested is None]
        self._simple_normals = np.array([c.normal for c in simple], dtype=float).reshape(-1, 3).T.copy()
        self._simple_offsets = np.array([float(c.offset) for c in simple], dtype=float)
        self._simple_inclusive = np.array([c.inclusive for c in simple], dtype=bool)
        index: dict[tuple[tuple[int, int, int], Fraction], int] = {}
        for top in cuts:
            if top.nested is not None:
                for c in top.iter_cuts():
                    index.setdefault((c.normal, c.offset), len(index))
        self._normals = np.array([k[0] for k in index], dtype=float).reshape(-1, 3).T.copy()  # (3, m)
        self._offsets = np.array([float(k[1]) for k in index], dtype=float)
        self._nested = [self._compile(c, index) for c in cuts if c.nested is not None]

    @classmethod
    def _compile(cls, node: Node, index: dict) -> tuple:
        if isinstance(node, CutExpression):
            return (node.op, cls._compile(node.lhs, index), cls._compile(node.rhs, index))
        nested = None if node.nested is None else cls._compile(node.nested, index)
        return ("cut", index[(node.normal, node.offset)], node.inclusive, nested)

    def _eval(self, node: tuple, gt: np.ndarray, on: np.ndarray) -> np.ndarray:
        if node[0] == "cut":
            _, k, inclusive, nested = node
            if nested is None:
                return gt[:, k] | on[:, k] if inclusive else gt[:, k]
            return gt[:, k] | (on[:, k] & self._eval(nested, gt, on))
        a, b = self._eval(node[1], gt, on), self._eval(node[2], gt, on)
        return (a & b) if node[0] == "&" else (a | b)

    def contains(self, x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
        """Membership of points ``x`` (shape (..., 3)); ``|n . x + c| <= eps`` counts as on the plane."""
        x = np.asarray(x, dtype=float)
        flat = x.reshape(-1, 3)
        # v >= -eps  <=>  v > nextafter(-eps, -inf) for floats, so both kinds are one strict comparison
        threshold = np.where(self._simple_inclusive, np.nextafter(-eps, -np.inf), eps)
        out = np.all(flat @ self._simple_normals + self._simple_offsets > threshold, axis=1)
        if self._nested:
            v = flat @ self._normals + self._offsets
            gt, on = v > eps, np.abs(v) <= eps
            for node in self._nested:
                out &= self._eval(node, gt, on)
        return out.reshape(x.shape[:-1])


def node_from_dict(d: dict[str, Any]) -> Node:
    """Inverse of ``to_dict`` for cuts and cut expressions."""
    if "op" in d:
        return CutExpression(d["op"], node_from_dict(d["lhs"]), node_from_dict(d["rhs"]))
    nested = node_from_dict(d["nested"]) if "nested" in d else None
    n = tuple(int(v) for v in d["n"])
    return Cut(n, Fraction(d["c"]), bool(d["inclusive"]), nested)  # type: ignore[arg-type]
