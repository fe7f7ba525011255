"""XGrad-CAM (Fu et al. 2020) as pytorch-grad-cam computes it."""

from __future__ import annotations

import numpy as np

from fixtrace.methods.base import register
from fixtrace.methods.cam import LayerGradientMethod

#: pytorch-grad-cam's guard against a zero denominator.
EPS = 1e-7


@register
class XGradCAM(LayerGradientMethod):
    """Fu et al. 2020 (pytorch-grad-cam's XGradCAM): w_k = sum_ij(d score / d A_k * A_k) /
    (sum_ij A_k + 1e-7), the map ReLU(sum_k w_k A_k).

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "xgradcam"
    summary = "Grad-CAM weighted by sum(grad * A) / sum(A) per channel (Fu et al. 2020)"
    rank = 26

    def weights(self, grads: np.ndarray, activations: np.ndarray) -> np.ndarray:
        total = activations.sum(axis=(2, 3), keepdims=True)
        return (grads * activations).sum(axis=(2, 3), keepdims=True) / (total + EPS)

    def emit_weights(self, builder, grads, activations):
        total = builder.reduce("ReduceSum", activations, [2, 3])
        weighted = builder.reduce("ReduceSum", builder.op("Mul", [grads, activations], "weighted"), [2, 3])
        return builder.op("Div", [weighted, builder.op("Add", [total, builder.scalar(EPS)], "total")], "weights")
