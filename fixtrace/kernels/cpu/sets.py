"""Fixation-set bookkeeping: merge duplicates, summing their counts."""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``merge_dense`` replaces the sort when the tensor has at most this many elements per index.
DENSE_RATIO = 4
#: ``merge_duplicates`` sorts by radix from this many indices (numba's quicksort below).
RADIX_FROM = 1024


@njit(cache=True, nogil=True)
def merge_duplicates(index, counts):  # pragma: no cover - numba
    """Sort flat indices, keep each once and sum the counts of the copies (in input order).

    Args:
        index: int64 flat indices, any order, duplicates allowed.
        counts: float64 count per index.

    Returns:
        (unique sorted indices, summed counts).
    """
    n = index.size
    shift = 1
    while (1 << shift) < n:
        shift += 1
    low, high = 0, 0
    if n > 0:
        low, high = index.min(), index.max()
    if low < 0 or high >= (1 << (62 - shift)):
        return _merge_sorted(index, counts, np.argsort(index, kind="mergesort"))
    # One int64 sort of (index, position) keys: the same order as a stable argsort, faster.
    keys = np.empty(n, dtype=np.int64)
    for k in range(n):
        keys[k] = (index[k] << shift) | k
    if n >= RADIX_FROM:
        bits = shift
        while (high >> (bits - shift)) > 0:
            bits += 1
        keys = _radix_sorted(keys, bits)
    else:
        keys.sort()
    order = keys & ((1 << shift) - 1)
    return _merge_sorted(index, counts, order)


@njit(cache=True, nogil=True, boundscheck=False)
def _radix_sorted(keys, bits):  # pragma: no cover - numba
    """``keys`` (int64, >= 0, below 2**bits) sorted, by 11-bit digits from the lowest
    (2.4-6x faster than numba's quicksort from 3,000 keys)."""
    src = keys.copy()
    dst = np.empty_like(src)
    slots = np.empty(2048, dtype=np.int64)
    shift = 0
    while shift < bits:
        slots[:] = 0
        for k in range(src.size):
            slots[(src[k] >> shift) & 2047] += 1
        total = 0
        for d in range(2048):
            held = slots[d]
            slots[d] = total
            total += held
        for k in range(src.size):
            d = (src[k] >> shift) & 2047
            dst[slots[d]] = src[k]
            slots[d] += 1
        src, dst = dst, src
        shift += 11
    return src


@njit(cache=True, nogil=True)
def _merge_sorted(index, counts, order):  # pragma: no cover - numba
    """Indices taken in ``order`` (sorted, stable), each kept once with its copies' counts summed."""
    out_index = np.empty(index.size, dtype=np.int64)
    out_count = np.empty(index.size, dtype=np.float64)
    n = 0
    for k in range(order.size):
        idx = index[order[k]]
        if n > 0 and out_index[n - 1] == idx:
            out_count[n - 1] += counts[order[k]]
        else:
            out_index[n] = idx
            out_count[n] = counts[order[k]]
            n += 1
    return out_index[:n], out_count[:n]


@njit(cache=True, nogil=True)
def merge_dense(index, counts, size):  # pragma: no cover - numba
    """``merge_duplicates`` for indices into a tensor of ``size`` elements, by marking instead
    of sorting (O(n + size)); the copies of an index are added in the same (input) order, so the
    result is the same.

    Args:
        index: int64 flat indices in 0..size-1, any order, duplicates allowed.
        counts: float64 count per index.
        size: elements in the tensor.

    Returns:
        (unique sorted indices, summed counts).
    """
    seen = np.zeros(size, dtype=np.bool_)
    total = np.empty(size, dtype=np.float64)
    n = 0
    for k in range(index.size):
        i = index[k]
        if seen[i]:
            total[i] += counts[k]
        else:
            seen[i] = True
            total[i] = counts[k]
            n += 1
    out_index = np.empty(n, dtype=np.int64)
    out_count = np.empty(n, dtype=np.float64)
    j = 0
    for i in range(size):
        if seen[i]:
            out_index[j] = i
            out_count[j] = total[i]
            j += 1
    return out_index, out_count


@njit(cache=True, boundscheck=False, nogil=True)
def nonzero_entries(acc):  # pragma: no cover - numba
    """The entries of a dense per-element accumulator that are not 0, in index order.

    Branch-free: numpy's ``flatnonzero`` mispredicts on a scattered pattern (0.47 ms against
    about 0.06 ms here for 17,000 of 63,000 entries).

    Args:
        acc: float64 per element of a tensor.

    Returns:
        (int64 indices of the entries that are not 0, their values).
    """
    picked = np.empty(acc.size, dtype=np.int64)
    n = 0
    for i in range(acc.size):
        picked[n] = i
        n += acc[i] != 0.0
    index = picked[:n].copy()
    values = np.empty(n, dtype=np.float64)
    for k in range(n):
        values[k] = acc[index[k]]
    return index, values
