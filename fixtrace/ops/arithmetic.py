"""Add, Sum, Sub, Mul, Div, Max, Min with numpy broadcasting: residual sums follow the larger
summand (winner takes all), as Max follows the operand it took; a constant scale, shift or bound
passes fixations through."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.ops.base import OneComputedOperand, VjpRule, fixation_rule, vjp_rule
from fixtrace.ops.geometry import broadcast_table, unbroadcast

_MERGE = {"spatial"}
TRAITS = {op: _MERGE for op in ("Add", "Sum", "Sub", "Mul", "Div", "Max", "Min")}


@fixation_rule("Add", "Sum", "Max")
class AddWinner(OneComputedOperand):
    """Follow the summand with the larger value at each fixation (Max: the operand it took).

    With one computed operand (a bias add, a lower bound: jax's hard_swish writes
    Max(x + 3, 0)) the fixation passes through. Ties go to the shortcut: the operand computed
    earliest in the graph.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) > 1:
            self.computed = _earliest_first(graph, self.computed)
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
    """x * s, x - s, x / s with s constant (BatchNorm lowered by tf2onnx): pass-through.

    A Mul of two computed tensors is a gate: a squeeze-and-excitation block's per-channel weights
    (MobileNetV3, EfficientNet) or Swish's sigmoid(x). The paper has no rule for it; the fixation
    follows the feature map, the operand of the output's full shape, and treats the gate as a
    weight: the gate was computed from that same map (pooled, or point by point), so the map
    holds the evidence and where it is, while a pooled gate has no location to give. When both
    operands have the full shape (Swish), the one computed earliest is the map.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) != 1 and (node.op_type != "Mul" or len(self.computed) != 2):
            raise self.unsupported(f"{node.op_type} of {len(self.computed)} computed tensors; one operand must be a constant")
        self.computed = _earliest_first(graph, self.computed)

    def check(self, tensors):
        if len(self.computed) == 2 and self._feature_map(tensors) is None:
            raise self.unsupported("a product of two computed tensors neither of which has the output's shape")

    def backtrack(self, fixations, tensors):
        if len(self.computed) == 1:
            return super().backtrack(fixations, tensors)
        return [(self._feature_map(tensors), fixations)]

    def _feature_map(self, tensors) -> str | None:
        """The first computed operand with the output's shape (None: neither has it)."""
        out_shape = tensors.shape(self.node.outputs[0])
        return next((t for t in self.computed if tensors.shape(t) == out_shape), None)


@fixation_rule("Min")
class UpperBound(OneComputedOperand):
    """Min(x, c) with c constant (an upper bound, as in jax's hard_swish): pass-through."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) != 1:
            raise self.unsupported(f"Min of {len(self.computed)} computed tensors; only a constant bound is handled")


def _earliest_first(graph, names: list[str]) -> list[str]:
    """Computed tensors ordered by their producers' topological order (graph inputs first)."""
    return sorted(names, key=lambda t: graph.producer[t].order if t in graph.producer else -1)


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

    def emit(self, builder, grad):
        out_shape = builder.shape(self.node.outputs[0])
        sent = []
        for k, name in enumerate(self.node.inputs):
            if name in self.routes:
                g = builder.op("Neg", [grad], "negated") if self.node.op_type == "Sub" and k == 1 else grad
                sent.append((name, builder.unbroadcast(g, out_shape, builder.shape(name))))
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

    def emit(self, builder, grad):
        a, b = self.node.inputs[:2]
        out_shape = builder.shape(self.node.outputs[0])
        sent = []
        for k, name in enumerate((a, b)):
            if name not in self.routes:
                continue
            if self.node.op_type == "Mul":
                part = builder.op("Mul", [grad, (b, a)[k]], "grad")
            elif k == 0:
                part = builder.op("Div", [grad, b], "grad")
            else:
                scaled = builder.op("Mul", [builder.op("Neg", [grad], "negated"), a], "grad")
                part = builder.op("Div", [scaled, builder.op("Mul", [b, b], "square")], "grad")
            sent.append((name, builder.unbroadcast(part, out_shape, builder.shape(name))))
        return sent


@vjp_rule("Max", "Min")
class ExtremeVjp(VjpRule):
    """The gradient goes to the operand the output took (the first in input order on ties)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = tuple(t for t in node.inputs if not graph.is_constant(t))

    def vjp(self, grad, tensors):
        values = [_value(self, tensors, k) for k in range(len(self.node.inputs))]
        pick = np.maximum if self.node.op_type == "Max" else np.minimum
        out = np.broadcast_to(pick.reduce(np.broadcast_arrays(*values)), grad.shape)
        taken = np.zeros(grad.shape, dtype=bool)
        sent = []
        for name, value in zip(self.node.inputs, values):
            mine = (np.broadcast_to(value, grad.shape) == out) & ~taken
            taken |= mine
            if name in self.routes:
                sent.append((name, unbroadcast(np.where(mine, grad, 0), tensors.shape(name)).astype(np.float32)))
        return sent

    def emit(self, builder, grad):
        # An operand is at the output's value unless it is past it (every operand is <= a max):
        # Equal reads floats only from opset 11.
        out = self.node.outputs[0]
        out_shape = builder.shape(out)
        past = "Less" if self.node.op_type == "Max" else "Greater"
        taken, sent = None, []
        for k, name in enumerate(self.node.inputs):
            at = builder.op("Not", [builder.op(past, [name, out], "past")], "at_extreme")
            mine = at if taken is None else builder.op("And", [at, builder.op("Not", [taken], "untaken")], "mine")
            if k + 1 < len(self.node.inputs):
                taken = at if taken is None else builder.op("Or", [taken, at], "taken")
            if name in self.routes:
                sent.append((name, builder.unbroadcast(builder.masked(grad, mine), out_shape, builder.shape(name))))
        return sent
