"""Add, Sum, Sub, Mul, Div with numpy broadcasting."""

from __future__ import annotations

import numpy as np

from fixtrace.gradients.registry import VjpRule, unbroadcast, vjp_rule


def _value(rule: VjpRule, tensors, k: int) -> np.ndarray:
    name = rule.node.inputs[k]
    return rule.graph.constants[name] if rule.graph.is_constant(name) else tensors.value(name)


@vjp_rule("Add", "Sum", "Sub")
class SumVjp(VjpRule):
    """Every summand gets the gradient (negated for Sub's second operand), summed down to its shape."""

    def vjp(self, grad, tensors):
        sent = []
        for k, name in enumerate(self.node.inputs):
            if name in self.routes:
                g = -grad if self.node.op_type == "Sub" and k == 1 else grad
                sent.append((name, unbroadcast(g, tensors.shape(name)).astype(np.float32)))
        return sent


@vjp_rule("Mul", "Div")
class ProductVjp(VjpRule):
    """d(a * b) = b da + a db; d(a / b) = da / b - a db / b^2."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = tuple(t for t in node.inputs if not graph.is_constant(t))

    def vjp(self, grad, tensors):
        a, b = _value(self, tensors, 0), _value(self, tensors, 1)
        if self.node.op_type == "Mul":
            parts = (grad * b, grad * a)
        else:
            parts = (grad / b, -grad * a / (b * b))
        return [(name, unbroadcast(part, tensors.shape(name)).astype(np.float32))
                for name, part in zip(self.node.inputs, parts) if name in self.routes]
