"""Tensors computed from shapes alone: torch's legacy exporter writes 'same' padding and
``x.view(x.size(0), -1)`` as Shape -> Gather -> ... -> Concat feeding a Pad or a Reshape. Their
values at one input shape make them constants, so that shape inference sees the real pads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

if TYPE_CHECKING:
    from fixtrace.model.layer_graph import Node

#: Ops whose output is a function of their input's shape only.
SHAPE_OPS = ("Shape", "Size")
#: Values larger than this are not worth making constants (a ConstantOfShape of a whole map).
MAX_ELEMENTS = 1 << 16


def shape_only(nodes: list[Node], is_constant) -> list[str]:
    """Computed tensors that depend on the input through Shape / Size nodes only, in topological order.

    Args:
        nodes: the computed nodes, in topological order.
        is_constant: tensor name -> whether it is a constant.
    """
    found: list[str] = []
    only: set[str] = set()
    for node in nodes:
        inputs = [t for t in node.inputs if t and not is_constant(t)]
        if node.op_type in SHAPE_OPS or (inputs and all(t in only for t in inputs)):
            outputs = [o for o in node.outputs if o]
            only.update(outputs)
            found += outputs
    return found


def shape_values(
    model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...], names: list[str]
) -> dict[str, np.ndarray]:
    """The values of ``names`` (tensors of ``shape_only``) when the input has ``input_shape``: one
    onnxruntime run on zeros, since they do not depend on the input's values. Empty when
    onnxruntime cannot run the model (the forward reports that itself)."""
    import onnxruntime as ort  # only graphs that compute shapes need a run here

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    elem = model.graph.input[[i.name for i in model.graph.input].index(input_name)].type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
    try:
        session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = session.run(names, {input_name: np.zeros(input_shape, dtype)})
    except Exception:  # onnxruntime's own error types: the real forward will say what is wrong
        return {}
    return {n: np.asarray(v) for n, v in zip(names, values) if np.size(v) <= MAX_ELEMENTS}
