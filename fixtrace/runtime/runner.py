"""A model prepared once: loaded and checked, its output chosen on a blank image, its sessions
made; then one forward per batch, keeping what the methods asked for."""

from __future__ import annotations

import os

import numpy as np

from fixtrace.backends import Backend, cuda_status, get_backend
from fixtrace.images.preprocess import input_size
from fixtrace.images.preset_choice import PresetArg, choose_preset
from fixtrace.methods.base import Method
from fixtrace.model.checks import check_image_channels, check_tensor_sizes
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.model.outputs import ClassOutput, choose_output, find_logits
from fixtrace.runtime.forward import Forward
from fixtrace.runtime.run import Run
from fixtrace.runtime.session import Session
from fixtrace.runtime.tensors import Tensors


class Runner:
    """The model, its sessions and its backend, shared by every method explained on it.

    Everything that can be checked without onnxruntime is checked here; onnxruntime first loads
    the model when ``output`` or ``session`` is first read, so that the methods' own checks
    (an unsupported op) come first.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        preset: the preprocessing asked for (see ``choose_preset``; None: the model's metadata
            preset, else imagenet); it sets the input size of a model whose size is symbolic.
        output: the graph output to explain (None: the first).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``: where the kernels run.
        any_output: explain an output that does not look like class scores.

    Raises:
        ModelError: the model cannot be read, is not a 1- or 3-channel image classifier, its
            output is not a finite class-score vector, or onnxruntime cannot run it; its metadata
            preset is invalid, or the preset declares another input layout than the graph's.
        FixtraceError: ``device="cuda"`` where CUDA cannot run.

    Attributes:
        graph, logits, shapes (at the model's input size), backend, output, forward; preset and
        preset_source (one of ``fixtrace.images.preset_choice.SOURCES``).
    """

    def __init__(
        self, model: ModelSource, preset: PresetArg, output: str | None, threads: int, device: str, any_output: bool
    ) -> None:
        self.source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.graph = LayerGraph.from_model(load_model(model))
        check_image_channels(self.graph)
        self.preset, self.preset_source = choose_preset(preset).resolve(self.graph)
        self.size = input_size(self.graph.image_input, self.preset)
        self.shapes = self.graph.shapes(self.batch_shape(1))
        check_tensor_sizes(self.shapes, self.graph.producer)
        self.logits = find_logits(self.graph, output)
        self.backend = get_backend(device)
        self.providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_status()["gpu"] and self.backend.name == "cuda" else None
        )
        self.threads = threads
        self.keep: set[str] = {self.logits}
        self.recipes: dict = {}
        self._session: Session | None = None
        self.forward = Forward(self.graph, self.logits, self.providers, threads)
        self._output, self._any_output = output, any_output
        self._chosen: ClassOutput | None = None

    @property
    def output(self) -> ClassOutput:
        """The output explained, its kind of scores and why it was chosen (checked on a blank
        image on first use: the first time onnxruntime loads the model).

        Raises:
            ModelError: onnxruntime cannot run the model, or its output is not class scores.
        """
        if self._chosen is None:
            self._chosen = choose_output(self.graph, self._output, self.session.run(self.blank()), self._any_output)
        return self._chosen

    @property
    def probed(self) -> bool:
        """Whether onnxruntime has run the model (the output is chosen)."""
        return self._chosen is not None

    @property
    def session(self) -> Session:
        """The session keeping every tensor the prepared methods need (remade when that grows)."""
        if self._session is None:
            self._session = Session(self.graph, self.keep, providers=self.providers, threads=self.threads)
        return self._session

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The model input's shape for ``batch`` photos at the preset's size."""
        spec = self.graph.image_input
        width, height = self.size
        channels = spec.channels or 3
        return (batch, channels, height, width) if spec.layout == "NCHW" else (batch, height, width, channels)

    def blank(self) -> np.ndarray:
        """A black input (the model's fixed batch, else one photo)."""
        return np.zeros(self.batch_shape(self.graph.image_input.fixed_batch or 1), np.float32)

    def prepare(self, method: Method) -> None:
        """Keep what ``method`` reads, and check it on a blank image against real shapes.

        Raises:
            UnsupportedOpError: a node whose configuration only its shapes reveal is not handled.
        """
        unknown_shapes = {t for t in method.touched if t not in self.shapes}
        wanted = method.needs | unknown_shapes
        if not wanted <= self.keep:
            self.keep |= wanted
            self._session = None
        self.recipes |= method.recipes
        blank = self.blank()
        method.check(self.tensors(self.session.run(blank), blank))

    def tensors(self, values: dict[str, np.ndarray], batch: np.ndarray, backend: Backend | None = None) -> Tensors:
        """The values of one run, with the input, shapes, constants and recompute recipes, handed
        to ``backend`` (default: the runner's; benchmarks compare backends on one run)."""
        return Tensors(
            values | {self.graph.image_input.name: batch},
            self.graph.shapes(batch.shape),
            self.graph.constants,
            self.recipes,
            backend or self.backend,
        )

    def run(self, batch: np.ndarray) -> Run:
        """One forward of ``batch`` keeping what the prepared methods need.

        Raises:
            InputShapeError: the batch does not fit the model's input.
            ModelError: onnxruntime fails.
        """
        values = self.session.run(batch)
        scores = values[self.logits].reshape(len(batch), -1).astype(np.float64)
        return Run(self.tensors(values, batch), batch, scores, self.output, self.forward, self.preset)
