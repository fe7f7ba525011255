"""Point-cloud kernels for rendering."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def neighbour_mass(xy, counts, radius):  # pragma: no cover - numba
    """For each point, the summed counts of the points within ``radius`` (itself included).

    Args:
        xy: float64 (n, 2) positions.
        counts: float64 (n,) counts.
        radius: neighbourhood radius, same units as ``xy``.

    Returns:
        float64 (n,) neighbourhood mass.
    """
    n = xy.shape[0]
    r2 = radius * radius
    mass = np.zeros(n, dtype=np.float64)
    for i in range(n):
        total = 0.0
        for j in range(n):
            dx = xy[i, 0] - xy[j, 0]
            dy = xy[i, 1] - xy[j, 1]
            if dx * dx + dy * dy <= r2:
                total += counts[j]
        mass[i] = total
    return mass
