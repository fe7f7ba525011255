"""Fully connected layers (Gemm, MatMul with a constant weight)."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.registry import Rule, rule

# Ops that only re-index a tensor: looking through them finds what a dense layer really reads.
_REINDEX = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout"}


@rule("Gemm", "MatMul")
class DenseRule(Rule):
    """Every input with a positive contribution, or, when the input is a flattened feature
    map (VGG fc6 <- pool5), only the largest contribution per selected output."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        data, weight = node.inputs[0], node.inputs[1]
        if graph.is_constant(data) or not graph.is_constant(weight):
            raise self.unsupported("the second operand must be a constant weight and the first computed")
        if node.attr("transA", 0):
            raise self.unsupported("transA=1")
        w = graph.constants[weight]
        if w.ndim != 2:
            raise self.unsupported(f"a rank-{w.ndim} weight; only a 2-D weight matrix is handled")
        alpha = float(node.attr("alpha", 1.0))
        self.weights = np.ascontiguousarray(alpha * (w.T if node.attr("transB", 0) else w), dtype=np.float32)
        self.flat_weights = self.weights.reshape(-1)
        self.source = data
        while self.source in graph.producer and graph.producer[self.source].op_type in _REINDEX:
            self.source = graph.producer[self.source].inputs[0]
        self.needs = (data,)

    def check(self, tensors):
        shape = tensors.shape(self.node.inputs[0])
        if len(shape) != 2:
            raise self.unsupported(f"a rank-{len(shape)} input; only (batch, features) is handled")

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        shape = tensors.shape(name)
        backend = tensors.backend
        n_in, n_out = self.weights.shape
        a, w = tensors.flat(name), backend.constant(self.flat_weights)
        # A feature map has at least two non-batch dims > 1 (channels and space, either layout).
        if sum(d > 1 for d in tensors.shape(self.source)[1:]) >= 2:
            return [(name, fixations.with_index(backend.dense_argmax(a, w, fixations.index, n_in, n_out)))]
        return [(name, backend.dense_positive(a, w, fixations, shape[0], n_in, n_out))]
