"""Pools and mean reductions."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fixtrace.fixations.rules.geometry import pool_kernel, window
from fixtrace.gradients.registry import VjpRule, vjp_rule


class _WindowVjp(VjpRule):
    """Shared set-up of the 2-D pools: kernel, and the padded canvas every window fits in."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.kernel = pool_kernel(node)
        if self.kernel is None:
            raise self.unsupported("only 2-D pooling is handled")
        self.routes = (node.inputs[0],)

    def geometry(self, tensors, grad_shape):
        """(input shape, window, canvas height, canvas width)."""
        shape = tensors.shape(self.node.inputs[0])
        win = window(self.node, self.kernel, shape[2:], grad_shape[2:])
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        height = max(pt + shape[2], (grad_shape[2] - 1) * sh + (kh - 1) * dh + 1)
        width = max(pl + shape[3], (grad_shape[3] - 1) * sw + (kw - 1) * dw + 1)
        return shape, win, height, width


@vjp_rule("MaxPool")
class MaxPoolVjp(_WindowVjp):
    """Each output's gradient goes to its window's maximum (the first in raster order, as torch does)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = (node.inputs[0],)

    def vjp(self, grad, tensors):
        x = tensors.value(self.node.inputs[0])
        (b, c, h, w), win, height, width = self.geometry(tensors, grad.shape)
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        oh, ow = grad.shape[2:]
        canvas = np.full((b, c, height, width), -np.inf, dtype=np.float32)
        canvas[:, :, pt:pt + h, pl:pl + w] = x
        span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        windows = sliding_window_view(canvas, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow, ::dh, ::dw]
        best = windows.reshape(b, c, oh, ow, kh * kw).argmax(axis=-1)
        rows = np.arange(oh)[:, None] * sh + (best // kw) * dh - pt
        cols = np.arange(ow)[None, :] * sw + (best % kw) * dw - pl
        flat = ((np.arange(b)[:, None, None, None] * c + np.arange(c)[None, :, None, None]) * h + rows) * w + cols
        dx = np.zeros(b * c * h * w, dtype=np.float32)
        np.add.at(dx, flat.ravel(), grad.ravel())
        return [(self.node.inputs[0], dx.reshape(b, c, h, w))]


@vjp_rule("AveragePool")
class AveragePoolVjp(_WindowVjp):
    """Each output's gradient is shared equally by its window's cells: divided by the kernel
    area (count_include_pad=1, padding cells inside the declared pads counted) or by the
    number of cells inside the input (count_include_pad=0)."""

    def vjp(self, grad, tensors):
        (b, c, h, w), win, height, width = self.geometry(tensors, grad.shape)
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        oh, ow = grad.shape[2:]
        # Cells that count: inside the input, or inside input + pads when padding counts.
        if self.node.attr("count_include_pad", 0):
            pb, pr = (int(p) for p in self.node.attr("pads", [0, 0, 0, 0])[2:])
            lo_h, hi_h, lo_w, hi_w = -pt, h + pb, -pl, w + pr
        else:
            lo_h, hi_h, lo_w, hi_w = 0, h, 0, w
        rows = np.arange(oh)[:, None] * sh - pt + np.arange(kh)[None, :] * dh  # (oh, kh) input rows
        cols = np.arange(ow)[:, None] * sw - pl + np.arange(kw)[None, :] * dw
        count = ((rows >= lo_h) & (rows < hi_h)).sum(1)[:, None] * ((cols >= lo_w) & (cols < hi_w)).sum(1)[None, :]
        share = grad / np.maximum(count, 1)[None, None]
        canvas = np.zeros((b, c, height, width), dtype=np.float32)
        for i in range(kh):
            for j in range(kw):
                canvas[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += share
        return [(self.node.inputs[0], canvas[:, :, pt:pt + h, pl:pl + w])]


@vjp_rule("GlobalAveragePool", "ReduceMean")
class MeanVjp(VjpRule):
    """The gradient spread evenly over the reduced axes."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        if node.op_type == "GlobalAveragePool":
            self.axes, self.keepdims = None, True
        else:
            axes = node.attr("axes")
            if axes is None and len(node.inputs) > 1 and node.inputs[1]:
                axes = self.constant(1).tolist()
            self.axes = None if axes is None else [int(a) for a in axes]
            self.keepdims = bool(node.attr("keepdims", 1))
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        shape = tensors.shape(self.node.inputs[0])
        rank = len(shape)
        if self.axes is None:
            axes = list(range(2, rank)) if self.node.op_type == "GlobalAveragePool" else list(range(rank))
        else:
            axes = sorted(a % rank for a in self.axes)
        kept = [1 if k in axes else n for k, n in enumerate(shape)]
        size = int(np.prod([shape[a] for a in axes]))
        return [(self.node.inputs[0], np.broadcast_to(grad.reshape(kept) / size, shape).astype(np.float32))]
