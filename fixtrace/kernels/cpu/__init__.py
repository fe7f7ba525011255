"""CPU kernels (``numba.njit``, cached on disk, keyed on their sources by ``kernels.cache``)."""
