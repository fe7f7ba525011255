"""Fully connected layers."""

from __future__ import annotations

import numpy as np

from fixtrace.gradients.registry import VjpRule, vjp_rule


@vjp_rule("Gemm", "MatMul")
class DenseVjp(VjpRule):
    """y = alpha * a @ W (+ bias): da = alpha * dy @ W.T; the weight must be a constant."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        if node.attr("transA", 0):
            raise self.unsupported("transA=1")
        w = np.asarray(self.constant(1), dtype=np.float32)
        if w.ndim != 2:
            raise self.unsupported(f"a rank-{w.ndim} weight; only a 2-D weight matrix is handled")
        w = w.T if node.attr("transB", 0) else w
        self.back = np.ascontiguousarray(float(node.attr("alpha", 1.0)) * w.T, dtype=np.float32)
        if len(node.inputs) > 2 and node.inputs[2] and not graph.is_constant(node.inputs[2]):
            raise self.unsupported("a computed bias; only a constant bias is handled")
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad @ self.back)]
