"""Backward rules keyed by ONNX op type: adding an op is adding one small rule class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from fixtrace.errors import UnsupportedOpError
from fixtrace.model.registry import Registry

if TYPE_CHECKING:
    from fixtrace.fixations.fixation_set import FixationSet
    from fixtrace.fixations.options import FixationOptions
    from fixtrace.runtime.tensors import Tensors
    from fixtrace.model.layer_graph import LayerGraph, Node

class Rule:
    """Base of every backward rule; one instance is prepared per node, attributes read once.

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

    def __init__(self, node: "Node", graph: "LayerGraph", options: "FixationOptions") -> None:
        self.node = node
        self.needs: tuple[str, ...] = ()
        self.reads: tuple[str, ...] = ()
        self.routes: tuple[str, ...] = (node.inputs[0],)

    def check(self, tensors: "Tensors") -> None:
        """Refuse (``raise self.unsupported(...)``) a configuration only the run's shapes reveal;
        called once per model, before any walk. The base accepts everything."""

    def backtrack(self, fixations: "FixationSet", tensors: "Tensors") -> Iterable[tuple[str, "FixationSet"]]:
        """Map fixations on the node's first output to fixations on its inputs.

        Args:
            fixations: fixations on ``node.outputs[0]``.
            tensors: values and shapes of the current run.

        Returns:
            (input tensor name, fixations on it) pairs; constants never appear.
        """
        raise NotImplementedError

    def unsupported(self, detail: str) -> UnsupportedOpError:
        """An error saying this node's configuration is not handled."""
        return UnsupportedOpError(self.node.op_type, self.node.name, supported_ops(), detail, self.node.domain)


FIXATION_RULES: Registry[Rule] = Registry("fixation", "fixtrace.fixations.rules")
#: Class decorator registering a fixation rule for ONNX op types.
rule = FIXATION_RULES.register
#: The fixation rule class for a node (raises UnsupportedOpError).
rule_for = FIXATION_RULES.rule_for
#: Every op type that has a fixation rule, sorted.
supported_ops = FIXATION_RULES.supported
