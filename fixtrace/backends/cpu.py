"""The CPU backend: numba ``njit`` kernels on numpy arrays; duplicates merged after every layer."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from fixtrace.backends.base import Backend
from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.kernels.cpu import conv, dense, index, pool, sets


class CpuBackend(Backend):
    """Kernels compiled with ``numba.njit`` (cached on disk)."""

    name = "cpu"
    pointwise_channels_last = True
    splits_items = True
    conv, pool, dense, index = conv, pool, dense, index
    #: Whether big conv backtracks may use numba's parallel driver.
    parallel = True

    def serial(self) -> CpuBackend:
        own = copy.copy(self)  # shares the placed constants
        own.parallel = False
        return own

    def asarray(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array)

    def start(self, flat: Sequence[int] | np.ndarray) -> FixationSet:
        return FixationSet.single(np.asarray(flat, dtype=np.int64))

    def union(self, sets: list[FixationSet], size: int | None = None) -> FixationSet:
        if len(sets) == 1:
            return sets[0].merged(size)
        return FixationSet(np.concatenate([s.index for s in sets]), np.concatenate([s.count for s in sets])).merged(size)

    def compact(self, fixations: FixationSet) -> FixationSet:
        keep = fixations.index >= 0
        if keep.all():
            return fixations
        return FixationSet(fixations.index[keep], fixations.count[keep], fixations.unique)

    def conv_backtrack(self, xf, wf, index, g, location):
        work = index.size * g[4] * g[5] * g[6]  # fixations x channels per group x kernel cells
        kernel = conv.conv_backtrack_parallel if self.parallel and work > conv.PARALLEL_WORK else conv.conv_backtrack
        return kernel(xf, wf, index, g, location)

    def dense_positive(self, af, wf, fixations, n_batch, n_in, n_out, weighted=False):
        return self._nonzero(dense.dense_positive(af, wf, fixations.index, fixations.count, n_batch, n_in, n_out, int(weighted)))

    def global_spread(self, xf, fixations, g):
        return self._nonzero(pool.global_spread(xf, fixations.index, fixations.count, g))

    @staticmethod
    def _nonzero(acc: np.ndarray) -> FixationSet:
        chosen, counts = sets.nonzero_entries(acc)
        return FixationSet(chosen, counts, unique=True)

    def winner(self, candidates: list[tuple[Any, Any]]) -> np.ndarray:
        best = candidates[0][0][candidates[0][1]]
        chosen = np.zeros(best.size, dtype=np.int64)
        for k, (values, at) in enumerate(candidates[1:], start=1):
            challenger = values[at]
            better = challenger > best
            best = np.where(better, challenger, best)
            chosen[better] = k
        return chosen

    def select(self, flat, chosen, k):
        return np.where(chosen == k, flat, -1)
