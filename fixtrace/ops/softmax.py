"""Softmax and LogSoftmax over one axis: gradients only (the fixation walk starts below them, at the logits)."""

from __future__ import annotations

import numpy as np

from fixtrace.ops.base import ElementwiseVjp, vjp_rule


@vjp_rule("Softmax", "LogSoftmax")
class SoftmaxVjp(ElementwiseVjp):
    """Softmax: dx = s * (dy - sum(dy * s)); LogSoftmax: dx = dy - s * sum(dy), over the axis."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        if graph.opset < 13:
            raise self.unsupported("opset < 13 Softmax (coerced to 2-D); only the single-axis form is handled")

    def vjp(self, grad, tensors):
        axis = int(self.attr("axis"))
        x = tensors.value(self.node.inputs[0]).astype(np.float64)
        s = np.exp(x - x.max(axis=axis, keepdims=True))
        s /= s.sum(axis=axis, keepdims=True)
        g = grad.astype(np.float64)
        if self.node.op_type == "Softmax":
            dx = s * (g - (g * s).sum(axis=axis, keepdims=True))
        else:
            dx = g - s * g.sum(axis=axis, keepdims=True)
        return [(self.node.inputs[0], dx.astype(np.float32))]
