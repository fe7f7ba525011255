"""The model alone, photos in and class probabilities out, for the metrics that re-run it."""

from __future__ import annotations

import numpy as np

from fixtrace.images.preprocess import input_size, preprocess
from fixtrace.images.preset_choice import PresetArg, choose_preset
from fixtrace.model.checks import check_image_channels
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.outputs import ClassOutput, choose_output, find_logits
from fixtrace.runtime.session import Session


class Classifier:
    """Preprocess photos with a preset and run the model's forward in batches (no intermediates kept).

    Args:
        graph: the parsed model.
        output: the graph output holding the class scores (default: the first); it is checked
            on a blank image as ``Explainer`` checks it.
        preset: the preprocessing asked for (see ``choose_preset``; None: the model's metadata
            preset, else imagenet).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).
        batch_size: photos per forward (capped by a fixed batch dim of the model).

    Raises:
        ModelError: onnxruntime cannot run the model, or its output is not class scores; the
            preset does not fit it (see ``PresetChoice.resolve``).

    Attributes:
        preset, preset_source: the preset used and where it came from (``preset_choice.SOURCES``).
    """

    def __init__(
        self,
        graph: LayerGraph,
        output: str | None = None,
        preset: PresetArg = None,
        threads: int = 0,
        batch_size: int = 32,
    ) -> None:
        check_image_channels(graph)
        self.graph = graph
        self.preset, self.preset_source = choose_preset(preset).resolve(graph)
        logits = find_logits(graph, output)
        self.session = Session(graph, {logits}, threads=threads)
        fixed = graph.image_input.fixed_batch
        self.batch_size = min(batch_size, fixed or batch_size)
        width, height = input_size(graph.image_input, self.preset)
        channels = graph.image_input.channels or 3
        dims = (channels, height, width) if graph.image_input.layout == "NCHW" else (height, width, channels)
        blank = np.zeros((fixed or 1, *dims), np.float32)
        #: The output whose probabilities are returned.
        self.output: ClassOutput = choose_output(graph, output, self.session.run(blank))

    def probabilities(self, photos: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of logits, or the model's own probabilities).

        Args:
            photos: uint8 (n, H, W, 3).

        Returns:
            float64 (n, classes).
        """
        rows = []
        for first in range(0, len(photos), self.batch_size):
            batch = np.stack(
                [preprocess(p, self.graph.image_input, self.preset)[0] for p in photos[first : first + self.batch_size]]
            )
            rows.append(self.output.probabilities(self.session.run(batch)[self.output.logits]))
        return np.concatenate(rows)
