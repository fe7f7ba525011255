"""Conv: the input gradient is the transposed convolution of the output gradient."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.rules.geometry import window
from fixtrace.gradients.registry import VjpRule, vjp_rule
from fixtrace.kernels.cpu.gradients import depthwise_input_gradient


@vjp_rule("Conv")
class ConvVjp(VjpRule):
    """dx[c, r*s + i*d - pad] += sum over m of dy[m, r] * w[m, c, i] (groups, strides, dilations, pads)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.weights = np.asarray(self.constant(1), dtype=np.float32)
        if self.weights.ndim != 4:
            raise self.unsupported(f"{self.weights.ndim - 2}-D convolution; only 2-D is handled")
        self.groups = int(node.attr("group", 1))
        self.pointwise = np.ascontiguousarray(self.weights[:, :, 0, 0].T)  # (C, M), used by 1x1 convs
        if len(node.inputs) > 2 and node.inputs[2] and not graph.is_constant(node.inputs[2]):
            raise self.unsupported("a computed bias; only a constant bias is handled")
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        name = self.node.inputs[0]
        b, c, h, w = tensors.shape(name)
        m, c_group, kh, kw = self.weights.shape
        _, _, oh, ow = grad.shape
        win = window(self.node, (kh, kw), (h, w), (oh, ow))
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
                    part = np.einsum("gmc,bgmhw->bgchw", taps.reshape(groups, m_group, c_group), grouped,
                                     optimize=True).reshape(b, c, oh, ow)
                canvas[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += part
        return [(name, canvas[:, :, pt:pt + h, pl:pl + w])]
