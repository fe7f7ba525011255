"""Pooling backtrack kernels (CUDA)."""

from __future__ import annotations

from numba import cuda

from fixtrace.kernels.cuda.launch import THREADS, blocks, empty_index
from fixtrace.kernels.shared.pool import global_one, pool_one


@cuda.jit
def _pool_argmax(xf, out_index, g, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = pool_one(xf, out_index[f], g)


@cuda.jit
def _global_argmax(xf, channel_index, g, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < channel_index.size:
        result[f] = global_one(xf, channel_index[f], g)


def pool_argmax(xf, out_index, g):
    """Device twin of ``kernels.cpu.pool.pool_argmax``."""
    result = empty_index(out_index.size)
    if out_index.size:
        _pool_argmax[blocks(out_index.size), THREADS](xf, out_index, g, result)
    return result


def global_argmax(xf, channel_index, g):
    """Device twin of ``kernels.cpu.pool.global_argmax``."""
    result = empty_index(channel_index.size)
    if channel_index.size:
        _global_argmax[blocks(channel_index.size), THREADS](xf, channel_index, g, result)
    return result
