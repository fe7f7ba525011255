"""Pure index maps: reshapes keep flat indices; Transpose permutes them; Pad shifts them."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.registry import Rule, rule


@rule("Flatten", "Reshape", "Squeeze", "Unsqueeze")
class SameOrder(Rule):
    """Row-major reshapes do not move elements: the flat index is unchanged."""

    def backtrack(self, fixations, tensors):
        return [(self.node.inputs[0], fixations)]


@rule("Transpose")
class TransposeMap(Rule):
    """Output element at coords c sits at input coords c permuted back."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.perm = node.attr("perm")

    def backtrack(self, fixations, tensors):
        in_shape = tensors.shape(self.node.inputs[0])
        perm = self.perm if self.perm is not None else list(reversed(range(len(in_shape))))
        out_shape = tuple(in_shape[p] for p in perm)
        coords = np.unravel_index(fixations.index, out_shape)
        original = [None] * len(perm)
        for k, axis in enumerate(perm):
            original[axis] = coords[k]
        index = np.ravel_multi_index(original, in_shape).astype(np.int64)
        return [(self.node.inputs[0], fixations.with_index(index))]


@rule("Pad")
class PadShift(Rule):
    """Shift by the leading pads; fixations in a constant-padded border go nowhere,
    edge/reflect/wrap borders map to the input cell they copy."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.mode = node.attr("mode", "constant")
        pads = node.attr("pads")
        if pads is None:
            if len(node.inputs) < 2 or not graph.is_constant(node.inputs[1]):
                raise self.unsupported("the pads are computed, not constant")
            pads = graph.constants[node.inputs[1]].tolist()
        axes = None
        if len(node.inputs) > 3 and node.inputs[3]:
            if not graph.is_constant(node.inputs[3]):
                raise self.unsupported("the padded axes are computed, not constant")
            axes = [int(a) for a in graph.constants[node.inputs[3]].tolist()]
        self.pads = [int(p) for p in pads]
        self.axes = axes

    def backtrack(self, fixations, tensors):
        in_shape = tensors.shape(self.node.inputs[0])
        rank = len(in_shape)
        axes = [a % rank for a in self.axes] if self.axes is not None else list(range(rank))
        begin = np.zeros(rank, dtype=np.int64)
        begin[axes] = self.pads[: len(axes)]
        out_shape = tensors.shape(self.node.outputs[0])
        coords = [c - b for c, b in zip(np.unravel_index(fixations.index, out_shape), begin)]
        keep = np.ones(fixations.index.size, dtype=bool)
        for k, n in enumerate(in_shape):
            if self.mode == "constant":
                keep &= (coords[k] >= 0) & (coords[k] < n)
            elif self.mode == "edge":
                coords[k] = np.clip(coords[k], 0, n - 1)
            elif self.mode == "wrap":
                coords[k] = coords[k] % n
            else:  # reflect
                period = max(2 * (n - 1), 1)
                c = np.abs(coords[k]) % period
                coords[k] = np.where(c >= n, period - c, c)
        index = np.ravel_multi_index([c[keep] for c in coords], in_shape).astype(np.int64)
        return [(self.node.inputs[0], type(fixations)(index, fixations.count[keep]))]
