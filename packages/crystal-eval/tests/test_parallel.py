"""Worker processes of :mod:`crystal_eval.parallel`."""

from __future__ import annotations

import os

import numpy as np
from crystal_eval.parallel import pmap


def _pool_threads(_: int) -> tuple[int, list[int]]:
    """This process's id and the thread counts of the BLAS / OpenMP pools loaded in it (numpy's OpenBLAS)."""
    from threadpoolctl import threadpool_info

    np.ones((2, 2)) @ np.ones((2, 2))  # the pool is loaded and used
    return os.getpid(), [int(info["num_threads"]) for info in threadpool_info()]


def test_every_worker_runs_one_blas_thread():
    """A forked worker inherits numpy's OpenBLAS, loaded before the worker could set OPENBLAS_NUM_THREADS; it is
    limited to one thread all the same, so that workers do not spin on each other's cores."""
    per_item = pmap(_pool_threads, list(range(8)), n_jobs=2, progress=False, chunksize=1)  # 8 items: a real pool
    assert len(per_item) == 8
    assert os.getpid() not in {pid for pid, _ in per_item}  # they ran in worker processes
    for _, counts in per_item:
        assert counts and set(counts) == {1}
