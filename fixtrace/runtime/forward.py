"""The batched forward: class scores of any number of inputs, nothing else kept; and, for methods
that walk gradients on other inputs (Integrated Gradients, SmoothGrad), one run keeping chosen
intermediates."""

from __future__ import annotations

import numpy as np

from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.session import Session, padded


class Forward:
    """Class scores (the explained output's raw values) of many inputs, in chunks.

    Methods that run the model again (occlusion, RISE, Score-CAM) call it; it has its own lean
    onnxruntime session that returns only the scores, made on first use. ``keeping`` runs other
    inputs keeping chosen intermediates, on a session per set of tensors (also made on first use).

    Args:
        graph: the layer graph.
        logits: the class-score tensor.
        providers: onnxruntime providers to ask for (see Session).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).
        chunk: inputs per onnxruntime call (a model with a fixed batch dim takes that many).

    Attributes:
        calls: onnxruntime calls made so far.
        images: inputs scored so far.
    """

    def __init__(
        self, graph: LayerGraph, logits: str, providers: list[str] | None = None, threads: int = 0, chunk: int = 32
    ) -> None:
        self.graph = graph
        self.logits = logits
        self.providers = providers
        self.threads = threads
        self.chunk = graph.image_input.fixed_batch or chunk
        self._session: Session | None = None
        self._keeping: dict[frozenset[str], Session] = {}
        self.calls = 0
        self.images = 0

    @property
    def session(self) -> Session:
        """The lean session (made on first use)."""
        if self._session is None:
            self._session = Session(self.graph, {self.logits}, providers=self.providers, threads=self.threads)
        return self._session

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """float64 (M, classes) scores of M inputs shaped as the model's input (batch first).

        Raises:
            InputShapeError, ModelError: as ``Session.run``.
        """
        scores = []
        fixed = self.graph.image_input.fixed_batch
        for start in range(0, len(inputs), self.chunk):
            size = len(inputs[start : start + self.chunk])
            part = padded(inputs[start : start + self.chunk], fixed)  # the padding's scores are dropped
            values = self.session.run(part)[self.logits]
            scores.append(values.reshape(len(part), -1)[:size].astype(np.float64))
            self.calls += 1
        self.images += len(inputs)
        return np.concatenate(scores) if scores else np.zeros((0, 0))

    def keeping(self, inputs: np.ndarray, keep: frozenset[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One onnxruntime run of ``inputs`` returning the scores and the intermediates ``keep``.

        Args:
            inputs: at most ``chunk`` inputs shaped as the model's input (batch first); a model
                with a fixed batch dim gets them padded with zeros to it.
            keep: the tensors to return besides the graph outputs.

        Returns:
            (tensor name -> value, the inputs run: ``inputs`` or its padded copy).

        Raises:
            InputShapeError, ModelError: as ``Session.run``.
        """
        part = padded(inputs, self.graph.image_input.fixed_batch)
        if keep not in self._keeping:
            self._keeping[keep] = Session(self.graph, keep | {self.logits}, providers=self.providers, threads=self.threads)
        values = self._keeping[keep].run(part)
        self.calls += 1
        self.images += len(inputs)
        return values, part
