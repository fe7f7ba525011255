"""Numba kernels behind the rules: ``cpu/`` (``@njit``); every kernel keeps the same contract on every backend."""
