"""Pools: a window's argmax (max and average pools alike) and a channel's spatial argmax."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import pool_kernel, window
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.shared.pool import pool_geometry


@rule("MaxPool", "AveragePool")
class WindowArgmax(Rule):
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
        win = window(self.node, self.kernel, in_shape[2:], out_shape[2:])
        g = pool_geometry(in_shape, out_shape[2:], win.kernel, win.strides, win.pads, win.dilations)
        return [(name, fixations.with_index(tensors.backend.pool_argmax(tensors.flat(name), fixations.index, g)))]


@rule("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax")
class GlobalArgmax(Rule):
    """Channel k -> (k, the spatial argmax of channel k); any two reduced axes of a rank-4 map."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if node.op_type.startswith("Global"):
            self.axes: tuple[int, ...] | None = (2, 3)
        else:
            axes = node.attr("axes")
            if axes is None and len(node.inputs) > 1 and node.inputs[1]:
                if not graph.is_constant(node.inputs[1]):
                    raise self.unsupported("the reduced axes are computed, not constant")
                axes = graph.constants[node.inputs[1]].tolist()
            self.axes = None if axes is None else tuple(int(a) for a in axes)
        self.needs = (node.inputs[0],)

    def _axes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        rank = len(shape)
        axes = tuple(sorted(a % rank for a in self.axes)) if self.axes is not None else ()
        if rank != 4 or len(axes) != 2 or 0 in axes:
            raise self.unsupported(f"reduction over axes {self.axes} of a rank-{rank} tensor; only two spatial axes of a rank-4 map")
        return axes

    def check(self, tensors):
        self._axes(tensors.shape(self.node.inputs[0]))

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        shape = tensors.shape(name)
        axes = self._axes(shape)
        # The output keeps (batch, channel) in the same order whether or not keepdims is set.
        (channel_axis,) = (a for a in (1, 2, 3) if a not in axes)
        strides = [int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(4)]
        g = (shape[channel_axis], shape[axes[0]], shape[axes[1]], strides[0], strides[channel_axis], strides[axes[0]],
             strides[axes[1]])
        return [(name, fixations.with_index(tensors.backend.global_argmax(tensors.flat(name), fixations.index, g)))]
