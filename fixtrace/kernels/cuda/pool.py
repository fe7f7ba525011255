"""Pooling backtrack kernels (CUDA)."""

from __future__ import annotations

import numpy as np
from numba import cuda

from fixtrace.kernels.cuda.launch import THREADS, blocks, per_item
from fixtrace.kernels.shared.dense import share
from fixtrace.kernels.shared.pool import global_one, global_positive_total, pool_one


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


@cuda.jit
def _global_totals(xf, channel_index, counts, g, totals, acc):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < channel_index.size:
        totals[f] = global_positive_total(xf, channel_index[f], g)
        if totals[f] <= 0.0:
            cuda.atomic.add(acc, global_one(xf, channel_index[f], g), counts[f])


@cuda.jit
def _global_spread(xf, channel_index, counts, g, totals, acc):  # pragma: no cover - numba
    # Cells on x, fixations on y.
    cell, f = cuda.grid(2)
    n_chan, height, width, sb, sc, sy, sx = g
    if f < channel_index.size and cell < height * width and totals[f] > 0.0:
        channel = channel_index[f]
        at = (channel // n_chan) * sb + (channel % n_chan) * sc + (cell // width) * sy + (cell % width) * sx
        v = np.float64(xf[at])
        if v > 0.0:
            # Shares are multiples of 2**-20, so the sum is exact in any order.
            cuda.atomic.add(acc, at, share(counts[f], v, totals[f]))


_TILE = 16


def pool_argmax(xf, out_index, g):
    """Device twin of ``kernels.cpu.pool.pool_argmax``."""
    return per_item(_pool_argmax, out_index.size, xf, out_index, g)


def global_argmax(xf, channel_index, g):
    """Device twin of ``kernels.cpu.pool.global_argmax``."""
    return per_item(_global_argmax, channel_index.size, xf, channel_index, g)


def global_spread(xf, channel_index, counts, g):
    """Device twin of ``kernels.cpu.pool.global_spread``: float64 (xf.size,) summed shares."""
    acc = cuda.to_device(np.zeros(xf.size, dtype=np.float64))
    n = channel_index.size
    if n:
        totals = cuda.device_array(n, dtype=np.float64)
        _global_totals[blocks(n), THREADS](xf, channel_index, counts, g, totals, acc)
        cells = g[1] * g[2]
        grid = ((cells + _TILE - 1) // _TILE, (n + _TILE - 1) // _TILE)
        _global_spread[grid, (_TILE, _TILE)](xf, channel_index, counts, g, totals, acc)
    return acc
