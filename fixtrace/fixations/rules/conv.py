"""Conv: the input channel with the largest window x weight sum, located by centre or argmax."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import window
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.shared.conv import LOCATION_ARGMAX, LOCATION_CENTRE, conv_geometry

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
        self.flat_weights = self.weights.reshape(-1)
        self.groups = int(node.attr("group", 1))
        self.location = _LOCATIONS[options.conv_location]
        # A depthwise conv reads only its fixations' windows in one channel: those can be recomputed.
        self.depthwise = self.weights.shape[1] == 1
        if self.depthwise:
            self.reads = (node.inputs[0],)
        else:
            self.needs = (node.inputs[0],)

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        out_shape = tensors.shape(self.node.outputs[0])
        in_shape = tensors.shape(name)
        win = window(self.node, self.weights.shape[2:], in_shape[2:], out_shape[2:])
        g = conv_geometry(in_shape, self.weights.shape, out_shape[2:], self.groups, win.strides, win.pads, win.dilations)
        backend = tensors.backend
        weights = backend.constant(self.flat_weights)
        if self.depthwise and name not in tensors.values:
            source = tensors.recipes[name].arguments(tensors, in_shape)
            index = backend.depthwise_backtrack_recomputed(*source, weights, fixations.index, g, self.location)
        else:
            index = backend.conv_backtrack(tensors.flat(name), weights, fixations.index, g, self.location)
        return [(name, fixations.with_index(index))]
