"""Ops that merge branches: residual Add/Sum (winner takes all) and Concat (route by slice)."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import broadcast_index
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
        out_shape = tensors.shape(self.node.outputs[0])
        maps = [broadcast_index(fixations.index, out_shape, tensors.shape(t)) for t in self.computed]
        values = np.stack([tensors.value(t).reshape(-1)[m] for t, m in zip(self.computed, maps)])
        winner = np.argmax(values, axis=0)  # first maximum: the shortcut on ties
        sent = []
        for k, name in enumerate(self.computed):
            chosen = winner == k
            if chosen.any():
                sent.append((name, type(fixations)(maps[k][chosen], fixations.count[chosen])))
        return sent


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
        along = out_shape[axis]
        sizes = np.array([tensors.shape(t)[axis] for t in self.node.inputs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        position = (fixations.index // inner) % along
        outer = fixations.index // (inner * along)
        source = np.searchsorted(offsets, position, side="right") - 1
        sent = []
        for k, name in enumerate(self.node.inputs):
            chosen = source == k
            if not chosen.any() or name not in self.computed:
                continue
            index = (outer[chosen] * sizes[k] + position[chosen] - offsets[k]) * inner + fixations.index[chosen] % inner
            sent.append((name, type(fixations)(index, fixations.count[chosen], unique=True)))
        return sent
