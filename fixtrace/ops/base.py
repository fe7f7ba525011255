"""The rule bases: a fixation rule maps fixations back through a node, a VJP rule gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from fixtrace.errors import UnsupportedOpError
from fixtrace.ops.attributes import attribute
from fixtrace.ops.geometry import broadcast_table
from fixtrace.ops.registry import FIXATIONS, GRADIENTS

if TYPE_CHECKING:
    from fixtrace.compile.builder import GraphBuilder
    from fixtrace.fixations.fixation_set import FixationSet
    from fixtrace.fixations.options import FixationOptions
    from fixtrace.model.layer_graph import LayerGraph, Node
    from fixtrace.runtime.tensors import Tensors

#: How ReLU-like rules pass gradients back: ``plain`` (the true gradient), ``guided`` (only
#: positive gradients through positive inputs: guided backprop) or ``deconvnet`` (only positive
#: gradients, whatever the input).
RELU_MODES = ("plain", "guided", "deconvnet")


class NodeRule:
    """What both kinds of rule share: the node, the model's opset, attributes with schema defaults."""

    kind = ""

    def __init__(self, node: Node, graph: LayerGraph) -> None:
        self.node = node
        self.opset: int = graph.opset

    def attr(self, name: str, fallback: Any = None) -> Any:
        """The node's attribute ``name``, else the ONNX schema's default, else ``fallback``."""
        return attribute(self.node, name, self.opset, fallback)

    def unsupported(self, detail: str, supported: list[str] | None = None) -> UnsupportedOpError:
        """An error saying this node's configuration is not handled (``supported``: the op types
        to list instead of those with a rule of this kind)."""
        registry = FIXATIONS if self.kind == "fixation" else GRADIENTS
        listed = registry.supported() if supported is None else supported
        return UnsupportedOpError(self.node.op_type, self.node.name, listed, detail, self.node.domain)


class FixationRule(NodeRule):
    """Base of every fixation rule; one instance is prepared per node, attributes read once.

    Subclasses set in ``__init__``: ``needs``, the tensors whose whole value ``backtrack``
    reads; ``reads``, those it reads only at a few positions, which the plan may leave
    unkept when ``tensors.recipes`` can recompute them; and, when it is not just
    the first input, ``routes``, the inputs fixations can be sent to. Then implement ``backtrack``.

    Args:
        node: the node this rule serves.
        graph: the layer graph (for weights and neighbours).
        options: the walk's options.

    Raises:
        UnsupportedOpError: the op type has a rule but this node's configuration does not.
    """

    kind = "fixation"

    def __init__(self, node: Node, graph: LayerGraph, options: FixationOptions) -> None:
        super().__init__(node, graph)
        self.options = options
        self.needs: tuple[str, ...] = ()
        self.reads: tuple[str, ...] = ()
        self.routes: tuple[str, ...] = (node.inputs[0],)

    def check(self, tensors: Tensors) -> None:
        """Refuse (``raise self.unsupported(...)``) a configuration only the run's shapes reveal;
        called once per model, before any walk. The base accepts everything."""

    def backtrack(self, fixations: FixationSet, tensors: Tensors) -> Iterable[tuple[str, FixationSet]]:
        """Map fixations on the node's first output to fixations on its inputs.

        Args:
            fixations: fixations on ``node.outputs[0]``.
            tensors: values and shapes of the current run.

        Returns:
            (input tensor name, fixations on it) pairs; constants never appear.
        """
        raise NotImplementedError


class PassThrough(FixationRule):
    """Fixations on the output are fixations on the data input, same indices (element-wise ops)."""

    def backtrack(self, fixations, tensors):
        return [(self.node.inputs[0], fixations)]


class OneComputedOperand(FixationRule):
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


class VjpRule(NodeRule):
    """Base of every gradient rule; one instance per node, attributes read once.

    Subclasses set ``needs`` (the tensors whose values ``vjp`` reads) in ``__init__`` and
    implement ``vjp``, and ``emit``, its ONNX form (``fixtrace compile``), beside it.
    ``routes`` are the computed inputs, which receive gradients.

    Args:
        node: the node this rule serves.
        graph: the layer graph.
        mode: one of RELU_MODES (only ReLU-like rules look at it).

    Raises:
        UnsupportedOpError: this node's configuration is not handled.
    """

    kind = "gradient"

    def __init__(self, node: Node, graph: LayerGraph, mode: str) -> None:
        super().__init__(node, graph)
        self.graph = graph
        self.mode = mode
        self.needs: tuple[str, ...] = ()
        self.routes: tuple[str, ...] = tuple(t for t in node.inputs if t and not graph.is_constant(t))

    def vjp(self, grad: np.ndarray, tensors: Tensors) -> list[tuple[str, np.ndarray]]:
        """Gradients of the computed inputs, given the gradient of the node's first output.

        Args:
            grad: d(score)/d(output), the output's shape.
            tensors: the run's values and shapes.

        Returns:
            (input name, its gradient) pairs, for computed inputs only.
        """
        raise NotImplementedError

    def emit(self, builder: GraphBuilder, grad: str) -> list[tuple[str, str]]:
        """The ONNX form of ``vjp``: nodes added to ``builder`` that compute the same gradients
        from the run's tensors, read by name from the model's own graph.

        Args:
            builder: where the nodes go (static shapes, unique names, opset-aware helpers).
            grad: the name of d(score)/d(output), the output's shape.

        Returns:
            (input name, the name of its gradient) pairs, for computed inputs only.

        Raises:
            UnsupportedOpError: the op, or this configuration of it, has no ONNX form.
        """
        raise self.unsupported("its gradient has no ONNX form for `fixtrace compile` yet", compilable())

    @classmethod
    def emits(cls) -> bool:
        """Whether the rule has an ONNX form (``emit``)."""
        return cls.emit is not VjpRule.emit

    def constant(self, k: int) -> np.ndarray:
        """Input ``k`` as a constant array.

        Raises:
            UnsupportedOpError: it is computed.
        """
        name = self.node.inputs[k]
        if not self.graph.is_constant(name):
            raise self.unsupported(f"input {k} ({name!r}) must be a constant")
        return self.graph.constants[name]


class DataVjp(VjpRule):
    """A rule whose only route is the data input (the others are constants: weights, bounds)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.routes = (node.inputs[0],)


class ElementwiseVjp(DataVjp):
    """dx = dy * f'(x), reading the data input; subclasses implement ``derivative``."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.needs = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], (grad * self.derivative(tensors.value(self.node.inputs[0]))).astype(np.float32))]

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """f'(x), element-wise."""
        raise NotImplementedError

    def emit(self, builder, grad):
        x = self.node.inputs[0]
        return [(x, builder.op("Mul", [grad, self.emit_derivative(builder, x)], "grad"))]

    def emit_derivative(self, builder: GraphBuilder, x: str) -> str:
        """The ONNX form of ``derivative``: the name of f'(x), computed from tensor ``x``.

        Raises:
            UnsupportedOpError: no ONNX form.
        """
        raise self.unsupported("its gradient has no ONNX form for `fixtrace compile` yet", compilable())

    @classmethod
    def emits(cls) -> bool:
        return cls.emit is not ElementwiseVjp.emit or cls.emit_derivative is not ElementwiseVjp.emit_derivative


def compilable() -> list[str]:
    """Every op type whose gradient rule has an ONNX form, sorted."""
    return GRADIENTS.supported(lambda cls: cls.emits())


#: Class decorator registering a fixation rule for ONNX op types.
fixation_rule = FIXATIONS.register
#: Class decorator registering a gradient rule for ONNX op types.
vjp_rule = GRADIENTS.register
