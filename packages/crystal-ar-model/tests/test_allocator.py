"""``crystal_ar_model.allocator``: glibc keeps freed memory for reuse, and a user's own malloc settings win.

The behaviour is checked in fresh interpreters (the settings are process-wide): ten 2 MiB arrays are made and
freed three times, and glibc's ``mallinfo2`` says how much free memory the heap kept. With glibc's defaults the
top of the heap is handed back to the system (every round faults the pages in again); after
:func:`keep_freed_memory` the 20 MiB stay in the heap.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest
from crystal_ar_model import allocator

_PROBE = r"""
import ctypes, json, sys
import numpy as np
from crystal_ar_model.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
kept = []
for _ in range(3):
    arrays = [np.ones((2 << 20) // 8) for _ in range(10)]
    del arrays
    kept.append(libc.mallinfo2().fordblks)
print(json.dumps({"applied": applied, "kept": kept}))
"""


def _has_mallinfo2() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2") and allocator._mallopt() is not None
    except OSError:
        return False


def _probe(mode: str, env: dict[str, str] | None = None) -> dict:
    import os

    environ = {k: v for k, v in os.environ.items() if k not in allocator._USER_SETTINGS and k != "GLIBC_TUNABLES"}
    environ.update(env or {})
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=environ,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt and mallinfo2)")
def test_freed_memory_is_kept_for_reuse() -> None:
    default = _probe("default")
    keep = _probe("keep")
    assert keep["applied"] is True
    mib = 2**20
    assert all(k >= 20 * mib for k in keep["kept"]), keep  # the ten arrays' memory stays in the heap
    assert all(k < 20 * mib for k in default["kept"]), default  # glibc's defaults hand it back


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallopt and mallinfo2)")
def test_the_users_malloc_settings_are_left_alone() -> None:
    keep = _probe("keep", {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert keep["applied"] is False
    assert all(k < 20 * 2**20 for k in keep["kept"]), keep  # the user's trim threshold holds


def test_user_malloc_settings() -> None:
    assert allocator.user_malloc_settings({}) == []
    assert allocator.user_malloc_settings({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.rtld.nns=2"}) == []
    assert allocator.user_malloc_settings({"MALLOC_TOP_PAD_": "0"}) == ["MALLOC_TOP_PAD_"]
    assert allocator.user_malloc_settings({"MALLOC_MMAP_THRESHOLD_": "1", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
                                          ) == ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"]


def test_nothing_is_set_when_the_user_tunes_malloc(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    monkeypatch.setattr(allocator, "_mallopt", lambda: calls.append(1))
    assert allocator.keep_freed_memory() is False
    assert calls == []


def test_nothing_is_set_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*allocator._USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    assert allocator.keep_freed_memory() is False
