"""A process-pool map with a tqdm progress bar (order preserved)."""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def default_jobs() -> int:
    """All usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def pmap(
    func: Callable[[Any], T],
    items: Sequence[Any],
    n_jobs: int | None = None,
    desc: str = "",
    progress: bool = True,
    chunksize: int | None = None,
) -> list[T]:
    """``[func(x) for x in items]`` over ``n_jobs`` processes (``None``: all cores) with a progress bar.

    ``func`` must be a picklable top-level callable (or a ``functools.partial`` of one). Runs in-process
    when ``n_jobs == 1`` or there are fewer than 8 items.
    """
    n_jobs = default_jobs() if n_jobs is None or n_jobs <= 0 else n_jobs
    bar = tqdm(total=len(items), desc=desc, disable=not progress or not items, leave=False)
    try:
        if n_jobs == 1 or len(items) < 8:
            out = []
            for x in items:
                out.append(func(x))
                bar.update(1)
            return out
        if chunksize is None:
            chunksize = max(1, min(32, len(items) // (n_jobs * 8)))
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(n_jobs, initializer=_init_worker) as pool:
            out = []
            for r in pool.imap(func, items, chunksize=chunksize):
                out.append(r)
                bar.update(1)
            return out
    finally:
        bar.close()
