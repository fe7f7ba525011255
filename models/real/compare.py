"""fixtrace on an exported model against the model's own framework: scores and Grad-CAM on the
same preprocessed photo (used by tests/test_real_exports.py and models/build_real_exports.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from real.common import RealModel


def sample(explainer, pixels: np.ndarray) -> np.ndarray:
    """The photo as fixtrace feeds it to the model: a batch of one in the input's layout."""
    from fixtrace.images.preprocess import preprocess

    return preprocess(pixels, explainer.graph.image_input, explainer.preset)[0][None]


def scores(model: RealModel, explainer, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime's class scores through fixtrace, the framework's) on the same batch."""
    return explainer.runner.run(batch).scores, model.logits(batch).astype(np.float64)


def same_layer(activations: dict[str, np.ndarray], value: np.ndarray) -> tuple[str, float]:
    """The framework layer whose (N, C, H, W) output equals ``value`` best, and the max abs difference.

    Raises:
        LookupError: no framework layer has that shape.
    """
    found = [(float(np.abs(v - value).max()), name) for name, v in activations.items() if v.shape == value.shape]
    if not found:
        raise LookupError(f"no framework layer of shape {value.shape}")
    diff, name = min(found)
    return name, diff


@dataclass
class GradCAMAgreement:
    """fixtrace's Grad-CAM against the framework's on the same layer.

    Attributes:
        layer: fixtrace's layer (an ONNX tensor).
        framework_layer: the framework layer whose output it is, and their max abs difference.
        targets: the classes explained, one per photo.
        ours, theirs: (N, h, w) maps.
        r: Pearson correlation of the flattened maps.
    """

    layer: str
    framework_layer: str
    layer_diff: float
    targets: list[int]
    ours: np.ndarray
    theirs: np.ndarray

    @property
    def r(self) -> float:
        return float(np.corrcoef(self.ours.ravel(), self.theirs.ravel())[0, 1])


def gradcam_agreement(model: RealModel, explainer, pixels: np.ndarray) -> GradCAMAgreement:
    """Grad-CAM of the top-1 and the runner-up class, as a batch of two copies of the photo, by
    fixtrace on its default layer (read NCHW, whatever layout the graph keeps it in) and by the framework's autodiff on the layer with the same values."""
    method = explainer.prepared("gradcam")
    one = sample(explainer, pixels)
    batch = np.concatenate([one, one])
    run = explainer.runner.run(batch)
    targets = [int(k) for k in np.argsort(-run.scores[0])[:2]]
    from fixtrace.model.layout import feature_layouts, to_nchw

    layout = feature_layouts(explainer.graph)[method.layer]
    name, diff = same_layer(model.activations(batch), to_nchw(run.tensors.value(method.layer), layout))
    ours = method.attributions(run.tensors, targets)
    theirs = model.gradcam(batch, name, targets)
    return GradCAMAgreement(method.layer, name, diff, targets, ours, theirs)
