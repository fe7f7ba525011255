"""A registry of per-op rule classes keyed by ONNX op type, shared by every rule set
(fixations, gradients): adding an op is adding one small class with a decorator."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from fixtrace.errors import ModelError, UnsupportedOpError
from fixtrace.model.layer_graph import LayerGraph, Node

R = TypeVar("R")


class Registry(Generic[R]):
    """Rule classes of one kind, by op type.

    Args:
        kind: what the rules compute, for messages ("fixation", "gradient").
        rules_package: the package whose import registers every rule (imported lazily, so
            that rule modules may import the registry).
    """

    def __init__(self, kind: str, rules_package: str) -> None:
        self.kind = kind
        self.rules_package = rules_package
        self._rules: dict[str, type[R]] = {}

    def register(self, *op_types: str) -> Callable[[type[R]], type[R]]:
        """Class decorator registering a rule for the given ONNX op types."""

        def add(cls: type[R]) -> type[R]:
            for op in op_types:
                if op in self._rules:
                    raise RuntimeError(f"two {self.kind} rules for {op}: {self._rules[op].__name__} and {cls.__name__}")
                self._rules[op] = cls
            return cls

        return add

    def rule_for(self, node: Node) -> type[R]:
        """The rule class for ``node``.

        Raises:
            UnsupportedOpError: no rule handles the node's op type.
        """
        self.supported()
        cls = self._rules.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if cls is None:
            raise UnsupportedOpError(node.op_type, node.name, self.supported(), domain=node.domain)
        return cls

    def supported(self) -> list[str]:
        """Every op type with a rule, sorted."""
        importlib.import_module(self.rules_package)
        return sorted(self._rules)


def rules_below(graph: LayerGraph, top: str, make: Callable[[Node], R], bottom: str | None = None) -> list[R]:
    """One prepared rule per node that ``top`` depends on through the rules' ``routes``, down to
    the image input (or to ``bottom``), in reverse topological order (consumers before producers).

    Only the inputs a rule routes to are followed: nodes that merely compute a Reshape target
    or a Clip bound are never visited, so they need no rule.

    Args:
        graph: the layer graph.
        top: the tensor the walk starts from.
        make: node -> its prepared rule (which has ``node`` and ``routes``).
        bottom: a tensor to stop at instead of the image input (its producer gets no rule).

    Raises:
        ModelError: ``top`` is not computed, or does not depend on the image input (or ``bottom``).
        UnsupportedOpError: from ``make``, for a node without a rule.
    """
    first = graph.producer.get(top)
    if first is None:
        raise ModelError(f"output {top!r} is not computed by any node")
    prepared: dict[str, R] = {}
    frontier = [first]
    while frontier:
        node = frontier.pop()
        if node.name in prepared:
            continue
        prepared[node.name] = make(node)
        frontier.extend(graph.producer[t] for t in prepared[node.name].routes if t in graph.producer and t != bottom)
    end = bottom or graph.image_input.name
    if not any(end in r.routes for r in prepared.values()):
        what = f"tensor {bottom!r}" if bottom else f"the image input {end!r}"
        raise ModelError(f"output {top!r} does not depend on {what}")
    return sorted(prepared.values(), key=lambda r: -r.node.order)
