"""LayerCAM (Jiang et al. 2021)."""

from __future__ import annotations

import numpy as np

from fixtrace.methods.base import register
from fixtrace.methods.cam import LayerGradientMethod


@register
class LayerCAM(LayerGradientMethod):
    """Jiang et al. 2021 (pytorch-grad-cam's LayerCAM): each activation weighted by its own
    positive gradient, ReLU(sum_k relu(d score / d A_k) * A_k), element by element: fine maps on
    early layers, where Grad-CAM's channel means blur.

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "layercam"
    summary = "ReLU(sum_k relu(d score / d A_k) * A_k) per position (Jiang et al. 2021)"
    rank = 25

    def weights(self, grads: np.ndarray, activations: np.ndarray) -> np.ndarray:
        return np.maximum(grads, 0)

    def emit_weights(self, builder, grads, activations):
        return builder.op("Relu", [grads], "weights")
