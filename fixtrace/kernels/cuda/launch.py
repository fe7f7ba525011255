"""Launch geometry and device allocation shared by the CUDA launchers."""

from __future__ import annotations

from numba import cuda

#: Threads per block: a multiple of the warp size, well under the 1024 a GPU accepts.
THREADS = 128


def blocks(n: int) -> int:
    """Blocks needed for one thread per item."""
    return (n + THREADS - 1) // THREADS


def empty_index(n: int):
    """A device int64 array of ``n`` entries."""
    return cuda.device_array(n, dtype="int64")
