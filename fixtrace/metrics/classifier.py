"""The model alone, photos in and class probabilities out, for the metrics that re-run it."""

from __future__ import annotations

import numpy as np

from fixtrace.images.preprocess import Preset, get_preset, preprocess
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.session import Session


class Classifier:
    """Preprocess photos with a preset and run the model's forward in batches (no intermediates kept).

    Args:
        graph: the parsed model.
        logits: the output tensor that holds the class scores.
        preset: preprocessing preset (name or Preset).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).
        batch_size: photos per forward (capped by a fixed batch dim of the model).
    """

    def __init__(self, graph: LayerGraph, logits: str, preset: str | Preset = "imagenet", threads: int = 0,
                 batch_size: int = 32) -> None:
        self.graph = graph
        self.logits = logits
        self.preset = get_preset(preset)
        self.session = Session(graph, {logits}, threads=threads)
        fixed = graph.image_input.shape[0]
        self.batch_size = min(batch_size, fixed) if isinstance(fixed, int) and fixed > 0 else batch_size

    def probabilities(self, photos: np.ndarray) -> np.ndarray:
        """Softmax of the logits.

        Args:
            photos: uint8 (n, H, W, 3).

        Returns:
            float64 (n, classes).
        """
        rows = []
        for first in range(0, len(photos), self.batch_size):
            batch = np.stack([preprocess(p, self.graph.image_input, self.preset)[0] for p in photos[first:first + self.batch_size]])
            logits = self.session.run(batch)[self.logits].reshape(len(batch), -1).astype(np.float64)
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            rows.append(exp / exp.sum(axis=1, keepdims=True))
        return np.concatenate(rows)
