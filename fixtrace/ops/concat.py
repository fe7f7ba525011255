"""Concat: a fixation goes to the input whose slice holds it; the gradient is sliced back."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.ops.base import OneComputedOperand, VjpRule, fixation_rule, vjp_rule

TRAITS = {"Concat": {"spatial"}}


def concat_axis(rule, rank: int) -> int:
    """The rule's Concat axis, non-negative (required since opset 4, 1 by the older schema; read as 1 when missing)."""
    return int(rule.attr("axis", 1)) % rank


@fixation_rule("Concat")
class ConcatRoute(OneComputedOperand):
    """Send each fixation to the input whose slice holds it, index re-based."""

    def backtrack(self, fixations, tensors):
        out_shape = tensors.shape(self.node.outputs[0])
        axis = concat_axis(self, len(out_shape))
        inner = int(np.prod(out_shape[axis + 1 :], dtype=np.int64))
        offset = 0
        sent = []
        for name in self.node.inputs:
            size = tensors.shape(name)[axis]
            if name in self.computed:
                index = tensors.backend.route(fixations.index, inner, out_shape[axis], offset, size)
                sent.append((name, tensors.backend.compact(FixationSet(index, fixations.count, fixations.unique))))
            offset += size
        return sent


@vjp_rule("Concat")
class ConcatVjp(VjpRule):
    """Each computed input gets its slice of the gradient."""

    def vjp(self, grad, tensors):
        axis = concat_axis(self, grad.ndim)
        bounds = np.cumsum([0] + [tensors.shape(t)[axis] for t in self.node.inputs])
        return [
            (name, np.ascontiguousarray(np.take(grad, np.arange(bounds[k], bounds[k + 1]), axis=axis)))
            for k, name in enumerate(self.node.inputs)
            if name in self.routes
        ]

    def emit(self, builder, grad):
        axis = concat_axis(self, len(builder.shape(self.node.outputs[0])))
        bounds = np.cumsum([0] + [builder.shape(t)[axis] for t in self.node.inputs])
        return [
            (name, builder.slice(grad, [int(bounds[k])], [int(bounds[k + 1])], [axis]))
            for k, name in enumerate(self.node.inputs)
            if name in self.routes
        ]
