"""Fully connected backtrack kernels (CUDA)."""

from __future__ import annotations

import numpy as np
from numba import cuda

from fixtrace.kernels.cuda.launch import THREADS, blocks, per_item
from fixtrace.kernels.shared.dense import contribution, dense_argmax_one, positive_total, share

_TILE = 16  # 16 x 16 threads per block for the (fixation, input) grid


@cuda.jit
def _positive_totals(af, wf, out_index, n_in, n_out, totals):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        totals[f] = positive_total(af, wf, out_index[f] // n_out, out_index[f] % n_out, n_in, n_out)


@cuda.jit
def _dense_positive(af, wf, out_index, counts, n_in, n_out, weighted, totals, acc):  # pragma: no cover - numba
    # Inputs on x (up to 2**31 blocks), fixations on y (up to 65535 blocks).
    j, f = cuda.grid(2)
    if f < out_index.size and j < n_in:
        i = out_index[f] % n_out
        b = out_index[f] // n_out
        c = contribution(af, wf, b, j, i, n_in, n_out)
        if c > 0.0 and totals[f] > 0.0:
            # Counts and shares are multiples of 2**-20, so the sum is exact in any order.
            cuda.atomic.add(acc, b * n_in + j, share(counts[f], c, totals[f]) if weighted else counts[f])


@cuda.jit
def _dense_argmax(af, wf, out_index, n_in, n_out, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = dense_argmax_one(af, wf, out_index[f], n_in, n_out)


def dense_positive(af, wf, out_index, counts, n_batch, n_in, n_out, weighted):
    """Device twin of ``kernels.cpu.dense.dense_positive``: float64 (B * K,) summed counts."""
    acc = cuda.to_device(np.zeros(n_batch * n_in, dtype=np.float64))
    if out_index.size and n_in:
        totals = cuda.to_device(np.ones(out_index.size, dtype=np.float64))
        if weighted:
            _positive_totals[blocks(out_index.size), THREADS](af, wf, out_index, n_in, n_out, totals)
        grid = ((n_in + _TILE - 1) // _TILE, (out_index.size + _TILE - 1) // _TILE)
        _dense_positive[grid, (_TILE, _TILE)](af, wf, out_index, counts, n_in, n_out, weighted, totals, acc)
    return acc


def dense_argmax(af, wf, out_index, n_in, n_out):
    """Device twin of ``kernels.cpu.dense.dense_argmax``."""
    return per_item(_dense_argmax, out_index.size, af, wf, out_index, n_in, n_out)
