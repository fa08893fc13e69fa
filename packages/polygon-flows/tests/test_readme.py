"""The README's usage examples are doctests."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_doctests() -> None:
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0


def test_readme_shows_the_heatmap() -> None:
    text = README.read_text()
    assert "docs/hexagon_dirichlet_mixture.png" in text
    assert (README.parent / "docs" / "hexagon_dirichlet_mixture.png").stat().st_size > 10_000


def test_module_docstring_examples() -> None:
    import polygon_flows

    for name in [
        "geometry",
        "transforms",
        "reference",
        "polygon",
        "segment",
        "torus",
        "folded",
        "capped",
        "quadrature",
    ]:
        module = getattr(polygon_flows, name, None) or __import__(f"polygon_flows.{name}", fromlist=[name])
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
