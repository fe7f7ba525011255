"""Fully connected layers (Gemm, MatMul with a constant weight)."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.cpu.dense import dense_argmax, dense_positive

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
        self.source = data
        while self.source in graph.producer and graph.producer[self.source].op_type in _REINDEX:
            self.source = graph.producer[self.source].inputs[0]
        self.needs = (data,)

    def backtrack(self, fixations, tensors):
        a = tensors.value(self.node.inputs[0])
        if a.ndim != 2:
            raise self.unsupported(f"a rank-{a.ndim} input; only (batch, features) is handled")
        source_shape = tensors.shape(self.source)
        # A feature map has at least two non-batch dims > 1 (channels and space, either layout).
        if sum(d > 1 for d in source_shape[1:]) >= 2:
            index = dense_argmax(a, self.weights, fixations.index)
            return [(self.node.inputs[0], fixations.with_index(index))]
        index, count = dense_positive(a, self.weights, fixations.index, fixations.count)
        return [(self.node.inputs[0], FixationSet(index, count, unique=True))]
