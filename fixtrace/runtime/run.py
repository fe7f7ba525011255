"""One forward of a batch, as every method sees it: the kept tensors, the backend, the scores
and the batched forward to run the model again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace.backends.base import Backend
from fixtrace.images.presets import Preset
from fixtrace.model.outputs import ClassOutput
from fixtrace.runtime.forward import Forward
from fixtrace.runtime.tensors import Tensors


@dataclass
class Run:
    """What a method may use to explain a batch.

    Attributes:
        tensors: the values the forward kept (the union of the asked methods' ``needs``), with
            the input, shapes and constants.
        batch: the model input, (N, ...) in the model's layout.
        scores: float64 (N, classes) raw values of the explained output for the batch.
        output: the explained output (its kind turns scores into probabilities).
        forward: class scores of any other inputs (occluded or masked copies), batched.
        preset: the preprocessing the batch went through (what a black photo is in the model's
            input space).
    """

    tensors: Tensors
    batch: np.ndarray
    scores: np.ndarray
    output: ClassOutput
    forward: Forward
    preset: Preset

    @property
    def backend(self) -> Backend:
        """Where the kernels run."""
        return self.tensors.backend

    @property
    def size(self) -> int:
        """Photos in the batch."""
        return len(self.batch)

    @property
    def channels_first(self) -> bool:
        """Whether the input is NCHW (else NHWC)."""
        return self.forward.graph.image_input.layout == "NCHW"

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the model input."""
        shape = self.batch.shape
        return (shape[2], shape[3]) if self.channels_first else (shape[1], shape[2])

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """(M, classes) probabilities of raw output values (softmax of logits, etc.)."""
        return self.output.probabilities(scores)

    def tensors_of(self, inputs: np.ndarray, keep: frozenset[str]) -> Tensors:
        """The values of another forward, of ``inputs`` (interpolated or noisy copies of the batch),
        keeping ``keep``: what gradient walks on new inputs read (Integrated Gradients, SmoothGrad).

        Args:
            inputs: at most ``forward.chunk`` inputs (see ``Forward.keeping``: a fixed batch dim
                pads them with zero rows, which these tensors then hold too).
            keep: the tensors the walk reads.
        """
        values, ran = self.forward.keeping(inputs, keep)
        name = self.forward.graph.image_input.name
        return Tensors(
            values | {name: ran},
            self.forward.graph.shapes(ran.shape),
            self.tensors.constants,
            self.tensors.recipes,
            self.backend,
        )
