"""Pure index maps: reshapes keep flat indices; Transpose permutes them; Pad shifts them.
Gradients follow the same maps backwards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.kernels.cpu.index import remap
from fixtrace.kernels.shared.index import (
    AXIS_CONSTANT,
    AXIS_EDGE,
    AXIS_KEEP,
    AXIS_REFLECT,
    AXIS_WRAP,
)
from fixtrace.ops.base import (
    DataVjp,
    FixationRule,
    NodeRule,
    PassThrough,
    compilable,
    fixation_rule,
    vjp_rule,
)
from fixtrace.ops.geometry import remap_table

_RESHAPES = ("Flatten", "Reshape", "Squeeze", "Unsqueeze")
TRAITS = {**{op: {"reindex"} for op in _RESHAPES}, "Transpose": {"permute"}}


@fixation_rule(*_RESHAPES)
class SameOrder(PassThrough):
    """Row-major reshapes do not move elements: the flat index is unchanged."""


@vjp_rule(*_RESHAPES)
class ReshapeVjp(DataVjp):
    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad.reshape(tensors.shape(self.node.inputs[0])))]

    def emit(self, builder, grad):
        return [(self.node.inputs[0], builder.reshape_like(grad, self.node.inputs[0]))]


def _perm(rule, rank: int) -> list[int]:
    """Transpose's permutation (reversed axes by default, which the schema states only in prose)."""
    perm = rule.attr("perm")
    return [int(p) for p in perm] if perm is not None else list(reversed(range(rank)))


@fixation_rule("Transpose")
class TransposeMap(FixationRule):
    """Output axis k is input axis perm[k]."""

    def backtrack(self, fixations, tensors):
        in_shape = tensors.shape(self.node.inputs[0])
        rank = len(in_shape)
        table = remap_table(tensors.shape(self.node.outputs[0]), in_shape, _perm(self, rank), [0] * rank, [AXIS_KEEP] * rank)
        return [(self.node.inputs[0], fixations.with_index(tensors.backend.remap(fixations.index, table)))]


@vjp_rule("Transpose")
class TransposeVjp(DataVjp):
    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], np.ascontiguousarray(grad.transpose(np.argsort(_perm(self, grad.ndim)))))]

    def emit(self, builder, grad):
        back = np.argsort(_perm(self, len(builder.shape(self.node.inputs[0]))))
        return [(self.node.inputs[0], builder.op("Transpose", [grad], "transposed", perm=[int(p) for p in back]))]


_PAD_MODES = {"constant": AXIS_CONSTANT, "edge": AXIS_EDGE, "wrap": AXIS_WRAP, "reflect": AXIS_REFLECT}


@dataclass(frozen=True)
class PadMap:
    """Where each element of a Pad's output comes from.

    Attributes:
        mode: an AXIS_* border mode.
        pads: the leading pads then the trailing ones, per padded axis (None: read from ``source``).
        axes: the padded axes (None: every axis).
        source: the computed tensor holding the pads (torch's legacy exporter computes 'same'
            pads from Shape nodes), read from each run; "" when they are a constant.
    """

    mode: int
    pads: list[int] | None
    axes: list[int] | None
    source: str = ""

    @classmethod
    def of(cls, rule: NodeRule, graph) -> PadMap:
        """The map of ``rule``'s Pad node.

        Raises:
            UnsupportedOpError: an unknown mode, or computed axes.
        """
        node = rule.node
        mode = rule.attr("mode")
        if mode not in _PAD_MODES:
            raise rule.unsupported(f"pad mode {mode!r}")
        pads, source = node.attr("pads"), ""  # an attribute up to opset 10, an input after
        if pads is None:
            if graph.is_constant(node.inputs[1]):
                pads = [int(p) for p in graph.constants[node.inputs[1]].tolist()]
            else:
                source = node.inputs[1]
        axes = None
        if len(node.inputs) > 3 and node.inputs[3]:
            if not graph.is_constant(node.inputs[3]):
                raise rule.unsupported("the padded axes are computed, not constant")
            axes = [int(a) for a in graph.constants[node.inputs[3]].tolist()]
        return cls(_PAD_MODES[mode], pads, axes, source)

    def table(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], tensors) -> np.ndarray:
        """The remap table from output elements to the input elements they copy (-1: constant pad)."""
        pads = self.pads if self.pads is not None else [int(p) for p in np.asarray(tensors.value(self.source)).reshape(-1)]
        rank = len(in_shape)
        axes = [a % rank for a in self.axes] if self.axes is not None else list(range(rank))
        begin = [0] * rank
        for k, a in enumerate(axes):
            begin[a] = pads[k]
        return remap_table(tuple(out_shape), tuple(in_shape), list(range(rank)), begin, [self.mode] * rank)


@fixation_rule("Pad")
class PadShift(FixationRule):
    """Shift by the leading pads; fixations in a constant-padded border go nowhere,
    edge/reflect/wrap borders map to the input cell they copy."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        self.map = PadMap.of(self, graph)
        self.needs = (self.map.source,) if self.map.source else ()

    def backtrack(self, fixations, tensors):
        table = self.map.table(tensors.shape(self.node.inputs[0]), tensors.shape(self.node.outputs[0]), tensors)
        index = tensors.backend.remap(fixations.index, table)
        return [(self.node.inputs[0], tensors.backend.compact(FixationSet(index, fixations.count)))]


@vjp_rule("Pad")
class PadVjp(DataVjp):
    """Each output element's gradient goes to the input element it copies (fixations' index map):
    nothing for constant pads; edge, reflect and wrap borders add to the cells they repeat."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.map = PadMap.of(self, graph)
        self.needs = (self.map.source,) if self.map.source else ()

    def vjp(self, grad, tensors):
        name = self.node.inputs[0]
        shape = tensors.shape(name)
        source = remap(np.arange(grad.size, dtype=np.int64), self.map.table(shape, grad.shape, tensors))
        valid = source >= 0
        dx = np.zeros(int(np.prod(shape)), dtype=np.float32)
        np.add.at(dx, source[valid], grad.ravel()[valid])
        return [(name, dx.reshape(shape))]

    def emit(self, builder, grad):
        name = self.node.inputs[0]
        if self.map.mode != AXIS_CONSTANT or self.map.pads is None or min(self.map.pads) < 0:
            raise self.unsupported("only constant pads of constant, non-negative widths have an ONNX gradient", compilable())
        if not any(self.map.pads):
            return [(name, grad)]
        shape = builder.shape(name)
        axes = [a % len(shape) for a in self.map.axes] if self.map.axes is not None else list(range(len(shape)))
        begins = [int(p) for p in self.map.pads[: len(axes)]]
        return [(name, builder.slice(grad, begins, [b + shape[a] for a, b in zip(axes, begins)], axes))]
