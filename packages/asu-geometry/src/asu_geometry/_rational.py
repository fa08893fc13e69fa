"""Exact rationals as JSON strings ("1/4", "-3", "0") and small Fraction helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

Vec3 = tuple[Fraction, Fraction, Fraction]


def frac(value: object) -> Fraction:
    """Parse ``value`` (str, int, Fraction) exactly; floats are rejected to keep exactness explicit."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not rationals")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str):
        return Fraction(value)
    raise TypeError(f"expected an exact rational (str/int/Fraction), got {type(value).__name__}")


def fstr(value: Fraction | int) -> str:
    """Format a rational as ``"p/q"`` (or ``"p"`` when integral)."""
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def vec(values: Iterable[object]) -> Vec3:
    out = tuple(frac(v) for v in values)
    if len(out) != 3:
        raise ValueError(f"expected 3 coordinates, got {len(out)}")
    return out  # type: ignore[return-value]


def vstr(v: Sequence[Fraction | int]) -> list[str]:
    return [fstr(x) for x in v]


def float_to_frac(x: float, max_denominator: int = 48) -> Fraction:
    """Exact rational for a float that is known to be a small-denominator rational (pyxtal/spglib ops)."""
    f = Fraction(x).limit_denominator(max_denominator)
    if abs(float(f) - x) > 1e-9:
        raise ValueError(f"{x!r} is not a rational with denominator <= {max_denominator}")
    return f


def dot(a: Sequence[Fraction], b: Sequence[Fraction | int]) -> Fraction:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def add(a: Sequence[Fraction], b: Sequence[Fraction]) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def sub(a: Sequence[Fraction], b: Sequence[Fraction]) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def scale(s: Fraction, a: Sequence[Fraction]) -> Vec3:
    return (s * a[0], s * a[1], s * a[2])


def cross(a: Sequence[Fraction], b: Sequence[Fraction]) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def matvec(m: Sequence[Sequence[int | Fraction]], v: Sequence[Fraction]) -> Vec3:
    return tuple(Fraction(m[i][0]) * v[0] + m[i][1] * v[1] + m[i][2] * v[2] for i in range(3))  # type: ignore[return-value]
