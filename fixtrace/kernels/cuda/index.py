"""Index maps, routing, the Add winner and stream compaction (CUDA)."""

from __future__ import annotations

import numpy as np
from numba import cuda

from fixtrace.kernels.cuda.launch import THREADS, blocks, empty_index, per_item
from fixtrace.kernels.shared.index import remap_one, route_one


@cuda.jit
def _remap(out_index, table, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = remap_one(out_index[f], table)


@cuda.jit
def _route(out_index, inner, along, offset, size, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = route_one(out_index[f], inner, along, offset, size)


@cuda.jit
def _challenge(values, at, k, best, chosen):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < at.size:
        v = values[at[f]]
        if k == 0 or v > best[f]:
            best[f] = v
            chosen[f] = k


@cuda.jit
def _select(flat, chosen, k, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < flat.size:
        result[f] = flat[f] if chosen[f] == k else -1


@cuda.jit
def _positive_index(acc, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < acc.size:
        result[f] = f if acc[f] != 0.0 else -1


@cuda.jit
def _compact(flat, counts, out_index, out_counts, used):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < flat.size and flat[f] >= 0:
        # Order among survivors is arbitrary; sets are merged (sorted) on the host.
        p = cuda.atomic.add(used, 0, 1)
        out_index[p] = flat[f]
        out_counts[p] = counts[f]


def remap(out_index, table):
    """Device twin of ``kernels.cpu.index.remap``."""
    return per_item(_remap, out_index.size, out_index, cuda.to_device(table))


def route(out_index, inner, along, offset, size):
    """Device twin of ``kernels.cpu.index.route``."""
    return per_item(_route, out_index.size, out_index, inner, along, offset, size)


def winner(candidates):
    """Per fixation, the operand holding the largest value (first on ties); see ``Backend.winner``."""
    n = candidates[0][1].size
    best = cuda.device_array(n, dtype=candidates[0][0].dtype)
    chosen = empty_index(n)
    if n:
        for k, (values, at) in enumerate(candidates):
            _challenge[blocks(n), THREADS](values, at, k, best, chosen)
    return chosen


def select(flat, chosen, k):
    """``flat`` where ``chosen == k``, else -1."""
    return per_item(_select, flat.size, flat, chosen, k)


def positive_index(acc):
    """The index of every nonzero entry of ``acc``, -1 elsewhere."""
    return per_item(_positive_index, acc.size, acc)


def compact(flat, counts):
    """Entries with ``flat >= 0``, in arbitrary order: (index, counts) on the device."""
    out_index = empty_index(flat.size)
    out_counts = cuda.device_array(flat.size, dtype=np.float64)
    used = cuda.to_device(np.zeros(1, dtype=np.int64))
    if flat.size:
        _compact[blocks(flat.size), THREADS](flat, counts, out_index, out_counts, used)
    n = int(used.copy_to_host()[0])
    return out_index[:n], out_counts[:n]
