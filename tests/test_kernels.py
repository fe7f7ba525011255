"""Kernel drivers that must agree exactly: the parallel conv driver against the serial one."""

from __future__ import annotations

import numpy as np
import pytest

from fixtrace.kernels.cpu.conv import conv_backtrack, conv_backtrack_parallel, depthwise_backtrack_recomputed
from fixtrace.kernels.shared.conv import LOCATION_ARGMAX, LOCATION_CENTRE, conv_geometry


@pytest.mark.parametrize("groups, kernel, stride", [(1, 1, 1), (1, 3, 2), (4, 3, 1), (32, 3, 1)])
@pytest.mark.parametrize("location", [LOCATION_ARGMAX, LOCATION_CENTRE])
def test_parallel_conv_driver_equals_serial(groups, kernel, stride, location):
    rng = np.random.default_rng(groups * 10 + kernel)
    x = np.maximum(rng.standard_normal((2, 32, 15, 15)), 0).astype(np.float32)  # ReLU zeros: many ties
    w = rng.standard_normal((64, 32 // groups, kernel, kernel)).astype(np.float32)
    pad = kernel // 2
    out = (15 + 2 * pad - kernel) // stride + 1
    index = np.sort(rng.choice(2 * 64 * out * out, 3000, replace=False)).astype(np.int64)
    g = conv_geometry(x.shape, w.shape, (out, out), groups, (stride, stride), (pad, pad), (1, 1))
    serial = conv_backtrack(x.reshape(-1), w.reshape(-1), index, g, location)
    parallel = conv_backtrack_parallel(x.reshape(-1), w.reshape(-1), index, g, location)
    np.testing.assert_array_equal(parallel, serial)
    assert ((serial >= 0) & (serial < x.size)).all()


def _conv_numpy(x, w, bias, stride, pad, groups):
    """Plain numpy conv (float64), the oracle for the recomputed values."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, oh, ow))
    for o in range(m):
        g = o // (m // groups)
        for i in range(oh):
            for j in range(ow):
                window = xp[:, g * cg : (g + 1) * cg, i * stride : i * stride + kh, j * stride : j * stride + kw]
                out[:, o, i, j] = (window * w[o]).sum(axis=(1, 2, 3)) + bias[o]
    return out


@pytest.mark.parametrize(
    "src_kernel, src_stride, dw_stride, multiplier", [(1, 1, 1, 1), (1, 1, 2, 1), (3, 2, 1, 2), (1, 1, 2, 2)]
)
def test_depthwise_on_recomputed_input_equals_depthwise_on_the_dense_input(src_kernel, src_stride, dw_stride, multiplier):
    rng = np.random.default_rng(src_kernel * 7 + dw_stride)
    src = rng.standard_normal((2, 5, 11, 11)).astype(np.float32)
    w_src = rng.standard_normal((8, 5, src_kernel, src_kernel)).astype(np.float32)
    b_src = rng.standard_normal(8).astype(np.float32)
    src_pad = src_kernel // 2
    dense = np.clip(_conv_numpy(src, w_src, b_src, src_stride, src_pad, 1), 0.0, 6.0).astype(np.float32)  # Clip(Conv)
    w_dw = rng.standard_normal((8 * multiplier, 1, 3, 3)).astype(np.float32)
    out = (dense.shape[2] + 2 - 3) // dw_stride + 1
    index = np.arange(2 * 8 * multiplier * out * out, dtype=np.int64)
    g = conv_geometry(dense.shape, w_dw.shape, (out, out), 8, (dw_stride, dw_stride), (1, 1), (1, 1))
    src_g = conv_geometry(src.shape, w_src.shape, dense.shape[2:], 1, (src_stride, src_stride), (src_pad, src_pad), (1, 1))
    for location in (LOCATION_ARGMAX, LOCATION_CENTRE):
        expected = conv_backtrack(dense.reshape(-1), w_dw.reshape(-1), index, g, location)
        got = depthwise_backtrack_recomputed(
            np.ascontiguousarray(src.transpose(0, 2, 3, 1)).reshape(-1),
            np.ascontiguousarray(w_src.transpose(0, 2, 3, 1)).reshape(-1),
            b_src,
            src_g,
            0.0,
            6.0,
            w_dw.reshape(-1),
            index,
            g,
            location,
        )
        np.testing.assert_array_equal(got, expected)
