"""The rule registries (fixation, gradient) and the op-trait table, filled by the op modules.

Every module of the ``fixtrace.ops`` package is imported (found with pkgutil) the first time a
registry is asked anything: adding an op is adding one module there. An op module registers its
rule classes with ``FIXATIONS.register`` / ``GRADIENTS.register`` and may declare
``TRAITS = {op_type: {trait, ...}}`` (see ``fixtrace.ops.traits``).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from fixtrace.errors import ModelError, UnsupportedOpError

if TYPE_CHECKING:  # the layer graph's model checks ask for traits: no import cycle at run time
    from fixtrace.model.layer_graph import LayerGraph, Node
    from fixtrace.ops.base import FixationRule, VjpRule

R = TypeVar("R")


class _Prepared(Protocol):
    """What ``rules_below`` reads of a prepared rule."""

    node: Node
    routes: tuple[str, ...]


P = TypeVar("P", bound=_Prepared)

#: The package whose modules are the op families.
OPS_PACKAGE = "fixtrace.ops"
#: Modules of OPS_PACKAGE that hold shared machinery, not op families.
SHARED_MODULES = frozenset({"attributes", "base", "geometry", "registry", "traits"})
DEFAULT_DOMAINS = ("", "ai.onnx")


class Registry(Generic[R]):
    """Rule classes of one kind, by op type.

    Args:
        kind: what the rules compute, for messages ("fixation", "gradient").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._rules: dict[str, type[R]] = {}

    def register(self, *op_types: str) -> Callable[[type[R]], type[R]]:
        """Class decorator registering a rule for the given ONNX op types.

        Raises:
            RuntimeError: an op type already has a rule of this kind.
        """

        def add(cls: type[R]) -> type[R]:
            for op in op_types:
                if op in self._rules:
                    raise RuntimeError(f"two {self.kind} rules for {op}: {self._rules[op].__name__} and {cls.__name__}")
                self._rules[op] = cls
            return cls

        return add

    def unregister(self, *op_types: str) -> None:
        """Forget the rules of ``op_types`` (absent ones are ignored)."""
        for op in op_types:
            self._rules.pop(op, None)

    def rule_for(self, node: Node) -> type[R]:
        """The rule class for ``node``.

        Raises:
            UnsupportedOpError: no rule handles the node's op type.
        """
        load()
        cls = self._rules.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        if cls is None:
            raise UnsupportedOpError(node.op_type, node.name, self.supported(), domain=node.domain)
        return cls

    def supported(self, where: Callable[[type[R]], bool] | None = None) -> list[str]:
        """Every op type with a rule (whose class ``where`` accepts, when given), sorted."""
        load()
        return sorted(op for op, cls in self._rules.items() if where is None or where(cls))


FIXATIONS: Registry[FixationRule] = Registry("fixation")
GRADIENTS: Registry[VjpRule] = Registry("gradient")
#: Op type -> its traits, merged from every op module's TRAITS.
OP_TRAITS: dict[str, frozenset[str]] = {}
_loaded: set[str] = set()


def load() -> None:
    """Import every op module of OPS_PACKAGE once (registering its rules and traits)."""
    package = importlib.import_module(OPS_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in SHARED_MODULES and info.name not in _loaded:
            _loaded.add(info.name)  # before the import: a module asking a registry must not load itself twice
            try:
                add_traits(importlib.import_module(f"{OPS_PACKAGE}.{info.name}"))
            except BaseException:
                _loaded.discard(info.name)
                raise


def add_traits(module) -> None:
    """Merge ``module.TRAITS`` into OP_TRAITS.

    Raises:
        ValueError: an unknown trait name, or an op whose traits another module already declared.
    """
    from fixtrace.ops.traits import TRAIT_NAMES

    for op, traits in getattr(module, "TRAITS", {}).items():
        unknown = set(traits) - set(TRAIT_NAMES)
        if unknown:
            raise ValueError(f"{module.__name__} gives {op} unknown traits {sorted(unknown)}; known: {sorted(TRAIT_NAMES)}")
        if op in OP_TRAITS:
            raise ValueError(f"{module.__name__} declares traits of {op} a second time")
        OP_TRAITS[op] = frozenset(traits)


@contextlib.contextmanager
def registered(module_name: str) -> Iterator[object]:
    """Import an op module outside the package (a plug-in, a test's toy op) for the duration of
    a ``with`` block: its rules and traits are registered on entry and removed on exit.

    Args:
        module_name: an importable module written like the modules of ``fixtrace.ops``.

    Yields:
        The imported module.
    """
    load()
    before = {registry: set(registry._rules) for registry in (FIXATIONS, GRADIENTS)}
    sys.modules.pop(module_name, None)
    module = importlib.import_module(module_name)
    try:
        add_traits(module)
        yield module
    finally:
        for registry, ops in before.items():
            registry.unregister(*(set(registry._rules) - ops))
        for op in getattr(module, "TRAITS", {}):
            OP_TRAITS.pop(op, None)
        sys.modules.pop(module_name, None)


def rules_below(graph: LayerGraph, top: str, make: Callable[[Node], P], bottom: str | None = None) -> list[P]:
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
    prepared: dict[str, P] = {}
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
