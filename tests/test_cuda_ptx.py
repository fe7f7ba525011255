"""Every CUDA kernel compiles to PTX for sm_90 (H100) with the CUDA toolkit's NVVM, no GPU needed.

The simulator (used by test_cuda_backend.py) runs kernels as Python and never compiles them, so
this is the check that the kernels are valid numba CUDA code. It runs in a subprocess with the
simulator off; it is skipped, with the reason, where NVVM is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, sys, types
from unittest import mock

from numba import cuda
from numba import types as nt
from numba.cuda import dispatcher

from fixtrace.kernels.cuda import conv, dense, index, pool

f32, f64, i64 = nt.float32[::1], nt.float64[::1], nt.int64[::1]
scalar = nt.int64
conv_g, pool_g, global_g = nt.UniTuple(nt.int64, 16), nt.UniTuple(nt.int64, 13), nt.UniTuple(nt.int64, 7)
KERNELS = {
    "conv_backtrack": (conv._conv_backtrack, (f32, f32, i64, conv_g, scalar, i64)),
    "depthwise_backtrack_recomputed": (conv._depthwise_backtrack_recomputed,
                                       (f32, f32, f32, conv_g, nt.float64, nt.float64, f32, i64, conv_g, scalar, i64)),
    "pool_argmax": (pool._pool_argmax, (f32, i64, pool_g, i64)),
    "global_argmax": (pool._global_argmax, (f32, i64, global_g, i64)),
    "global_totals": (pool._global_totals, (f32, i64, f64, global_g, f64, f64)),
    "global_spread": (pool._global_spread, (f32, i64, f64, global_g, f64, f64)),
    "positive_totals": (dense._positive_totals, (f32, f32, i64, scalar, scalar, f64)),
    "dense_positive": (dense._dense_positive, (f32, f32, i64, f64, scalar, scalar, scalar, f64, f64)),
    "dense_argmax": (dense._dense_argmax, (f32, f32, i64, scalar, scalar, i64)),
    "remap": (index._remap, (i64, nt.int64[:, ::1], i64)),
    "route": (index._route, (i64, scalar, scalar, scalar, scalar, i64)),
    "challenge": (index._challenge, (f32, i64, scalar, f32, i64)),
    "select": (index._select, (i64, i64, scalar, i64)),
    "positive_index": (index._positive_index, (f64, i64)),
    "compact": (index._compact, (i64, f64, i64, f64, i64)),
}
# numba compiles called device functions for the current device's compute capability even
# inside compile_ptx; with no GPU present, say sm_90 instead of asking the driver.
no_gpu = not cuda.is_available()
patch = mock.patch.object(dispatcher, "get_current_device", return_value=types.SimpleNamespace(compute_capability=(9, 0)))
report = {}
with patch if no_gpu else mock.patch.object(dispatcher, "get_current_device", dispatcher.get_current_device):
    for name, (kernel, sig) in KERNELS.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        report[name] = {"target_sm_90": ".target sm_90" in ptx, "entry": ".entry" in ptx, "bytes": len(ptx)}
every = {f"{m.__name__}.{k}" for m in (conv, dense, index, pool) for k, v in vars(m).items()
         if isinstance(v, dispatcher.CUDADispatcher)}
covered = {f"{kernel.py_func.__module__}.{kernel.py_func.__name__}" for kernel, _ in KERNELS.values()}
report["uncovered"] = sorted(every - covered)
print(json.dumps(report))
"""


def test_every_cuda_kernel_compiles_to_ptx_for_sm90():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        if "NVVM" in proc.stderr or "libnvvm" in proc.stderr.lower():
            pytest.skip(f"the CUDA toolkit's NVVM is not available here: {last}")
        raise AssertionError(proc.stderr[-3000:])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report.pop("uncovered") == []  # every kernel in kernels/cuda is compiled here
    assert len(report) == 15
    for name, facts in report.items():
        assert facts["target_sm_90"] and facts["entry"], (name, facts)
