"""The backward walk: from a class neuron to fixations on the image input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fixtrace.errors import ModelError
from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.options import FixationOptions
from fixtrace.fixations.recompute import ConvRecipe, find_recipe
from fixtrace.fixations.registry import Rule, rule_for
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.outputs import find_logits
from fixtrace.model.registry import rules_below

if TYPE_CHECKING:
    from fixtrace.backends.base import Backend



class Tensors:
    """Values and shapes of one run, handed to the rules in their backend's memory.

    Args:
        values: tensor name -> value, as returned by the session.
        shapes: tensor name -> static shape for this input shape.
        constants: the layer graph's constant tensors.
        recipes: how rules that read a few positions of an unkept tensor recompute them.
        backend: where the kernels run (default: the CPU).
    """

    def __init__(self, values: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], constants: dict[str, np.ndarray],
                 recipes: dict[str, ConvRecipe] | None = None, backend: "Backend | None" = None) -> None:
        self.values = values
        self.shapes = shapes
        self.constants = constants
        self.recipes = recipes or {}
        if backend is None:
            from fixtrace.backends.cpu import CpuBackend

            backend = CpuBackend()
        self.backend = backend
        self._placed: dict[tuple[str, str], Any] = {}

    def value(self, name: str) -> np.ndarray:
        """The host value of a tensor (a computed one that was kept, a constant, or the input)."""
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            return self.constants[name]
        raise ModelError(f"tensor {name!r} was not kept by the session; this is a fixtrace bug")

    def flat(self, name: str) -> Any:
        """A tensor's value as flat float32 in the backend's memory (placed once per run)."""
        key = (name, "flat")
        if key not in self._placed:
            self._placed[key] = self.backend.asarray(np.asarray(self.value(name), dtype=np.float32).reshape(-1))
        return self._placed[key]

    def channels_last(self, name: str) -> Any:
        """A rank-4 NCHW tensor as flat float32 NHWC in the backend's memory (placed once per run)."""
        key = (name, "nhwc")
        if key not in self._placed:
            value = np.asarray(self.value(name), dtype=np.float32).transpose(0, 2, 3, 1)
            self._placed[key] = self.backend.asarray(np.ascontiguousarray(value).reshape(-1))
        return self._placed[key]

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of a tensor in this run."""
        if name in self.values:
            return tuple(self.values[name].shape)
        if name in self.shapes:
            return self.shapes[name]
        if name in self.constants:
            return tuple(self.constants[name].shape)
        raise ModelError(f"the shape of tensor {name!r} is unknown; this is a fixtrace bug")


@dataclass
class BacktrackResult:
    """What one walk found.

    Attributes:
        per_tensor: fixations on every tensor the walk reached, from the logits down.
        input: fixations on the image input tensor.
    """

    per_tensor: dict[str, FixationSet] = field(default_factory=dict)
    input: FixationSet | None = None


class BacktrackPlan:
    """The rules of every node between the image input and the class logits, prepared once.

    Args:
        graph: the layer graph.
        options: walk options.
        output: graph output to explain (default: the first).

    Raises:
        UnsupportedOpError: a node on the path has no rule.
        ModelError: the logits do not depend on the image input.
    """

    def __init__(self, graph: LayerGraph, options: FixationOptions | None = None, output: str | None = None) -> None:
        self.graph = graph
        self.options = options or FixationOptions()
        self.logits = find_logits(graph, output)
        self.rules: list[Rule] = rules_below(graph, self.logits, lambda node: rule_for(node)(node, graph, self.options))
        self.needs: set[str] = {t for r in self.rules for t in r.needs}
        # Tensors read at a few positions only are recomputed from a kept conv input when they can be.
        self.recipes: dict[str, ConvRecipe] = {}
        for name in sorted({t for r in self.rules for t in r.reads} - self.needs):
            recipe = find_recipe(graph, name)
            if recipe is not None and (recipe.source in self.needs or recipe.source == graph.image_input.name):
                self.recipes[name] = recipe
            else:
                self.needs.add(name)
        self.touched: set[str] = {t for r in self.rules for t in (*r.node.inputs, *r.node.outputs) if t and not graph.is_constant(t)}

    def check(self, tensors: Tensors) -> None:
        """Check every rule against the shapes of a real run, before any walk.

        Raises:
            UnsupportedOpError: a node whose configuration only its shapes reveal is not handled.
        """
        for r in self.rules:
            r.check(tensors)

    def run(self, start: FixationSet, tensors: Tensors) -> BacktrackResult:
        """Walk from fixations on the logits to fixations on the image input.

        Args:
            start: fixations on the logits tensor (flat indices, batch included), made by
                ``tensors.backend.start``.
            tensors: values and shapes of the run.

        Returns:
            Fixations per tensor and on the input.
        """
        backend = tensors.backend
        pending: dict[str, list[FixationSet]] = {self.logits: [start]}
        result = BacktrackResult()
        for r in self.rules:
            arriving = pending.pop(r.node.outputs[0], None)
            if not arriving:
                continue
            fixations = backend.union(arriving)
            result.per_tensor[r.node.outputs[0]] = fixations
            for name, sent in r.backtrack(fixations, tensors):
                if len(sent):
                    pending.setdefault(name, []).append(sent)
        arrived = pending.get(self.graph.image_input.name, [])
        result.input = backend.union(arrived) if arrived else backend.start([])
        result.per_tensor[self.graph.image_input.name] = result.input
        return result
