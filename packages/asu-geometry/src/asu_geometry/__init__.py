"""Exact asymmetric units and Wyckoff shapes of the 230 space groups, and a crystal <-> ASU codec.

Coordinates are fractional coordinates of the conventional cell in the ITA standard setting used by
pyxtal ``Group(n)`` (origin choice 2, hexagonal axes for R groups). The asymmetric units are those of
Grosse-Kunstleve, Wong, Mustyakimov & Adams, Acta Cryst. A67 (2011) 269, exact at their boundary.

>>> import asu_geometry as ag
>>> [wp.label for wp in ag.wyckoff_positions(62)]
['4a', '4b', '4c', '8d']
>>> ag.asu(62).contains(["1/2", "0", "0"])
True
>>> ag.to_asu_point(227, ["1/2", "1/2", "1/2"], tol=0)[1]
'd'
"""

from .canonical import AsuPoints, to_asu_point, to_asu_point_exact, to_asu_points
from .crystal import (
    AsuCrystal,
    AsuSite,
    check_lattice_parameters,
    needs_symmetry_search,
    read_structure,
    structure_from_cif_string,
    to_asu,
    to_asu_cell,
    to_asu_crystal,
)
from .errors import (
    AsuGeometryError,
    CanonicalizationError,
    CifReadError,
    DisorderedStructureError,
    InvalidAsuCrystalError,
    InvalidSpaceGroupError,
    SymmetryNotFoundError,
    UnknownSpeciesError,
    UnknownWyckoffPositionError,
)
from .features import (
    SPACE_GROUP_FEATURE_DIM,
    WYCKOFF_FEATURE_DIM,
    SymmetryElements,
    space_group_feature_matrix,
    space_group_feature_names,
    space_group_features,
    symmetry_elements,
    wyckoff_feature_matrix,
    wyckoff_feature_names,
    wyckoff_features,
)
from .normalform import NormalFormReport, is_normal_form, normal_form, normal_form_report
from .normalizer import NormalizerElement, normalizer_elements
from .plot import plot_asu, save_asu_plot
from .tables import (
    AsymmetricUnit,
    SpaceGroup,
    WyckoffPosition,
    WyckoffShape,
    all_wyckoff_positions,
    asu,
    load_all,
    space_group,
    wyckoff_index,
    wyckoff_positions,
)

__version__ = "0.2.0"

__all__ = [
    "AsuCrystal", "AsuGeometryError", "AsuPoints", "AsuSite", "AsymmetricUnit", "CanonicalizationError",
    "CifReadError", "DisorderedStructureError", "InvalidAsuCrystalError", "InvalidSpaceGroupError", "SpaceGroup",
    "SymmetryNotFoundError", "UnknownSpeciesError", "UnknownWyckoffPositionError", "WyckoffPosition",
    "WyckoffShape",
    "all_wyckoff_positions", "asu", "check_lattice_parameters", "load_all", "needs_symmetry_search",
    "read_structure", "space_group", "structure_from_cif_string", "to_asu", "to_asu_cell", "to_asu_crystal",
    "to_asu_point", "to_asu_point_exact", "to_asu_points",
    "wyckoff_index", "wyckoff_positions",
    # the normal form (one description per crystal)
    "NormalFormReport", "NormalizerElement", "is_normal_form", "normal_form", "normal_form_report",
    "normalizer_elements",
    # feature vectors for the model, plotting
    "SPACE_GROUP_FEATURE_DIM", "SymmetryElements", "WYCKOFF_FEATURE_DIM", "plot_asu", "save_asu_plot",
    "space_group_feature_matrix", "space_group_feature_names", "space_group_features", "symmetry_elements",
    "wyckoff_feature_matrix", "wyckoff_feature_names", "wyckoff_features",
]
