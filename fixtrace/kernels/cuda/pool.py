"""Pooling backtrack kernels (CUDA)."""

from __future__ import annotations

from numba import cuda

from fixtrace.kernels.cuda.launch import per_item
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
    return per_item(_pool_argmax, out_index.size, xf, out_index, g)


def global_argmax(xf, channel_index, g):
    """Device twin of ``kernels.cpu.pool.global_argmax``."""
    return per_item(_global_argmax, channel_index.size, xf, channel_index, g)
