"""Numba kernels behind the rules.

``shared/`` holds each kernel's per-fixation body, written once; ``cpu/`` loops over fixations
with ``@njit``; ``cuda/`` runs one thread per fixation with ``@cuda.jit``. The same names in
``cpu/`` and ``cuda/`` keep the same contract (tests/test_cuda_backend.py checks it).

Numba's on-disk cache keys a CPU kernel on its own file only: after editing a body in
``shared/``, delete the ``__pycache__/*.nbi``/``*.nbc`` files (pip installs get fresh ones).
"""
