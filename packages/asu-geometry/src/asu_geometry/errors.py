"""Exceptions raised by :mod:`asu_geometry`. All derive from :class:`AsuGeometryError`."""

from __future__ import annotations


class AsuGeometryError(Exception):
    """Base class of every error raised by asu_geometry."""


class InvalidSpaceGroupError(AsuGeometryError, ValueError):
    """A space-group number outside 1..230 (or not an integer)."""


class UnknownWyckoffPositionError(AsuGeometryError, KeyError):
    """A Wyckoff letter that the space group does not have."""

    def __str__(self) -> str:  # the message as given, without the quotes KeyError puts around it
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DisorderedStructureError(AsuGeometryError, ValueError):
    """The structure has partially occupied or mixed-species sites; an ASU crystal needs ordered sites."""


class SymmetryNotFoundError(AsuGeometryError, ValueError):
    """spglib could not determine the space group at the requested tolerances."""


class CifReadError(AsuGeometryError, ValueError):
    """A CIF file could not be read or contained no structure."""


class CanonicalizationError(AsuGeometryError, RuntimeError):
    """A point or site could not be mapped consistently onto the exact ASU (numerical inconsistency)."""


class UnknownSpeciesError(AsuGeometryError, ValueError):
    """A site whose species is not a chemical element (e.g. a dummy species such as ``Xx`` read from a CIF)."""


class InvalidAsuCrystalError(AsuGeometryError, ValueError):
    """An :class:`~asu_geometry.AsuCrystal` whose parts do not fit together: a lattice without the crystal family's
    equalities, a site off the Wyckoff position or shape it names, or two sites on one orbit
    (:meth:`~asu_geometry.AsuCrystal.check`)."""

