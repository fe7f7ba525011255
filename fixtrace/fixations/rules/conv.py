"""Conv: the input channel with the largest window x weight sum, located by centre or argmax."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import window
from fixtrace.fixations.registry import Rule, rule
from fixtrace.kernels.cpu.conv import (
    LOCATION_ARGMAX,
    LOCATION_CENTRE,
    PARALLEL_WORK,
    conv_backtrack,
    conv_backtrack_parallel,
    depthwise_backtrack_recomputed,
)

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
        if self.depthwise and name not in tensors.values:
            recipe = tensors.recipes[name]
            index = depthwise_backtrack_recomputed(
                *recipe.arguments(tensors.value(recipe.source), in_shape), self.weights, fixations.index, in_shape[2],
                in_shape[3], out_shape[2], out_shape[3], self.groups, win.strides, win.pads, win.dilations, self.location,
            )
            return [(name, fixations.with_index(index))]
        work = len(fixations) * self.weights[0].size
        kernel = conv_backtrack_parallel if work > PARALLEL_WORK else conv_backtrack
        index = kernel(
            np.ascontiguousarray(tensors.value(name), dtype=np.float32), self.weights, fixations.index, out_shape[2],
            out_shape[3], self.groups, win.strides, win.pads, win.dilations, self.location,
        )
        return [(name, fixations.with_index(index))]
