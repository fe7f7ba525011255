"""CPU kernels (``numba.njit``, cached on disk)."""
