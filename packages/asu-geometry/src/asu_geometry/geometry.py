"""Exact convex geometry on rationals: polytope faces and volume, convex polygons in a 2-D chart.

Used both by the table generator and by the tests (e.g. the exact identity vol(ASU) * |G/T| = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from ._rational import Vec3, cross, dot, sub

Point2 = tuple[Fraction, Fraction]


def order_polygon_2d(points: Sequence[Point2]) -> list[Point2]:
    """Order the vertices of a convex polygon counterclockwise (in the chart's own coordinates).

    The angular sort uses floats only to *order* exact points, which is safe for a convex polygon
    whose vertices are distinct; the result's orientation is then checked exactly.
    """
    cu = sum(p[0] for p in points) / len(points)
    cw = sum(p[1] for p in points) / len(points)
    out = sorted(points, key=lambda p: math.atan2(float(p[1] - cw), float(p[0] - cu)))
    if signed_area_2d(out) < 0:
        out.reverse()
    return out


def signed_area_2d(poly: Sequence[Point2]) -> Fraction:
    """Shoelace formula, exact."""
    s = Fraction(0)
    k = len(poly)
    for i in range(k):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % k]
        s += x0 * y1 - x1 * y0
    return s / 2


def clip_polygon_2d(poly: Sequence[Point2], a: Fraction, b: Fraction, c: Fraction) -> list[Point2]:
    """Sutherland-Hodgman clip of a convex polygon by the closed half-plane ``a u + b w + c >= 0``."""
    out: list[Point2] = []
    k = len(poly)
    for i in range(k):
        p, q = poly[i], poly[(i + 1) % k]
        vp = a * p[0] + b * p[1] + c
        vq = a * q[0] + b * q[1] + c
        if vp >= 0:
            out.append(p)
        if (vp > 0 > vq) or (vp < 0 < vq):
            t = vp / (vp - vq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    dedup: list[Point2] = []
    for p in out:
        if not dedup or dedup[-1] != p:
            dedup.append(p)
    if len(dedup) > 1 and dedup[0] == dedup[-1]:
        dedup.pop()
    return dedup


def polytope_faces(vertices: Sequence[Vec3], planes: Sequence[tuple[Sequence[int], Fraction]]) -> list[list[Vec3]]:
    """The facets of a convex polytope: for each plane ``n.x + c = 0``, its vertices in cyclic order.

    Planes that touch the polytope in fewer than 3 vertices (or duplicate another facet) are skipped.
    """
    faces: list[list[Vec3]] = []
    seen: set[frozenset[Vec3]] = set()
    for n, c in planes:
        on = [v for v in vertices if dot(v, n) + c == 0]
        key = frozenset(on)
        if len(on) < 3 or key in seen:
            continue
        seen.add(key)
        faces.append(_order_face(on, n))
    return faces


def _order_face(points: Sequence[Vec3], normal: Sequence[int]) -> list[Vec3]:
    """Order coplanar points of a convex face around their centroid (exact orientation check)."""
    k = len(points)
    centre = tuple(sum(p[i] for p in points) / k for i in range(3))
    e1 = sub(points[0], centre)
    nrm = tuple(Fraction(x) for x in normal)
    e2 = cross(nrm, e1)
    def angle(p: Vec3) -> float:
        d = sub(p, centre)
        return math.atan2(float(dot(d, e2)), float(dot(d, e1)))
    return sorted(points, key=angle)


def polytope_volume(vertices: Sequence[Vec3], planes: Sequence[tuple[Sequence[int], Fraction]]) -> Fraction:
    """Exact volume of a convex polytope by a fan of tetrahedra from the vertex centroid."""
    k = len(vertices)
    centre = tuple(sum(v[i] for v in vertices) / k for i in range(3))
    vol = Fraction(0)
    for face in polytope_faces(vertices, planes):
        a = face[0]
        for j in range(1, len(face) - 1):
            b, c = face[j], face[j + 1]
            vol += abs(dot(sub(a, centre), cross(sub(b, centre), sub(c, centre)))) / 6
    return vol
