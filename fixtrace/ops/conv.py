"""Conv: fixations go to the input channel with the largest window x weight sum, located by
centre or argmax; the input gradient is the transposed convolution of the output gradient."""

from __future__ import annotations

import math

import numpy as np

from fixtrace.kernels.cpu.gradients import depthwise_input_gradient
from fixtrace.kernels.shared.conv import LOCATION_ARGMAX, LOCATION_CENTRE, conv_geometry
from fixtrace.ops.base import FixationRule, VjpRule, fixation_rule, vjp_rule
from fixtrace.ops.geometry import window

TRAITS = {
    "Conv": {"spatial", "channels_first", "windowed", "downsampling", "weighted", "linear"},
    # No rules; listed so that the model checks know their weights and windows.
    "ConvTranspose": {"channels_first", "windowed", "weighted", "linear"},
    "ConvInteger": {"windowed"},
    "QLinearConv": {"windowed"},
}

_LOCATIONS = {"argmax": LOCATION_ARGMAX, "centre": LOCATION_CENTRE}
#: ``coarse-centre``: a conv whose input cells span at least this many image pixels (rows and
#: columns) places its fixations at the window centre; finer convs at the argmax.
COARSE_STRIDE = 8


@fixation_rule("Conv")
class ConvRule(FixationRule):
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
        self.groups = int(self.attr("group"))
        self.location = _LOCATIONS.get(options.conv_location, LOCATION_ARGMAX)
        self.coarse_centre = options.conv_location == "coarse-centre"
        self.image = graph.image_input
        self._geometries: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}
        # A depthwise conv reads only its fixations' windows in one channel: those can be recomputed.
        self.depthwise = self.weights.shape[1] == 1
        if self.depthwise:
            self.reads = (node.inputs[0],)
        else:
            self.needs = (node.inputs[0],)

    def backtrack(self, fixations, tensors):
        name = self.node.inputs[0]
        in_shape = tensors.shape(name)
        g = self._geometry(in_shape, tensors.shape(self.node.outputs[0]))
        backend = tensors.backend
        weights = backend.constant(self.flat_weights)
        location = self._location(in_shape, tensors)
        if self.depthwise and name not in tensors.values:
            if location == LOCATION_CENTRE:
                # The centre is geometry only: the recompute body never reads its source then.
                index = backend.depthwise_backtrack_recomputed(
                    weights, weights, weights, g, 0.0, 0.0, weights, fixations.index, g, location
                )
            else:
                source = tensors.recipes[name].arguments(tensors, in_shape)
                index = backend.depthwise_backtrack_recomputed(*source, weights, fixations.index, g, location)
        elif self._one_cell(g) and backend.pointwise_channels_last and 2 * len(fixations) * g[4] >= math.prod(in_shape):
            # Enough work per input value to pay for a channels-last copy (shared with recomputes).
            index = backend.pointwise_backtrack(tensors.channels_last(name), weights, fixations.index, g)
        else:
            index = backend.conv_backtrack(tensors.flat(name), weights, fixations.index, g, location)
        return [(name, fixations.with_index(index))]

    def _geometry(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``conv_geometry`` of this node for these shapes (computed once per pair)."""
        key = (in_shape, out_shape)
        g = self._geometries.get(key)
        if g is None:
            kernel, in_hw, out_hw = self.weights.shape[2:4], (in_shape[2], in_shape[3]), (out_shape[2], out_shape[3])
            win = window(self.node, (int(kernel[0]), int(kernel[1])), in_hw, out_hw, self.opset)
            g = conv_geometry(in_shape, self.weights.shape, out_hw, self.groups, win.strides, win.pads, win.dilations)
            self._geometries[key] = g
        return g

    @staticmethod
    def _one_cell(g: tuple[int, ...]) -> bool:
        """Whether every window of ``conv_geometry`` g is one valid input cell (a 1x1 conv, no leading pads)."""
        height, width, kh, kw, out_h, out_w, sh, sw, pt, pl = g[1], g[2], g[5], g[6], g[7], g[8], g[10], g[11], g[12], g[13]
        return kh == kw == 1 and pt == pl == 0 and (out_h - 1) * sh < height and (out_w - 1) * sw < width

    def _location(self, in_shape: tuple[int, ...], tensors) -> int:
        """The location rule of this run: ``coarse-centre`` compares the conv's input grid with the image's."""
        if not self.coarse_centre:
            return self.location
        image = tensors.shape(self.image.name)
        image_grid = image[2:4] if self.image.layout == "NCHW" else image[1:3]
        coarse = all(cells * COARSE_STRIDE <= pixels for cells, pixels in zip(in_shape[2:4], image_grid))
        return LOCATION_CENTRE if coarse else LOCATION_ARGMAX


@vjp_rule("Conv")
class ConvVjp(VjpRule):
    """dx[c, r*s + i*d - pad] += sum over m of dy[m, r] * w[m, c, i] (groups, strides, dilations, pads)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.weights = np.asarray(self.constant(1), dtype=np.float32)
        if self.weights.ndim != 4:
            raise self.unsupported(f"{self.weights.ndim - 2}-D convolution; only 2-D is handled")
        self.groups = int(self.attr("group"))
        self.pointwise = np.ascontiguousarray(self.weights[:, :, 0, 0].T)  # (C, M), used by 1x1 convs
        if len(node.inputs) > 2 and node.inputs[2] and not graph.is_constant(node.inputs[2]):
            raise self.unsupported("a computed bias; only a constant bias is handled")
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        name = self.node.inputs[0]
        b, c, h, w = tensors.shape(name)
        m, c_group, kh, kw = self.weights.shape
        _, _, oh, ow = grad.shape
        win = window(self.node, (kh, kw), (h, w), (oh, ow), self.opset)
        (sh, sw), (pt, pl), (dh, dw) = win.strides, win.pads, win.dilations
        groups, m_group = self.groups, m // self.groups
        grad = np.ascontiguousarray(grad, dtype=np.float32)
        if m_group == 1 and c_group == 1:  # depthwise: a gathering kernel, no temporaries
            return [(name, depthwise_input_gradient(grad, self.weights, h, w, win.strides, win.pads, win.dilations))]
        if groups == 1 and kh == kw == 1 and sh == sw == 1 and pt == pl == 0 and (oh, ow) == (h, w):
            # A pointwise conv is one matrix product per image.
            return [(name, np.matmul(self.pointwise, grad.reshape(b, m, -1)).reshape(b, c, h, w))]
        # A padded canvas large enough for every tap, cropped afterwards.
        height = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1)
        width = max(pl + w, (ow - 1) * sw + (kw - 1) * dw + 1)
        canvas = np.zeros((b, c, height, width), dtype=np.float32)
        grouped = grad.reshape(b, groups, m_group, oh, ow)
        for i in range(kh):
            for j in range(kw):
                taps = self.weights[:, :, i, j]
                if groups == 1:
                    part = np.einsum("mc,bmhw->bchw", taps, grad, optimize=True)
                else:
                    part = np.einsum("gmc,bgmhw->bgchw", taps.reshape(groups, m_group, c_group), grouped, optimize=True).reshape(
                        b, c, oh, ow
                    )
                canvas[:, :, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw] += part
        return [(name, canvas[:, :, pt : pt + h, pl : pl + w])]

    def emit(self, builder, grad):
        name = self.node.inputs[0]
        hw, out_hw = builder.shape(name)[2:], builder.shape(self.node.outputs[0])[2:]
        kernel = self.weights.shape[2:]
        win = window(self.node, kernel, hw, out_hw, self.opset)
        back = builder.conv_transpose(
            grad, self.node.inputs[1], self.groups, kernel, win.strides, win.pads, win.dilations, hw, out_hw
        )
        return [(name, back)]
