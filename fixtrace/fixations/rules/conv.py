"""Conv: the input channel with the largest window x weight sum, located by centre or argmax."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import window
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.cpu.conv import LOCATION_ARGMAX, LOCATION_CENTRE, conv_backtrack

_LOCATIONS = {"argmax": LOCATION_ARGMAX, "centre": LOCATION_CENTRE}


@rule("Conv")
class ConvRule(Rule):
    """One fixation in, one fixation out; grouped and depthwise convs search only the group."""

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if graph.is_constant(node.inputs[0]) or not graph.is_constant(node.inputs[1]):
            raise self.unsupported("the weights must be a constant and the data computed")
        weights = graph.constants[node.inputs[1]]
        if weights.ndim != 4:
            raise self.unsupported(f"{weights.ndim - 2}-D convolution; only 2-D is handled")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.groups = int(node.attr("group", 1))
        self.location = _LOCATIONS[options.conv_location]
        self.needs = (node.inputs[0],)

    def backtrack(self, fixations, tensors):
        x = tensors.value(self.node.inputs[0])
        out_shape = tensors.shape(self.node.outputs[0])
        win = window(self.node, self.weights.shape[2:], x.shape[2:], out_shape[2:])
        index = conv_backtrack(
            np.ascontiguousarray(x, dtype=np.float32), self.weights, fixations.index, out_shape[2], out_shape[3],
            self.groups, win.strides, win.pads, win.dilations, self.location,
        )
        return [(self.node.inputs[0], fixations.with_index(index))]
