"""Numba kernels behind the rules.

``shared/`` holds each kernel's per-fixation body, written once; ``cpu/`` loops over fixations
with ``@njit``; ``cuda/`` runs one thread per fixation with ``@cuda.jit``. The same names in
``cpu/`` and ``cuda/`` keep the same contract (tests/test_cuda_backend.py checks it).

Numba's on-disk cache (``cache=True``) would key a kernel on its own file only; ``cache.install``,
run on import here before any kernel is defined, stamps every function under this folder with
a hash of its file and of all of ``shared/``, so an edited body recompiles on the next run.
"""

from fixtrace.kernels import cache as _cache

_cache.install()
