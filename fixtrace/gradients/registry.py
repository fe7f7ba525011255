"""The gradient rule base class and its registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fixtrace.errors import UnsupportedOpError
from fixtrace.model.registry import Registry

if TYPE_CHECKING:
    from fixtrace.runtime.tensors import Tensors
    from fixtrace.model.layer_graph import LayerGraph, Node

#: How ReLU-like rules pass gradients back: ``plain`` (the true gradient), ``guided`` (only
#: positive gradients through positive inputs: guided backprop) or ``deconvnet`` (only positive
#: gradients, whatever the input).
RELU_MODES = ("plain", "guided", "deconvnet")


class VjpRule:
    """Base of every gradient rule; one instance per node, attributes read once.

    Subclasses set ``needs`` (the tensors whose values ``vjp`` reads) in ``__init__`` and
    implement ``vjp``. ``routes`` are the computed inputs, which receive gradients.

    Args:
        node: the node this rule serves.
        graph: the layer graph.
        mode: one of RELU_MODES (only ReLU-like rules look at it).

    Raises:
        UnsupportedOpError: this node's configuration is not handled.
    """

    def __init__(self, node: "Node", graph: "LayerGraph", mode: str) -> None:
        self.node = node
        self.graph = graph
        self.mode = mode
        self.needs: tuple[str, ...] = ()
        self.routes: tuple[str, ...] = tuple(t for t in node.inputs if t and not graph.is_constant(t))

    def vjp(self, grad: np.ndarray, tensors: "Tensors") -> list[tuple[str, np.ndarray]]:
        """Gradients of the computed inputs, given the gradient of the node's first output.

        Args:
            grad: d(score)/d(output), the output's shape.
            tensors: the run's values and shapes.

        Returns:
            (input name, its gradient) pairs, for computed inputs only.
        """
        raise NotImplementedError

    def constant(self, k: int) -> np.ndarray:
        """Input ``k`` as a constant array.

        Raises:
            UnsupportedOpError: it is computed.
        """
        name = self.node.inputs[k]
        if not self.graph.is_constant(name):
            raise self.unsupported(f"input {k} ({name!r}) must be a constant")
        return self.graph.constants[name]

    def unsupported(self, detail: str) -> UnsupportedOpError:
        """An error saying this node's configuration is not handled."""
        return UnsupportedOpError(self.node.op_type, self.node.name, GRADIENT_RULES.supported(), detail, self.node.domain)


GRADIENT_RULES: Registry[VjpRule] = Registry("gradient", "fixtrace.gradients.rules")
#: Class decorator registering a gradient rule for ONNX op types.
vjp_rule = GRADIENT_RULES.register


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (the inverse of numpy broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    summed = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and summed.shape[k] != 1)
    return (summed.sum(axis=axes, keepdims=True) if axes else summed).reshape(shape)
