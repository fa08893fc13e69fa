"""(package docstring is filled by the package's issue)."""

__version__ = "0.1.0"
