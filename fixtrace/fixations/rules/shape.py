"""Pure index maps: reshapes keep flat indices; Transpose permutes them; Pad shifts them."""

from __future__ import annotations

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.registry import Rule, rule
from fixtrace.fixations.rules.geometry import remap_table
from fixtrace.kernels.shared.index import AXIS_CONSTANT, AXIS_EDGE, AXIS_KEEP, AXIS_REFLECT, AXIS_WRAP


@rule("Flatten", "Reshape", "Squeeze", "Unsqueeze")
class SameOrder(Rule):
    """Row-major reshapes do not move elements: the flat index is unchanged."""

    def backtrack(self, fixations, tensors):
        return [(self.node.inputs[0], fixations)]


@rule("Transpose")
class TransposeMap(Rule):
    """Output axis k is input axis perm[k]."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.perm = node.attr("perm")

    def backtrack(self, fixations, tensors):
        in_shape = tensors.shape(self.node.inputs[0])
        rank = len(in_shape)
        perm = [int(p) for p in self.perm] if self.perm is not None else list(reversed(range(rank)))
        table = remap_table(tensors.shape(self.node.outputs[0]), in_shape, perm, [0] * rank, [AXIS_KEEP] * rank)
        return [(self.node.inputs[0], fixations.with_index(tensors.backend.remap(fixations.index, table)))]


@rule("Pad")
class PadShift(Rule):
    """Shift by the leading pads; fixations in a constant-padded border go nowhere,
    edge/reflect/wrap borders map to the input cell they copy."""

    _MODES = {"constant": AXIS_CONSTANT, "edge": AXIS_EDGE, "wrap": AXIS_WRAP, "reflect": AXIS_REFLECT}

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        mode = node.attr("mode", "constant")
        if mode not in self._MODES:
            raise self.unsupported(f"pad mode {mode!r}")
        self.mode = self._MODES[mode]
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

    def table(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        """The remap table from output elements to the input elements they copy (-1: constant pad)."""
        rank = len(in_shape)
        axes = [a % rank for a in self.axes] if self.axes is not None else list(range(rank))
        begin = [0] * rank
        for k, a in enumerate(axes):
            begin[a] = self.pads[k]
        return remap_table(tuple(out_shape), tuple(in_shape), list(range(rank)), begin, [self.mode] * rank)

    def backtrack(self, fixations, tensors):
        table = self.table(tensors.shape(self.node.inputs[0]), tensors.shape(self.node.outputs[0]))
        index = tensors.backend.remap(fixations.index, table)
        return [(self.node.inputs[0], tensors.backend.compact(FixationSet(index, fixations.count)))]
