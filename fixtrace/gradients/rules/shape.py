"""Ops that move elements: reshapes, Transpose, Concat, Pad."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.shape import PadShift
from fixtrace.gradients.registry import VjpRule, vjp_rule
from fixtrace.kernels.cpu.index import remap


@vjp_rule("Flatten", "Reshape", "Squeeze", "Unsqueeze")
class ReshapeVjp(VjpRule):
    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad.reshape(tensors.shape(self.node.inputs[0])))]


@vjp_rule("Transpose")
class TransposeVjp(VjpRule):
    def vjp(self, grad, tensors):
        perm = self.node.attr("perm")
        perm = list(perm) if perm is not None else list(reversed(range(grad.ndim)))
        return [(self.node.inputs[0], np.ascontiguousarray(grad.transpose(np.argsort(perm))))]


@vjp_rule("Concat")
class ConcatVjp(VjpRule):
    def vjp(self, grad, tensors):
        axis = int(self.node.attr("axis", 1)) % grad.ndim
        bounds = np.cumsum([0] + [tensors.shape(t)[axis] for t in self.node.inputs])
        return [(name, np.ascontiguousarray(np.take(grad, np.arange(bounds[k], bounds[k + 1]), axis=axis)))
                for k, name in enumerate(self.node.inputs) if name in self.routes]


@vjp_rule("Pad")
class PadVjp(VjpRule):
    """Each output element's gradient goes to the input element it copies (fixations' index map):
    nothing for constant pads; edge, reflect and wrap borders add to the cells they repeat."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.map = PadShift(node, graph, None)
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        name = self.node.inputs[0]
        shape = tensors.shape(name)
        source = remap(np.arange(grad.size, dtype=np.int64), self.map.table(shape, grad.shape))
        valid = source >= 0
        dx = np.zeros(int(np.prod(shape)), dtype=np.float32)
        np.add.at(dx, source[valid], grad.ravel()[valid])
        return [(name, dx.reshape(shape))]
