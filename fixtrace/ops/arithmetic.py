"""Add, Sum, Sub, Mul, Div with numpy broadcasting: residual sums follow the larger summand
(winner takes all); a constant scale or shift passes fixations through."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.ops.base import OneComputedOperand, VjpRule, fixation_rule, vjp_rule
from fixtrace.ops.geometry import broadcast_table, unbroadcast

_MERGE = {"spatial"}
TRAITS = {"Add": _MERGE, "Sum": _MERGE, "Mul": _MERGE}


@fixation_rule("Add", "Sum")
class AddWinner(OneComputedOperand):
    """Follow the summand with the larger value at each fixation.

    With one computed operand (a bias add) the fixation passes through. Ties go to the
    shortcut: the operand computed earliest in the graph.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) > 1:
            order = {t: (graph.producer[t].order if t in graph.producer else -1) for t in self.computed}
            self.computed.sort(key=order.__getitem__)
            self.needs = tuple(self.computed)

    def backtrack(self, fixations, tensors):
        if len(self.computed) == 1:
            return super().backtrack(fixations, tensors)
        backend = tensors.backend
        out_shape = tensors.shape(self.node.outputs[0])
        maps = [
            fixations.index
            if tensors.shape(t) == out_shape
            else backend.remap(fixations.index, broadcast_table(out_shape, tensors.shape(t)))
            for t in self.computed
        ]
        chosen = backend.winner([(tensors.flat(t), m) for t, m in zip(self.computed, maps)])
        return [
            (name, backend.compact(FixationSet(backend.select(maps[k], chosen, k), fixations.count)))
            for k, name in enumerate(self.computed)
        ]


@fixation_rule("Mul", "Sub", "Div")
class ScaleShift(OneComputedOperand):
    """x * s, x - s, x / s with s constant (BatchNorm lowered by tf2onnx): pass-through."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) != 1:
            raise self.unsupported(f"{node.op_type} of {len(self.computed)} computed tensors; one operand must be a constant")


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
        return [
            (name, unbroadcast(part, tensors.shape(name)).astype(np.float32))
            for name, part in zip(self.node.inputs, parts)
            if name in self.routes
        ]
