"""Normalisations: BatchNormalization (inference form) and LRN keep every index; their gradients."""

from __future__ import annotations

import numpy as np

from fixtrace.ops.base import (
    DataVjp,
    ElementwiseVjp,
    PassThrough,
    fixation_rule,
    vjp_rule,
)

TRAITS = {
    "BatchNormalization": {"spatial", "channels_first", "activation", "weighted"},
    # No rules; listed so that the model checks know their weights.
    "InstanceNormalization": {"channels_first", "weighted"},
    "LRN": {"channels_first"},
    "LayerNormalization": {"weighted"},
}


@fixation_rule("BatchNormalization", "LRN")
class NormalizationPassThrough(PassThrough):
    """A per-position normalisation keeps every index."""


@vjp_rule("BatchNormalization")
class BatchNormVjp(DataVjp):
    """Inference form: dx = dy * scale / sqrt(var + eps), per channel (axis 1)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        scale, var = self.constant(1), self.constant(4)
        self.factor = (scale / np.sqrt(var.astype(np.float64) + float(self.attr("epsilon")))).astype(np.float32)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad * self.factor.reshape(self._factor_shape(grad.ndim)))]

    def _factor_shape(self, rank: int) -> tuple[int, ...]:
        return (1, -1) + (1,) * (rank - 2)

    def emit(self, builder, grad):
        factor = builder.const(self.factor.reshape(self._factor_shape(len(builder.shape(self.node.inputs[0])))), "bn_factor")
        return [(self.node.inputs[0], builder.op("Mul", [grad, factor], "grad"))]


@vjp_rule("LRN")
class LrnVjp(ElementwiseVjp):
    """y_c = x_c s_c^-beta with s_c = bias + alpha / size * sum of x^2 over the channel window
    [c - floor((size-1)/2), c + ceil((size-1)/2)] (ONNX's window):
    dx_k = g_k s_k^-beta - 2 beta alpha / size * x_k * sum over windows holding k of g_c x_c s_c^(-beta-1)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.size = int(self.attr("size"))
        self.alpha, self.beta, self.bias = (float(self.attr(k)) for k in ("alpha", "beta", "bias"))
        self.before, self.after = (self.size - 1) // 2, self.size // 2  # floor and ceil of (size - 1) / 2

    def vjp(self, grad, tensors):
        x = tensors.value(self.node.inputs[0]).astype(np.float64)
        g = grad.astype(np.float64)
        s = self.bias + self.alpha / self.size * _window_sum(x * x, self.before, self.after)
        term = g * x * s ** (-self.beta - 1)
        # Channel k is in the window of c exactly when c lies in [k - after, k + before].
        back = _window_sum(term, self.after, self.before)
        dx = g * s ** (-self.beta) - 2 * self.beta * self.alpha / self.size * x * back
        return [(self.node.inputs[0], dx.astype(np.float32))]


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """Per channel c (axis 1), the sum of a over channels c - before .. c + after (clipped)."""
    padded = np.pad(a, [(0, 0), (before + 1, after)] + [(0, 0)] * (a.ndim - 2))
    total = np.cumsum(padded, axis=1)
    n = a.shape[1]
    return total[:, before + 1 + after : before + 1 + after + n] - total[:, :n]
