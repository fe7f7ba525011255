"""Pools and reductions: fixations go to a window's argmax (max and average pools alike) or to
a channel's spatial argmax; gradients to the window's maximum, or shared over it."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto

from fixtrace.kernels.shared.pool import pool_geometry
from fixtrace.ops.base import DataVjp, FixationRule, NodeRule, fixation_rule, vjp_rule
from fixtrace.ops.geometry import pool_kernel, window

TRAITS = {
    "MaxPool": {"spatial", "channels_first", "windowed", "downsampling"},
    "AveragePool": {"spatial", "channels_first", "windowed", "downsampling"},
    # No rules; listed so that the model checks know their windows.
    "LpPool": {"channels_first", "windowed"},
    "GlobalAveragePool": {"channels_first"},
    "GlobalMaxPool": {"channels_first"},
    "MaxUnpool": {"windowed"},
}


def reduced_axes(rule: NodeRule, graph) -> tuple[int, ...] | None:
    """The axes a Global* pool or a Reduce* node reduces (None: the op's default, every axis).

    Raises:
        UnsupportedOpError: the axes are a computed input.
    """
    node = rule.node
    if node.op_type.startswith("Global"):
        return None
    axes = node.attr("axes")  # an attribute up to opset 17 (13 for ReduceSum), an input after
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        if not graph.is_constant(node.inputs[1]):
            raise rule.unsupported("the reduced axes are computed, not constant")
        axes = graph.constants[node.inputs[1]].tolist()
    return None if axes is None else tuple(int(a) for a in axes)


def resolve_axes(op_type: str, axes: tuple[int, ...] | None, rank: int) -> list[int]:
    """``reduced_axes`` made explicit for a rank-``rank`` input, sorted and non-negative."""
    if axes is None:
        return list(range(2, rank)) if op_type.startswith("Global") else list(range(rank))
    return sorted(a % rank for a in axes)


@fixation_rule("MaxPool", "AveragePool")
class WindowArgmax(FixationRule):
    """(c, r, q) -> (c, the input cell of the window with the largest activation).

    The authors treat average pooling like max pooling.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.kernel = pool_kernel(node)
        if self.kernel is None:
            raise self.unsupported("only 2-D pooling is handled")
        self.needs = (node.inputs[0],)

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        in_shape = tensors.shape(name)
        out_shape = tensors.shape(self.node.outputs[0])
        win = window(self.node, self.kernel, in_shape[2:], out_shape[2:], self.opset)
        g = pool_geometry(in_shape, out_shape[2:], win.kernel, win.strides, win.pads, win.dilations)
        return [(name, fixations.with_index(tensors.backend.pool_argmax(tensors.flat(name), fixations.index, g)))]


#: The global pools whose every cell counts in the output (the ``spread`` rule shares among them).
_AVERAGING = ("GlobalAveragePool", "ReduceMean", "ReduceSum")


#: Ops that reduce a whole map to one value per channel (global pools, reductions over rows and columns).
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum", "ReduceL2")


@fixation_rule(*GLOBAL_POOLS)
class GlobalArgmax(FixationRule):
    """Channel k -> (k, the spatial argmax of channel k); any two reduced axes of a rank-4 map.

    A sum pools like a mean (ReduceSum then a scale: global average pooling as some exporters
    write it); an L2 norm's largest term is the largest magnitude, so ReduceL2 takes the argmax of |x|.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.axes = (2, 3) if node.op_type.startswith("Global") else reduced_axes(self, graph)
        self.needs = (node.inputs[0],)

    def _axes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        rank = len(shape)
        axes = tuple(sorted(a % rank for a in self.axes)) if self.axes is not None else ()
        if rank != 4 or len(axes) != 2 or 0 in axes:
            raise self.unsupported(
                f"reduction over axes {self.axes} of a rank-{rank} tensor; only two spatial axes of a rank-4 map"
            )
        return axes

    def check(self, tensors):
        self._axes(tensors.shape(self.node.inputs[0]))

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        shape = tensors.shape(name)
        axes = self._axes(shape)
        # The output keeps (batch, channel) in the same order whether or not keepdims is set.
        (channel_axis,) = (a for a in (1, 2, 3) if a not in axes)
        strides = [math.prod(shape[a + 1 :]) for a in range(4)]
        g = (
            shape[channel_axis],
            shape[axes[0]],
            shape[axes[1]],
            strides[0],
            strides[channel_axis],
            strides[axes[0]],
            strides[axes[1]],
        )
        values = tensors.flat(name)
        if self.options.rule == "spread" and self.node.op_type in _AVERAGING:
            return [(name, tensors.backend.global_spread(values, fixations, g))]
        if self.node.op_type == "ReduceL2":
            values = tensors.backend.asarray(np.abs(np.asarray(tensors.value(name), dtype=np.float32)).reshape(-1))
        return [(name, fixations.with_index(tensors.backend.global_argmax(values, fixations.index, g)))]


class _WindowVjp(DataVjp):
    """Shared set-up of the 2-D pools: kernel, and the padded canvas every window fits in."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.kernel = pool_kernel(node)
        if self.kernel is None:
            raise self.unsupported("only 2-D pooling is handled")

    def geometry(self, shape: tuple[int, ...], grad_shape: tuple[int, ...]):
        """(input shape, window, canvas height, canvas width), given the input's and the output's shapes."""
        win = window(self.node, self.kernel, (shape[2], shape[3]), (grad_shape[2], grad_shape[3]), self.opset)
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
        (b, c, h, w), win, height, width = self.geometry(tensors.shape(self.node.inputs[0]), grad.shape)
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        oh, ow = grad.shape[2:]
        canvas = np.full((b, c, height, width), -np.inf, dtype=np.float32)
        canvas[:, :, pt : pt + h, pl : pl + w] = x
        span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        windows = sliding_window_view(canvas, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow, ::dh, ::dw]
        best = windows.reshape(b, c, oh, ow, kh * kw).argmax(axis=-1)
        rows = np.arange(oh)[:, None] * sh + (best // kw) * dh - pt
        cols = np.arange(ow)[None, :] * sw + (best % kw) * dw - pl
        flat = ((np.arange(b)[:, None, None, None] * c + np.arange(c)[None, :, None, None]) * h + rows) * w + cols
        dx = np.zeros(b * c * h * w, dtype=np.float32)
        np.add.at(dx, flat.ravel(), grad.ravel())
        return [(self.node.inputs[0], dx.reshape(b, c, h, w))]

    def emit(self, builder, grad):
        # Each window's cells are gathered tap by tap from a -inf canvas; the first tap (raster
        # order) equal to the window's max takes the gradient, which a grouped ConvTranspose with
        # one-hot kernels then sends back to that tap's input cell.
        x = self.node.inputs[0]
        out_shape = builder.shape(self.node.outputs[0])
        (_, c, h, w), win, height, width = self.geometry(builder.shape(x), out_shape)
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        oh, ow = out_shape[2:]
        canvas = x
        if (pt, pl, height, width) != (0, 0, h, w):
            canvas = builder.pad(x, [0, 0, pt, pl, 0, 0, height - pt - h, width - pl - w], -np.inf)
        taps = []
        for i in range(kh):
            rows = builder.op("Gather", [canvas, builder.const(np.arange(oh, dtype=np.int64) * sh + i * dh, "rows")], axis=2)
            for j in range(kw):
                cols = builder.const(np.arange(ow, dtype=np.int64) * sw + j * dw, "cols")
                taps.append(builder.op("Gather", [rows, cols], "tap", axis=3))
        top = builder.op("Max", taps, "window_max") if len(taps) > 1 else taps[0]
        taken, parts = None, []
        for k, tap in enumerate(taps):
            hit = builder.op("Not", [builder.op("Less", [tap, top], "below_max")], "at_max")
            first = hit if taken is None else builder.op("And", [hit, builder.op("Not", [taken], "untaken")], "first")
            if k + 1 < len(taps):
                taken = hit if taken is None else builder.op("Or", [taken, hit], "taken")
            parts.append(builder.unsqueeze(builder.masked(grad, first), [2]))
        stacked = builder.op("Concat", parts, "taps", axis=2) if len(parts) > 1 else parts[0]
        count = kh * kw
        flat = builder.op("Reshape", [stacked, builder.const(np.asarray([0, c * count, oh, ow], np.int64), "shape")], "taps")
        one_hot = np.tile(np.eye(count, dtype=np.float32).reshape(count, 1, kh, kw), (c, 1, 1, 1))
        back = builder.conv_transpose(
            flat, builder.const(one_hot, "one_hot"), c, self.kernel, win.strides, win.pads, win.dilations, (h, w), (oh, ow)
        )
        return [(x, back)]


@vjp_rule("AveragePool")
class AveragePoolVjp(_WindowVjp):
    """Each output's gradient is shared equally by its window's cells: divided by the kernel
    area (count_include_pad=1, padding cells inside the declared pads counted) or by the
    number of cells inside the input (count_include_pad=0)."""

    def counts(self, hw: tuple[int, ...], out_hw: tuple[int, ...], win) -> np.ndarray:
        """(oh, ow) int: the cells each window averages over."""
        (h, w), (oh, ow) = hw, out_hw
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        # Cells that count: inside the input, or inside input + pads when padding counts.
        if self.attr("count_include_pad"):
            pb, pr = (int(p) for p in self.attr("pads", [0, 0, 0, 0])[2:])
            lo_h, hi_h, lo_w, hi_w = -pt, h + pb, -pl, w + pr
        else:
            lo_h, hi_h, lo_w, hi_w = 0, h, 0, w
        rows = np.arange(oh)[:, None] * sh - pt + np.arange(kh)[None, :] * dh  # (oh, kh) input rows
        cols = np.arange(ow)[:, None] * sw - pl + np.arange(kw)[None, :] * dw
        count = ((rows >= lo_h) & (rows < hi_h)).sum(1)[:, None] * ((cols >= lo_w) & (cols < hi_w)).sum(1)[None, :]
        return np.maximum(count, 1)

    def vjp(self, grad, tensors):
        (b, c, h, w), win, height, width = self.geometry(tensors.shape(self.node.inputs[0]), grad.shape)
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = self.kernel, win.strides, win.pads, win.dilations
        oh, ow = grad.shape[2:]
        share = grad / self.counts((h, w), (oh, ow), win)[None, None]
        canvas = np.zeros((b, c, height, width), dtype=np.float32)
        for i in range(kh):
            for j in range(kw):
                canvas[:, :, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw] += share
        return [(self.node.inputs[0], canvas[:, :, pt : pt + h, pl : pl + w])]

    def emit(self, builder, grad):
        x = self.node.inputs[0]
        out_hw = builder.shape(self.node.outputs[0])[2:]
        (_, c, h, w), win, _, _ = self.geometry(builder.shape(x), builder.shape(self.node.outputs[0]))
        count = self.counts((h, w), out_hw, win)
        share = builder.op("Div", [grad, builder.const(count.astype(np.float32), "count")], "share")
        ones = builder.const(np.ones((c, 1, *self.kernel), np.float32), "ones")
        return [(x, builder.conv_transpose(share, ones, c, self.kernel, win.strides, win.pads, win.dilations, (h, w), out_hw))]


class _ReductionVjp(DataVjp):
    """Shared set-up of the global pools and reductions: the reduced axes and keepdims."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.axes = reduced_axes(self, graph)

    def kept_shape(self, shape: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """(the reduced axes, the input shape with those axes set to 1: the gradient's keepdims shape)."""
        axes = resolve_axes(self.node.op_type, self.axes, len(shape))
        return axes, [1 if k in axes else n for k, n in enumerate(shape)]


@vjp_rule("GlobalAveragePool", "ReduceMean", "ReduceSum")
class MeanVjp(_ReductionVjp):
    """The gradient copied over the reduced axes (divided by their size for a mean)."""

    def vjp(self, grad, tensors):
        shape = tensors.shape(self.node.inputs[0])
        axes, kept = self.kept_shape(shape)
        return [(self.node.inputs[0], np.broadcast_to(grad.reshape(kept) / self.size(shape, axes), shape).astype(np.float32))]

    def size(self, shape: tuple[int, ...], axes: list[int]) -> int:
        """What the gradient is divided by: the cells averaged (1 for a sum)."""
        return 1 if self.node.op_type == "ReduceSum" else int(np.prod([shape[a] for a in axes]))

    def emit(self, builder, grad):
        x = self.node.inputs[0]
        shape = builder.shape(x)
        axes, _ = self.kept_shape(shape)
        size = self.size(shape, axes)
        share = builder.op("Div", [grad, builder.scalar(size)], "share") if size != 1 else grad
        if not self.node.op_type.startswith("Global") and not self.attr("keepdims"):
            share = builder.unsqueeze(share, axes)
        return [(x, builder.op("Expand", [share, builder.shape_of(x)], "spread"))]


@vjp_rule("ReduceL2")
class L2Vjp(_ReductionVjp):
    """d ||x|| = x / ||x|| over each reduced slice (0 where the norm is 0, as torch gives)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = (node.inputs[0],)

    def vjp(self, grad, tensors):
        x = np.asarray(tensors.value(self.node.inputs[0]), dtype=np.float64)
        axes, kept = self.kept_shape(x.shape)
        norm = np.sqrt((x * x).sum(axis=tuple(axes), keepdims=True))
        share = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
        return [(self.node.inputs[0], (grad.reshape(kept) * share).astype(np.float32))]


@vjp_rule("GlobalMaxPool", "ReduceMax")
class MaxVjp(_ReductionVjp):
    """The gradient goes to the maximum of each reduced slice (the first in row-major order on ties,
    as torch's max pools do; ``torch.amax`` would share it among the ties)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = (node.inputs[0],)

    def vjp(self, grad, tensors):
        x = tensors.value(self.node.inputs[0])
        axes, _ = self.kept_shape(x.shape)
        others = [k for k in range(x.ndim) if k not in axes]
        # Reduced axes last and flattened: one argmax per slice.
        slices = np.transpose(x, others + axes).reshape(*(x.shape[k] for k in others), -1)
        best = slices.argmax(axis=-1)
        dx = np.zeros(slices.shape, dtype=np.float32)
        np.put_along_axis(dx, best[..., None], grad.reshape(best.shape)[..., None], axis=-1)
        return [(self.node.inputs[0], np.transpose(dx.reshape([x.shape[k] for k in others + axes]), np.argsort(others + axes)))]

    def emit(self, builder, grad):
        x = self.node.inputs[0]
        shape = builder.shape(x)
        axes, kept = self.kept_shape(shape)
        others = [k for k in range(len(shape)) if k not in axes]
        order = others + axes
        moved = builder.op("Transpose", [x], "moved", perm=order) if order != list(range(len(shape))) else x
        # Reduced axes flattened last (the kept ones copied: any batch size); ArgMax takes the first maximum.
        target = builder.const(np.asarray([0] * len(others) + [-1], np.int64), "shape")
        slices = builder.op("Reshape", [moved, target], "slices")
        best = builder.op("ArgMax", [slices], "best", axis=len(others), keepdims=1)
        cells = builder.const(np.arange(int(np.prod([shape[a] for a in axes])), dtype=np.int64), "cells")
        chosen = builder.op("Cast", [builder.op("Equal", [cells, best], "is_best")], "chosen", to=TensorProto.FLOAT)
        per_slice = builder.op("Reshape", [grad, builder.shape_of(best)], "grad")
        spread = builder.op("Reshape", [builder.op("Mul", [chosen, per_slice], "spread"), builder.shape_of(moved)], "spread")
        back = builder.op("Transpose", [spread], "back", perm=[int(p) for p in np.argsort(order)]) if moved != x else spread
        return [(x, back)]
