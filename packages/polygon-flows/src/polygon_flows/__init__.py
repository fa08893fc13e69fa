r"""Exact, normalised, differentiable densities on segments, convex polygons and folded domains.

Every density is a :class:`torch.distributions.Distribution` and every map a
:class:`torch.distributions.transforms.Transform`; the package has no global side effects and
knows nothing of crystals.
"""

from .capped import (
    BETA_CONCENTRATION_MAX,
    DIRICHLET_CONCENTRATION_MAX,
    VON_MISES_CONCENTRATION_MAX,
    capped_beta_concentration,
    capped_dirichlet_concentration,
    capped_positive,
    capped_von_mises_concentration,
)
from .folded import FoldedDistribution
from .geometry import (
    mean_value_coordinates,
    mean_value_coordinates_and_jacobian,
    polygon_area,
    validate_convex_polygon,
)
from .polygon import PolygonDirichletMixture
from .quadrature import box_quadrature, polygon_cells, polygon_quadrature, segment_quadrature
from .reference import REFERENCE_TRIANGLE, check_injective, fit_reference_polygon, reference_distortion
from .sampling import sample_beta, sample_categorical, sample_dirichlet, sample_von_mises
from .segment import SegmentBetaMixture
from .torus import TorusVonMisesMixture
from .transforms import SimplexToPolygon

__version__ = "0.2.0"

__all__ = [
    "BETA_CONCENTRATION_MAX",
    "DIRICHLET_CONCENTRATION_MAX",
    "REFERENCE_TRIANGLE",
    "VON_MISES_CONCENTRATION_MAX",
    "FoldedDistribution",
    "PolygonDirichletMixture",
    "SegmentBetaMixture",
    "SimplexToPolygon",
    "TorusVonMisesMixture",
    "box_quadrature",
    "capped_beta_concentration",
    "capped_dirichlet_concentration",
    "capped_positive",
    "capped_von_mises_concentration",
    "check_injective",
    "fit_reference_polygon",
    "mean_value_coordinates",
    "mean_value_coordinates_and_jacobian",
    "polygon_area",
    "polygon_cells",
    "polygon_quadrature",
    "reference_distortion",
    "sample_beta",
    "sample_categorical",
    "sample_dirichlet",
    "sample_von_mises",
    "segment_quadrature",
    "validate_convex_polygon",
]
