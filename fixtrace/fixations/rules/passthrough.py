"""Element-wise ops that keep every index: a fixation passes through unchanged."""

from __future__ import annotations

from fixtrace.fixations.rules.geometry import broadcast_table
from fixtrace.fixations.registry import Rule, rule


@rule(
    "Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "Softplus", "Mish", "Gelu", "BatchNormalization", "LRN", "Dropout", "Identity", "Cast",
)
class PassThrough(Rule):
    """Fixations on the output are fixations on the data input, same indices."""

    def backtrack(self, fixations, tensors):
        return [(self.node.inputs[0], fixations)]


class OneComputedOperand(Rule):
    """An element-wise op with one computed operand, the others constants (bias, scale).

    The fixation moves to the computed operand, through numpy broadcasting if its shape differs.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.computed = [t for t in node.inputs if not graph.is_constant(t)]
        self.routes = tuple(self.computed)

    def backtrack(self, fixations, tensors):
        name = self.computed[0]
        out_shape = tensors.shape(self.node.outputs[0])
        in_shape = tensors.shape(name)
        if in_shape == out_shape:
            return [(name, fixations)]
        return [(name, fixations.with_index(tensors.backend.remap(fixations.index, broadcast_table(out_shape, in_shape))))]


@rule("Mul", "Sub", "Div")
class ScaleShift(OneComputedOperand):
    """x * s, x - s, x / s with s constant (BatchNorm lowered by tf2onnx): pass-through."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if len(self.computed) != 1:
            raise self.unsupported(f"{node.op_type} of {len(self.computed)} computed tensors; one operand must be a constant")
