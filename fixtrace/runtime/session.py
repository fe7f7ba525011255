"""One onnxruntime session per model that also returns the intermediate tensors the rules read."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import onnx

from fixtrace.errors import InputShapeError, ModelError, first_line
from fixtrace.model.layer_graph import LayerGraph

try:
    import onnxruntime as ort
except ImportError as exc:  # pragma: no cover - a broken install, e.g. onnxruntime-gpu uninstalled over onnxruntime
    raise ImportError("onnxruntime is not importable; install exactly one of 'onnxruntime' or 'onnxruntime-gpu'") from exc


class Session:
    """An onnxruntime session whose outputs are the graph outputs plus chosen intermediates.

    Args:
        layer_graph: the parsed model.
        keep: intermediate tensor names to return besides the graph outputs.
        providers: onnxruntime execution providers to ask for, best first; the ones actually
            in use are in ``providers_in_use``, and ``fallback`` says which asked-for ones are
            missing (onnxruntime itself falls back silently).
        threads: intra-op threads (0 lets onnxruntime choose).

    Raises:
        ModelError: onnxruntime refuses the model.
    """

    def __init__(
        self, layer_graph: LayerGraph, keep: Iterable[str], providers: list[str] | None = None, threads: int = 0
    ) -> None:
        self.layer_graph = layer_graph
        graph_outputs = set(layer_graph.outputs)
        computed = {t for n in layer_graph.nodes for t in n.outputs}
        self.kept = sorted(t for t in set(keep) if t in computed and t not in graph_outputs)
        model = onnx.ModelProto()
        model.CopyFrom(layer_graph.model)
        for name in self.kept:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
        self._session, wanted, available = open_session(model.SerializeToString(), providers, threads, "the model")
        self.providers_requested = wanted
        self.providers_in_use = list(self._session.get_providers())
        missing = [p for p in wanted if p not in self.providers_in_use]
        #: Why the forward does not run where it was asked to ("" when it does).
        self.fallback = (
            (
                f"{', '.join(missing)} asked for but onnxruntime runs on {', '.join(self.providers_in_use)} "
                f"(available: {', '.join(available)})"
            )
            if missing
            else ""
        )
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.input_name = layer_graph.image_input.name
        meta = self._session.get_inputs()[0]
        self._input_type = meta.type

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model once.

        Args:
            tensor: the input batch, shaped as the model expects.

        Returns:
            Tensor name -> value for the graph outputs and the kept intermediates.

        Raises:
            InputShapeError: the tensor does not fit the declared input.
            ModelError: onnxruntime fails while running.
        """
        check_input_shape(self.layer_graph, tensor.shape)
        if self._input_type == "tensor(float16)":
            tensor = tensor.astype(np.float16)
        elif self._input_type == "tensor(double)":
            tensor = tensor.astype(np.float64)
        try:
            values = self._session.run(self.output_names, {self.input_name: tensor})
        except Exception as exc:  # onnxruntime's own error types
            raise ModelError(f"onnxruntime failed while running the model: {clean_error(first_line(exc))}") from None
        return dict(zip(self.output_names, values))


def open_session(
    model: bytes, providers: list[str] | None, threads: int, what: str
) -> tuple[ort.InferenceSession, list[str], list[str]]:
    """An onnxruntime session with fixtrace's options: ``threads`` intra-op threads (0: onnxruntime's
    choice), no spinning, no log; the asked ``providers`` this build has (default: CPU).

    Returns:
        (the session, the providers asked for, the providers this build offers).

    Raises:
        ModelError: onnxruntime refuses the model (``what`` names it in the message).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 4  # fixtrace reports failures itself, in one line
    # Idle onnxruntime threads must not spin while numba backtracks between runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = providers or ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    try:
        session = ort.InferenceSession(
            model, options, providers=[p for p in wanted if p in available] or ["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception classes; all mean "cannot run"
        raise ModelError(f"onnxruntime cannot load {what}: {clean_error(first_line(exc))}") from None
    return session, wanted, available


def padded(inputs: np.ndarray, fixed: int | None) -> np.ndarray:
    """float32 ``inputs`` (batch first) with zero rows added up to a model's fixed batch dim,
    which takes exactly that many (as they are without one, or when there are enough)."""
    part = np.ascontiguousarray(inputs, dtype=np.float32)
    if fixed and len(part) < fixed:
        part = np.concatenate([part, np.zeros((fixed - len(part), *part.shape[1:]), np.float32)])
    return part


def check_input_shape(layer_graph: LayerGraph, shape: tuple[int, ...]) -> None:
    """Raise InputShapeError unless ``shape`` matches the model's declared input dims."""
    declared = layer_graph.image_input.shape
    bad = len(shape) != len(declared) or any(d is not None and d != s for d, s in zip(declared, shape))
    if bad:
        want = "x".join("?" if d is None else str(d) for d in declared)
        got = "x".join(str(s) for s in shape)
        raise InputShapeError(
            f"model input {layer_graph.image_input.name!r} expects {want} ({layer_graph.image_input.layout}), got {got}"
        )


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build offers."""
    return list(ort.get_available_providers())


def clean_error(message: str) -> str:
    """Drop onnxruntime's source locations ("/onnxruntime_src/...cc:123 func(...)") from an error."""
    return re.sub(r"\S*onnxruntime_src\S*(\s+\S+\([^)]*\))?\s*", "", message).strip()
