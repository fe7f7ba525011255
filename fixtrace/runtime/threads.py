"""One thread limit for every pool a run touches besides onnxruntime's: BLAS/OpenMP and numba.

onnxruntime takes its limit from the session options (``runtime.session``); numpy's BLAS and
numba's pool each default to every core, and together they oversubscribed a loaded machine
(saliency 40 ms -> 1.5 s per map on 2 cores).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba
from threadpoolctl import ThreadpoolController

from fixtrace import validate

A = TypeVar("A")
R = TypeVar("R")


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Limit the BLAS/OpenMP pools and numba's pool to ``n`` threads inside the block.

    BLAS/OpenMP limits (threadpoolctl) are process-wide. numba's is thread-local: it binds the
    thread that enters the block (and the parallel kernels it launches), so enter the block in
    the thread that runs the kernels. Both are restored on exit, exceptions included; nested
    blocks restore the outer block's limits.

    Args:
        n: threads per pool; numba's is capped at ``numba.config.NUMBA_NUM_THREADS``.
            0 changes nothing.

    Raises:
        OptionError: ``n`` is not an int >= 0.
    """
    n = validate.integer("threads", n, 0)
    if n == 0:
        yield
        return
    previous = numba.get_num_threads()
    # numba first: its first set_num_threads may load an OpenMP runtime (the omp threading
    # layer), which threadpoolctl then sees, limits and restores with the others.
    numba.set_num_threads(min(n, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    try:
        with _controller().limit(limits=n):
            yield
    finally:
        numba.set_num_threads(previous)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system tells it, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def thread_budget() -> int:
    """Threads this thread may use for fixtrace's own work: the innermost ``limit_threads``
    limit, else numba's default (every core)."""
    return int(numba.get_num_threads())


def map_in_threads(function: Callable[[A], R], items: Sequence[A], workers: int) -> list[R]:
    """``[function(item) for item in items]``, shared among up to ``workers`` threads (for work
    that releases the GIL: numba kernels marked ``nogil``, numpy's loops). The first exception
    in item order is raised, as the loop would.

    Args:
        function: called once per item.
        items: the items, in order.
        workers: threads at most (1: the calling thread only).

    Returns:
        The results in item order.
    """
    workers = min(workers, len(items))
    if workers < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


_scanned: tuple[int, ThreadpoolController] | None = None


def _controller() -> ThreadpoolController:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, scanned again only when modules
    were imported since the last scan (a scan cost 1.2 ms per explained batch)."""
    global _scanned
    if _scanned is None or _scanned[0] != len(sys.modules):
        _scanned = (len(sys.modules), ThreadpoolController())
    return _scanned[1]
