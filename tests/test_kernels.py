"""Kernel drivers that must agree exactly: the parallel conv driver and the channels-last 1x1
driver against the serial one."""

from __future__ import annotations

import numpy as np
import pytest

from fixtrace.kernels.cpu.conv import (
    conv_backtrack,
    conv_backtrack_parallel,
    depthwise_backtrack_recomputed,
    pointwise_backtrack,
)
from fixtrace.kernels.cpu.sets import merge_dense, merge_duplicates
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
            src.reshape(-1),
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


def _pointwise_both(x: np.ndarray, w: np.ndarray, groups: int = 1, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(channels-last driver, serial driver) on every output position of a 1x1 conv."""
    out = (x.shape[2] - 1) // stride + 1, (x.shape[3] - 1) // stride + 1
    g = conv_geometry(x.shape, w.shape, out, groups, (stride, stride), (0, 0), (1, 1))
    index = np.arange(x.shape[0] * w.shape[0] * out[0] * out[1], dtype=np.int64)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1)
    fast = pointwise_backtrack(channels_last, w.reshape(-1), index, g)
    return fast, conv_backtrack(x.reshape(-1), w.reshape(-1), index, g, LOCATION_ARGMAX)


@pytest.mark.parametrize("groups, stride", [(1, 1), (1, 2), (4, 1)])
@pytest.mark.parametrize("data", ["random", "relu", "whole"])
def test_pointwise_driver_equals_serial(groups, stride, data):
    rng = np.random.default_rng(groups + 10 * stride)
    x = rng.standard_normal((2, 48, 9, 9))
    if data == "relu":
        x = np.maximum(x, 0)  # zeros, and -0.0 products among them: ties in both precisions
    elif data == "whole":
        x = rng.integers(-2, 3, x.shape)  # small whole numbers: exact ties everywhere
    w = rng.integers(-2, 3, (40, 48 // groups, 1, 1)) if data == "whole" else rng.standard_normal((40, 48 // groups, 1, 1))
    fast, serial = _pointwise_both(x.astype(np.float32), w.astype(np.float32), groups, stride)
    np.testing.assert_array_equal(fast, serial)


def test_pointwise_driver_settles_float32_ties_in_float64():
    """Products equal in float32 but not exactly: the exact argmax is a later channel, which the
    first float32 maximum would miss. Overflow (inf in float32, finite in float64) and NaN too.
    Case k is output channel k at input column k."""
    one_ulp = np.float32(1 + 2**-23)
    x = np.ones((1, 6, 1, 4), dtype=np.float32)
    w = np.ones((4, 6, 1, 1), dtype=np.float32)
    # Case 0: channel 0 is exactly 1 + 2**-22, channel 3 is (1 + 2**-23)**2 = 1 + 2**-22 + 2**-46,
    # both 1 + 2**-22 in float32.
    x[0, 0, 0, 0], x[0, 3, 0, 0], w[0, 3] = np.float32(1 + 2**-22), one_ulp, one_ulp
    # Case 1: 1e30 * 1e30 overflows float32 in channels 1 and 4; channel 4 is larger in float64.
    x[0, 1, 0, 1], x[0, 4, 0, 1], w[1, 1], w[1, 4] = 1e30, 2e30, 1e30, 1e30
    # Case 2: a NaN first product keeps channel 0, as the serial driver's first-on-ties loop does.
    x[0, 0, 0, 2], x[0, 5, 0, 2] = np.nan, 5.0
    # Case 3: a NaN later is never the maximum.
    x[0, 2, 0, 3], x[0, 5, 0, 3] = np.nan, 5.0
    fast, serial = _pointwise_both(x, w)
    np.testing.assert_array_equal(fast, serial)
    diagonal = fast.reshape(4, 4)[np.arange(4), np.arange(4)]  # output (m, column m)
    assert list(diagonal // 4) == [3, 4, 0, 5]  # their input channels (H = 1, W = 4)


def test_pointwise_driver_equals_serial_on_special_values():
    """The channel search runs on integer order keys: signed zeros, infinities and NaNs of
    either sign (the sign bit of a NaN flips its key) land where the float compares put them."""
    rng = np.random.default_rng(7)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45], dtype=np.float32)
    x = rng.standard_normal((2, 24, 5, 5)).astype(np.float32)
    picks = rng.random(x.shape) < 0.15
    x[picks] = rng.choice(specials, int(picks.sum()))
    w = rng.integers(-1, 2, (16, 24, 1, 1)).astype(np.float32)
    fast, serial = _pointwise_both(x, w)
    np.testing.assert_array_equal(fast, serial)


@pytest.mark.parametrize("n, space", [(50, 10**3), (5000, 32 * 401408), (40000, 2**40), (3000, 2**61)])
def test_sorting_merge_equals_a_stable_argsort(n, space):
    """Small sets (quicksort), large ones (radix, several digit passes) and indices too large for
    position keys (stable argsort): the same indices and bit-identical sums in input order."""
    rng = np.random.default_rng(n)
    index = rng.integers(0, space, n, dtype=np.int64)
    index[: n // 3] = index[n // 3 : 2 * (n // 3)]  # many copies
    counts = rng.choice([1e-17, 1.0, 3.0, 1e16], n) * rng.random(n)
    order = np.argsort(index, kind="stable")
    unique, first = np.unique(index[order], return_index=True)
    got = merge_duplicates(index, counts)
    np.testing.assert_array_equal(got[0], unique)
    assert got[1].tobytes() == np.array([_in_order(c) for c in np.split(counts[order], first[1:])]).tobytes()


def _in_order(values: np.ndarray) -> float:
    """Left-to-right float64 sum (numpy's reduce may pair terms)."""
    total = 0.0
    for v in values:
        total += float(v)
    return total


def test_dense_merge_equals_the_sorting_merge():
    """Same indices and bit-identical sums: the copies of an index are added in input order
    (counts of very different sizes make the order visible)."""
    rng = np.random.default_rng(3)
    index = rng.integers(0, 500, 4000).astype(np.int64)
    counts = rng.choice([1e-17, 1.0, 3.0, 1e16], index.size) * rng.random(index.size)
    dense, sorted_ = merge_dense(index, counts, 600), merge_duplicates(index, counts)
    np.testing.assert_array_equal(dense[0], sorted_[0])
    assert dense[1].tobytes() == sorted_[1].tobytes()
