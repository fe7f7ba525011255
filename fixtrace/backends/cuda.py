"""The CUDA backend: numba CUDA kernels on device arrays.

Activations are copied to the device once per run (on first use by a rule), weights once per
model. Fixation sets stay on the device from the logits to the input; duplicates are not merged
between layers (every rule maps each fixation on its own, and counts are whole numbers, so the
merged result on the host is exactly the CPU backend's).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda

from fixtrace.backends.base import Backend
from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.kernels.cuda import conv, dense, index, pool

# One thread per fixation makes small grids by design (a few hundred to a few thousand
# fixations per layer); numba would warn about occupancy on every such launch.
warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")


class CudaBackend(Backend):
    """Kernels compiled with ``numba.cuda.jit`` on first use."""

    name = "cuda"
    conv, pool, dense, index = conv, pool, dense, index

    def asarray(self, array: np.ndarray) -> Any:
        return cuda.to_device(np.ascontiguousarray(array))

    def describe(self) -> dict[str, Any]:
        from fixtrace.backends.select import cuda_status

        return {"backend": self.name, **{k: v for k, v in cuda_status().items() if k in ("gpu", "simulator")}}

    def start(self, flat: Sequence[int] | np.ndarray) -> FixationSet:
        host = FixationSet.single(np.asarray(flat, dtype=np.int64))
        return FixationSet(self.asarray(host.index), self.asarray(host.count), unique=True)

    def union(self, sets: list[FixationSet], size: int | None = None) -> FixationSet:
        if len(sets) == 1:
            return sets[0]
        total = sum(len(s) for s in sets)
        out_index = cuda.device_array(total, dtype=np.int64)
        out_count = cuda.device_array(total, dtype=np.float64)
        at = 0
        for s in sets:
            n = len(s)
            if n:
                out_index[at : at + n].copy_to_device(s.index)
                out_count[at : at + n].copy_to_device(s.count)
                at += n
        return FixationSet(out_index, out_count)

    def compact(self, fixations: FixationSet) -> FixationSet:
        return FixationSet(*index.compact(fixations.index, fixations.count))

    def conv_backtrack(self, xf, wf, flat, g, location):
        return conv.conv_backtrack(xf, wf, flat, g, location)

    def dense_positive(self, af, wf, fixations, n_batch, n_in, n_out, weighted=False):
        acc = dense.dense_positive(af, wf, fixations.index, fixations.count, n_batch, n_in, n_out, int(weighted))
        return self.compact(FixationSet(index.positive_index(acc), acc))

    def global_spread(self, xf, fixations, g):
        acc = pool.global_spread(xf, fixations.index, fixations.count, g)
        return self.compact(FixationSet(index.positive_index(acc), acc))

    def winner(self, candidates):
        return index.winner(candidates)

    def select(self, flat, chosen, k):
        return index.select(flat, chosen, k)
