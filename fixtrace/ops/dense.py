"""Fully connected layers (Gemm, MatMul with a constant weight)."""

from __future__ import annotations

import numpy as np

from fixtrace.ops.base import FixationRule, NodeRule, VjpRule, fixation_rule, vjp_rule
from fixtrace.ops.traits import has_trait

TRAITS = {"Gemm": {"weighted", "linear"}, "MatMul": {"weighted", "linear"}}


def dense_matrix(rule: NodeRule, w: np.ndarray) -> np.ndarray:
    """The layer's alpha * W, shaped (inputs, outputs), float32, from its constant weight ``w``.

    Raises:
        UnsupportedOpError: transA=1, or a weight that is not 2-D.
    """
    gemm = rule.node.op_type == "Gemm"  # MatMul has none of Gemm's attributes
    if gemm and rule.attr("transA"):
        raise rule.unsupported("transA=1")
    if w.ndim != 2:
        raise rule.unsupported(f"a rank-{w.ndim} weight; only a 2-D weight matrix is handled")
    alpha = float(rule.attr("alpha")) if gemm else 1.0
    return np.ascontiguousarray(alpha * (w.T if gemm and rule.attr("transB") else w), dtype=np.float32)


@fixation_rule("Gemm", "MatMul")
class DenseRule(FixationRule):
    """Every input with a positive contribution, or, when the input is a flattened feature
    map (VGG fc6 <- pool5), only the largest contribution per selected output."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        data, weight = node.inputs[0], node.inputs[1]
        if graph.is_constant(data) or not graph.is_constant(weight):
            raise self.unsupported("the second operand must be a constant weight and the first computed")
        self.weights = dense_matrix(self, graph.constants[weight])
        self.flat_weights = self.weights.reshape(-1)
        # Looking through ops that only move elements finds what the layer really reads.
        self.source = data
        while self.source in graph.producer and any(has_trait(graph.producer[self.source], t) for t in ("reindex", "permute")):
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
        weighted = self.options.rule != "authors"
        return [(name, backend.dense_positive(a, w, fixations, shape[0], n_in, n_out, weighted))]


@vjp_rule("Gemm", "MatMul")
class DenseVjp(VjpRule):
    """y = alpha * a @ W (+ bias): da = alpha * dy @ W.T; the weight must be a constant."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.back = np.ascontiguousarray(dense_matrix(self, np.asarray(self.constant(1), dtype=np.float32)).T)
        if len(node.inputs) > 2 and node.inputs[2] and not graph.is_constant(node.inputs[2]):
            raise self.unsupported("a computed bias; only a constant bias is handled")
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad @ self.back)]

    def emit(self, builder, grad):
        data, weight = self.node.inputs[:2]
        if self.node.op_type == "MatMul":  # da = dy @ W.T
            return [(data, builder.op("MatMul", [grad, builder.op("Transpose", [weight], "weight_t", perm=[1, 0])], "grad"))]
        # y = alpha a @ op(B): da = alpha dy @ op(B).T, a Gemm with transB flipped; C is optional from opset 11.
        zero = [builder.scalar(0.0)] if builder.opset < 11 else []
        flip = 0 if self.attr("transB") else 1
        return [(data, builder.op("Gemm", [grad, weight, *zero], "grad", alpha=float(self.attr("alpha")), beta=0.0, transB=flip))]
