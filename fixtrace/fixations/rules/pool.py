"""Pools: a window's argmax (max and average pools alike) and a channel's spatial argmax."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import window
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.cpu.pool import global_argmax, pool_argmax


@rule("MaxPool", "AveragePool")
class WindowArgmax(Rule):
    """(c, r, q) -> (c, the input cell of the window with the largest activation).

    The authors treat average pooling like max pooling.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        kernel = node.attr("kernel_shape")
        if kernel is None or len(kernel) != 2:
            raise self.unsupported("only 2-D pooling is handled")
        self.kernel = tuple(int(k) for k in kernel)
        self.needs = (node.inputs[0],)

    def backtrack(self, fixations, tensors):
        x = tensors.value(self.node.inputs[0])
        out_shape = tensors.shape(self.node.outputs[0])
        win = window(self.node, self.kernel, x.shape[2:], out_shape[2:])
        index = pool_argmax(x, fixations.index, out_shape[2], out_shape[3], win.kernel, win.strides, win.pads, win.dilations)
        return [(self.node.inputs[0], fixations.with_index(index))]


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

    def backtrack(self, fixations, tensors):
        x = tensors.value(self.node.inputs[0])
        axes = tuple(sorted(a % x.ndim for a in self.axes)) if self.axes is not None else ()
        if x.ndim != 4 or len(axes) != 2 or 0 in axes:
            raise self.unsupported(f"reduction over axes {self.axes} of a rank-{x.ndim} tensor; only two spatial axes of a rank-4 map")
        kept = tuple(a for a in range(4) if a not in axes)
        order = kept + axes
        moved = x if order == (0, 1, 2, 3) else np.ascontiguousarray(x.transpose(order))
        # The output keeps (batch, channel) in the same order whether or not keepdims is set.
        index = global_argmax(moved, fixations.index)
        if order != (0, 1, 2, 3):
            coords = np.unravel_index(index, moved.shape)
            original = [None] * 4
            for k, axis in enumerate(order):
                original[axis] = coords[k]
            index = np.ravel_multi_index(original, x.shape).astype(np.int64)
        return [(self.node.inputs[0], fixations.with_index(index))]
