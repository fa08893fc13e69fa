"""A process-pool map with a tqdm progress bar (order preserved)."""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
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
    """One BLAS / OpenMP thread per worker process. The environment variables reach libraries loaded later
    (torch in a stability worker); the libraries the parent had already loaded, such as numpy's OpenBLAS in a
    forked worker, read them only at load time, so they are limited through threadpoolctl. Otherwise each
    worker keeps a BLAS pool of one thread per core whose threads spin between calls and take CPU from the
    other workers (and count towards a CPU-time limit)."""
    warnings.simplefilter("ignore")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


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
    return list(pimap(func, items, n_jobs, desc, progress, chunksize))


def pimap(
    func: Callable[[Any], T],
    items: Sequence[Any],
    n_jobs: int | None = None,
    desc: str = "",
    progress: bool = True,
    chunksize: int | None = None,
    weights: Sequence[int] | None = None,
    min_items_for_pool: int = 8,
) -> Iterator[T]:
    """:func:`pmap` as a generator: yields ``func(x)`` in the order of ``items`` as soon as each is ready.

    ``weights`` (default 1 each) is what the progress bar counts per item (e.g. the crystals in a chunk).
    Runs in-process when ``n_jobs == 1`` or there are fewer than ``min_items_for_pool`` items.
    """
    n_jobs = default_jobs() if n_jobs is None or n_jobs <= 0 else n_jobs
    weights = list(weights) if weights is not None else [1] * len(items)
    bar = tqdm(total=sum(weights), desc=desc, disable=not progress or not items, leave=False)
    try:
        if n_jobs == 1 or len(items) < min_items_for_pool:
            for x, w in zip(items, weights, strict=True):
                yield func(x)
                bar.update(w)
            return
        if chunksize is None:
            chunksize = max(1, min(32, len(items) // (n_jobs * 8)))
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(min(n_jobs, len(items)), initializer=_init_worker) as pool:
            for r, w in zip(pool.imap(func, items, chunksize=chunksize), weights, strict=True):
                yield r
                bar.update(w)
    finally:
        bar.close()
