"""The backward walk: from a class neuron to fixations on the image input."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.head import reads_global_pool
from fixtrace.fixations.options import FixationOptions
from fixtrace.fixations.recompute import ConvRecipe, find_recipe
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.outputs import find_logits
from fixtrace.ops.base import FixationRule
from fixtrace.ops.registry import FIXATIONS, rules_below
from fixtrace.runtime.tensors import Tensors
from fixtrace.runtime.threads import map_in_threads


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
        options: walk options (``auto`` choices are resolved from the model's head).
        output: graph output to explain (default: the first).
        logits: the class-score tensor itself (instead of ``output``).
        shapes: static tensor shapes, when known (they help tell the model's head: ``reads_global_pool``).

    Raises:
        UnsupportedOpError: a node on the path has no rule.
        ModelError: the logits do not depend on the image input.
    """

    def __init__(
        self,
        graph: LayerGraph,
        options: FixationOptions | None = None,
        output: str | None = None,
        logits: str | None = None,
        shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.graph = graph
        self.logits = logits or find_logits(graph, output)
        #: Whether the class scores read a global pool (else a flattened map): what ``auto`` options follow.
        self.pooled_head = reads_global_pool(graph, self.logits, shapes)
        self.options = (options or FixationOptions()).resolved(self.pooled_head)
        self.rules: list[FixationRule] = rules_below(
            graph, self.logits, lambda node: FIXATIONS.rule_for(node)(node, graph, self.options)
        )
        self.needs: set[str] = {t for r in self.rules for t in r.needs}
        # Tensors read at a few positions only are recomputed from a kept conv input when they can be.
        self.recipes: dict[str, ConvRecipe] = {}
        for name in sorted({t for r in self.rules for t in r.reads} - self.needs):
            recipe = find_recipe(graph, name)
            if recipe is not None and (recipe.source in self.needs or recipe.source == graph.image_input.name):
                self.recipes[name] = recipe
            else:
                self.needs.add(name)
        self.touched: set[str] = {
            t for r in self.rules for t in (*r.node.inputs, *r.node.outputs) if t and not graph.is_constant(t)
        }

    def check(self, tensors: Tensors) -> None:
        """Check every rule against the shapes of a real run, before any walk.

        Raises:
            UnsupportedOpError: a node whose configuration only its shapes reveal is not handled.
        """
        for r in self.rules:
            r.check(tensors)

    def run(self, start: FixationSet, tensors: Tensors, workers: int = 1) -> BacktrackResult:
        """Walk from fixations on the logits to fixations on the image input.

        Args:
            start: fixations on the logits tensor (flat indices, batch included), made by
                ``tensors.backend.start``.
            tensors: values and shapes of the run.
            workers: threads to share the batch's photos among, on a backend whose kernels
                release the GIL (``Backend.splits_items``). Every rule keeps the photos of a batch
                apart, so the result is the same, bit for bit, for any number.

        Returns:
            Fixations per tensor and on the input.
        """
        groups = self._item_groups(start, tensors, workers)
        if len(groups) < 2:
            return self._walk(start, tensors)
        serial = tensors.backend.serial()  # no parallel kernels inside the threads
        parts = map_in_threads(
            lambda group: self._walk(group[2], tensors.for_items(group[0], group[1], serial)), groups, len(groups)
        )
        return self._joined(parts)

    def _walk(self, start: FixationSet, tensors: Tensors) -> BacktrackResult:
        """``run`` on one thread."""
        backend = tensors.backend
        pending: dict[str, list[FixationSet]] = {self.logits: [start]}
        result = BacktrackResult()
        for r in self.rules:
            output = r.node.outputs[0]
            arriving = pending.pop(output, None)
            if not arriving:
                continue
            fixations = backend.union(arriving, math.prod(tensors.shape(output)))
            result.per_tensor[output] = fixations
            for name, sent in r.backtrack(fixations, tensors):
                if len(sent):
                    pending.setdefault(name, []).append(sent)
        image = self.graph.image_input.name
        arrived = pending.get(image, [])
        result.input = backend.union(arrived, math.prod(tensors.shape(image))) if arrived else backend.start([])
        result.per_tensor[image] = result.input
        return result

    def _item_groups(self, start: FixationSet, tensors: Tensors, workers: int) -> list[tuple[int, int, FixationSet]]:
        """``start`` cut into at most ``workers`` sets of whole photos, in batch order, each with
        its photos' range (first, end); one set when the backend cannot share them out or there
        is one photo."""
        if workers < 2 or not tensors.backend.splits_items or len(start) < 2:
            return [(0, 0, start)]
        start = start.merged()
        item = start.index // math.prod(tensors.shape(self.logits)[1:])
        photos = np.unique(item)
        if photos.size < 2:
            return [(0, 0, start)]
        ranges = [(int(part[0]), int(part[-1]) + 1) for part in np.array_split(photos, min(workers, photos.size))]
        cuts = np.searchsorted(item, [first for first, _ in ranges[1:]])
        return [
            (first, end, FixationSet(index, count, unique=True))
            for (first, end), index, count in zip(ranges, np.split(start.index, cuts), np.split(start.count, cuts))
        ]

    def _joined(self, parts: list[BacktrackResult]) -> BacktrackResult:
        """The walks of consecutive groups of photos as one walk's result (tensors in walk order)."""
        order = [r.node.outputs[0] for r in self.rules] + [self.graph.image_input.name]
        result = BacktrackResult()
        for name in dict.fromkeys(order):
            sets = [part.per_tensor[name] for part in parts if name in part.per_tensor]
            if sets:
                result.per_tensor[name] = (
                    sets[0]
                    if len(sets) == 1
                    else FixationSet(
                        np.concatenate([s.index for s in sets]), np.concatenate([s.count for s in sets]), unique=True
                    )
                )
        result.input = result.per_tensor[self.graph.image_input.name]
        return result
