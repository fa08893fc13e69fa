"""Offline generator of the shipped tables (``python -m asu_geometry.build.generate``).

Only this subpackage may import cctbx (``pip install asu-geometry[build]``); nothing at run time does.
"""
