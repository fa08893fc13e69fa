"""The package's public names, and a CLI that starts without importing torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import crystal_ar_model
import pytest


def test_every_public_name_resolves_to_its_module_object() -> None:
    lazy = crystal_ar_model._LAZY
    assert set(lazy) <= set(crystal_ar_model.__all__)
    for name in crystal_ar_model.__all__:
        value = getattr(crystal_ar_model, name)
        if name in lazy:
            assert value is getattr(importlib.import_module(f"crystal_ar_model.{lazy[name]}"), name)
    assert set(crystal_ar_model.__all__) <= set(dir(crystal_ar_model))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        crystal_ar_model.not_a_name  # noqa: B018


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from crystal_ar_model.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'torch_geometric', 'pymatgen') if m in sys.modules)\n"
        "print(heavy, 'sample' in out.getvalue() and 'score' in out.getvalue())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[] True", res.stdout + res.stderr
