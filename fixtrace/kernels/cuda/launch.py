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


def per_item(kernel, n: int, *args):
    """Launch ``kernel(*args, result)`` with one thread per item; returns the int64 ``result`` (n,).

    Nothing is launched for n = 0 (an empty grid is an invalid launch on a GPU).
    """
    result = empty_index(n)
    if n:
        kernel[blocks(n), THREADS](*args, result)
    return result
