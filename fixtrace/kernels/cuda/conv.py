"""Conv backtrack kernels (CUDA)."""

from __future__ import annotations

from numba import cuda

from fixtrace.kernels.cuda.launch import per_item
from fixtrace.kernels.shared.conv import conv_one, depthwise_recomputed_one


@cuda.jit
def _conv_backtrack(xf, wf, out_index, g, location, result):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = conv_one(xf, wf, out_index[f], g, location)


@cuda.jit
def _depthwise_backtrack_recomputed(
    src, src_w, src_bias, sg, low, high, wf, out_index, g, location, result
):  # pragma: no cover - numba
    f = cuda.grid(1)
    if f < out_index.size:
        result[f] = depthwise_recomputed_one(src, src_w, src_bias, sg, low, high, wf, out_index[f], g, location)


def conv_backtrack(xf, wf, out_index, g, location):
    """Device twin of ``kernels.cpu.conv.conv_backtrack``: one thread per fixation."""
    return per_item(_conv_backtrack, out_index.size, xf, wf, out_index, g, location)


def depthwise_backtrack_recomputed(src, src_w, src_bias, sg, low, high, wf, out_index, g, location):
    """Device twin of ``kernels.cpu.conv.depthwise_backtrack_recomputed``."""
    return per_item(
        _depthwise_backtrack_recomputed,
        out_index.size,
        src,
        src_w,
        src_bias,
        sg,
        float(low),
        float(high),
        wf,
        out_index,
        g,
        location,
    )
