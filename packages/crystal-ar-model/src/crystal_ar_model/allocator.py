"""Keep freed memory in the process for reuse: glibc's ``malloc`` settings for crystal-ar's processes.

Sampling, scoring and training allocate and free many short-lived tensors of a few MiB at every step. By default
glibc returns the top of its heap to the operating system as soon as more than ``M_TRIM_THRESHOLD`` bytes are free
there (twice the dynamic ``M_MMAP_THRESHOLD``, which follows the largest block freed so far), and the next step's
tensors then fault the same pages in again, each zeroed by the kernel. :func:`keep_freed_memory` fixes the two
thresholds (``mallopt(3)``): blocks up to :data:`MMAP_THRESHOLD` come from the heap, and freed memory is kept until
more than :data:`TRIM_THRESHOLD` lies free at its top. What is kept was in use a moment before, so the peak memory
stays about the same (the benchmarks' figures); it is only handed back later.

Every ``crystal-ar`` command applies it in its own process (which its forked workers inherit), and the worker
processes of :class:`.generate.SampleRun` and :func:`.score.score_dataset` apply it too
(:func:`.score.init_worker`), for library users. The crystal-ar-model README (Figures) gives the benchmarks' figures
with and without it. A user who sets glibc's own variables (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TOP_PAD_`` or a ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``) keeps them: nothing is changed then. On
other C libraries (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

MMAP_THRESHOLD = 32 * 2**20
"""Bytes: larger blocks are mapped on their own (32 MiB, glibc's largest allowed value on 64-bit systems)."""
TRIM_THRESHOLD = 2**30
"""Bytes of free memory at the top of the heap beyond which glibc hands it back to the operating system (1 GiB)."""

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def user_malloc_settings(environ: dict[str, str] | None = None) -> list[str]:
    """The environment variables through which the user already tunes glibc's ``malloc`` (empty: none)."""
    env = os.environ if environ is None else environ
    found = [name for name in _USER_SETTINGS if name in env]
    if "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        found.append("GLIBC_TUNABLES")
    return found


@cache
def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``mallopt`` (from the symbols the interpreter already has loaded), or None on another platform or C
    library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # musl's mallopt does nothing
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` and ``M_TRIM_THRESHOLD`` to
    :data:`TRIM_THRESHOLD` in this process. Returns whether both were set: False on another C library, or when
    the user's environment already tunes ``malloc`` (:func:`user_malloc_settings`), which is then left alone."""
    if user_malloc_settings():
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
