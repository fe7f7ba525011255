"""Which graph output holds the class scores, what kind of scores they are, and whether they
look like class scores at all: fixtrace says so instead of explaining a feature map as classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from fixtrace.errors import ModelError, OptionError
from fixtrace.model.layer_graph import LayerGraph

#: Ops that may sit between the class scores and the graph output without changing them.
_AFTER_LOGITS = {"Identity", "Dropout", "Flatten", "Reshape", "Squeeze"}
#: Normalisations a walk starts below: (op, the kind of scores their output holds).
_NORMALISERS = {"Softmax": "probabilities", "LogSoftmax": "log-probabilities", "Sigmoid": "sigmoid"}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


@dataclass(frozen=True)
class ClassOutput:
    """The output fixtrace explains.

    Attributes:
        name: the graph output.
        logits: the tensor the walks start from (the input of a final Softmax, LogSoftmax or
            Sigmoid; else the output itself).
        kind: what the output holds: ``"probabilities"`` (a Softmax, seen in the graph or in the
            values), ``"log-probabilities"``, ``"sigmoid"`` (independent per-class
            probabilities) or ``"logits"`` (raw scores, turned into probabilities by a softmax).
        classes: scores per image.
        reason: why this output, in words.
        forced: the output does not look like class scores but was explained anyway.
    """

    name: str
    logits: str
    kind: str
    classes: int
    reason: str
    forced: bool = False

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, classes) from the values of ``logits`` (N, ...)."""
        rows = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-rows))
        if self.kind == "probabilities" and self.logits == self.name:
            return rows
        exp = np.exp(rows - rows.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def describe(self) -> str:
        """One line: which output, how many classes, what kind, and why."""
        start = f", explained from {self.logits!r}" if self.logits != self.name else ""
        return f"output {self.name!r}: {self.classes} class {self.kind}{start} ({self.reason})"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "tensor": self.logits,
            "kind": self.kind,
            "classes": self.classes,
            "reason": self.reason,
            "forced": self.forced,
        }


def find_logits(graph: LayerGraph, output: str | None = None) -> str:
    """The tensor holding the class scores: the graph output, or the input of its Softmax,
    LogSoftmax or Sigmoid (see ``choose_output`` for the checks that need a run).

    Raises:
        ModelError: not a graph output, a constant, or not a float tensor.
    """
    return _walk_back(graph, _float_output(graph, output))[0]


def choose_output(graph: LayerGraph, output: str | None, values: dict[str, np.ndarray], allow_any: bool = False) -> ClassOutput:
    """Pick and check the output to explain, from one run of the model.

    Args:
        graph: the layer graph.
        output: the graph output asked for (None: the first).
        values: a run's values, holding the output and its ``logits`` tensor.
        allow_any: explain an output that does not look like class scores (each position of it
            counts as a class) instead of refusing it.

    Returns:
        The output, its kind, its class count and the reason it was chosen.

    Raises:
        ModelError: the output is not a graph output, is a constant, is not a float tensor, is
            not finite, or is not a class-score vector (unless ``allow_any``).
    """
    name = _float_output(graph, output)
    if len(graph.outputs) == 1:
        reason = "the model's only output"
    elif output is None:
        reason = f"the first of {len(graph.outputs)} outputs ({', '.join(graph.outputs)}); --output picks another"
    else:
        reason = "asked for with --output"
    logits, kind = _walk_back(graph, name)
    shape = tuple(np.shape(values[logits]))
    classes = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) >= 1 else 0
    forced = False
    if classes == 0:
        raise ModelError(f"output {name!r} has shape {_text(shape)}: no class scores{_others(graph, name)}")
    not_a_vector = sum(d != 1 for d in shape[1:]) > 1
    if not_a_vector:
        what = f"output {name!r} has shape {_text(shape)}: not a class-score vector ({_looks_like(shape)}){_others(graph, name)}"
        if not allow_any:
            raise ModelError(f"{what}; --any-output explains each of its {classes} positions as a class")
        forced = True
        reason += f"; {what}, explained anyway (--any-output): each position counts as a class"
    scores = np.asarray(values[logits], dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ModelError(f"output {name!r} is not finite (NaN or infinity) even on a blank image: broken weights?")
    if kind == "logits" and logits == name and _look_like_probabilities(scores):
        kind = "probabilities"
        reason += "; its values are probabilities already (they sum to 1), so they are reported as they are"
    return ClassOutput(name, logits, kind, classes, reason, forced)


def _float_output(graph: LayerGraph, output: str | None) -> str:
    """The graph output asked for (or the first), refused unless it is a computed float tensor."""
    name = _output_name(graph, output)
    elem = _elem_type(graph, name)
    if elem is not None and elem not in _FLOAT_TYPES:
        raise ModelError(
            f"output {name!r} is {helper.tensor_dtype_to_string(elem).split('.')[-1].lower()}: class indices or "
            f"labels, not class scores{_others(graph, name)}"
        )
    return name


def _output_name(graph: LayerGraph, output: str | None) -> str:
    if output is not None and not isinstance(output, str):
        raise OptionError(f"output must be the name of a graph output (a str), not {type(output).__name__}")
    if not graph.outputs:
        raise ModelError("the model declares no outputs: there are no class scores to explain")
    name = output or graph.outputs[0]
    if name not in graph.outputs:
        raise ModelError(f"{name!r} is not an output of the model; outputs: {', '.join(graph.outputs)}")
    if name in graph.constants and name not in graph.producer:
        raise ModelError(f"output {name!r} is a constant: it does not depend on the image input")
    return name


def _walk_back(graph: LayerGraph, name: str) -> tuple[str, str]:
    """(the tensor walks start from, the kind of scores) for a graph output."""
    tensor = name
    while tensor in graph.producer:
        node = graph.producer[tensor]
        if node.op_type in _NORMALISERS:
            return node.inputs[0], _NORMALISERS[node.op_type]
        if node.op_type not in _AFTER_LOGITS:
            break
        tensor = node.inputs[0]
    return name, "logits"


def _elem_type(graph: LayerGraph, name: str) -> int | None:
    for info in graph.model.graph.output:
        if info.name == name and info.type.tensor_type.elem_type:
            return info.type.tensor_type.elem_type
    return None


def _look_like_probabilities(scores: np.ndarray) -> bool:
    rows = scores.reshape(len(scores), -1)
    return rows.shape[1] > 1 and bool((rows >= 0).all() and (rows <= 1).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def _looks_like(shape: tuple[int, ...]) -> str:
    if len(shape) == 4 and shape[2] * shape[3] > 1:
        return f"spatial dims {shape[2]}x{shape[3]}: a feature map or a segmentation output?"
    if len(shape) == 3:
        return f"{shape[1]} rows of {shape[2]}: detections or a sequence?"
    return f"{sum(d != 1 for d in shape[1:])} dims larger than 1 after the batch"


def _others(graph: LayerGraph, name: str) -> str:
    others = [o for o in graph.outputs if o != name]
    return f"; the model's other outputs: {', '.join(others)} (pick one with --output)" if others else ""


def _text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
