"""Ops that merge branches: residual Add/Sum (winner takes all) and Concat (route by slice)."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.rules.geometry import broadcast_table
from fixtrace.fixations.rules.passthrough import OneComputedOperand
from fixtrace.fixations.registry import rule


@rule("Add", "Sum")
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
        maps = [fixations.index if tensors.shape(t) == out_shape
                else backend.remap(fixations.index, broadcast_table(out_shape, tensors.shape(t))) for t in self.computed]
        chosen = backend.winner([(tensors.flat(t), m) for t, m in zip(self.computed, maps)])
        return [(name, backend.compact(FixationSet(backend.select(maps[k], chosen, k), fixations.count)))
                for k, name in enumerate(self.computed)]


@rule("Concat")
class ConcatRoute(OneComputedOperand):
    """Send each fixation to the input whose slice holds it, index re-based."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.axis = int(node.attr("axis", 1))

    def backtrack(self, fixations, tensors):
        out_shape = tensors.shape(self.node.outputs[0])
        axis = self.axis % len(out_shape)
        inner = int(np.prod(out_shape[axis + 1:], dtype=np.int64))
        offset = 0
        sent = []
        for name in self.node.inputs:
            size = tensors.shape(name)[axis]
            if name in self.computed:
                index = tensors.backend.route(fixations.index, inner, out_shape[axis], offset, size)
                sent.append((name, tensors.backend.compact(FixationSet(index, fixations.count, fixations.unique))))
            offset += size
        return sent
