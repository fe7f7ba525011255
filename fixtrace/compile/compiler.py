"""``compile_explanation``: a model whose outputs are its own plus a method's map and the class
it explains, the backward written as ONNX nodes, so that it runs wherever the model runs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from fixtrace.compile.builder import GraphBuilder
from fixtrace.compile.maps import COMPILED
from fixtrace.errors import ModelError, OptionError
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.runtime.runner import Runner

#: The metadata key recording what a compiled model computes.
METADATA_KEY = "fixtrace.compiled"


@dataclass(frozen=True)
class Compiled:
    """A model with its explanation as extra outputs.

    Attributes:
        model: the compiled model.
        method: the method written into it.
        layer: the layer the map is on (CAM methods), else None (the input's grid).
        map_output: the output holding float32 (N, rows, cols) maps.
        class_output: the output holding the int64 (N,) classes explained.
        class_input: the int64 (N,) input choosing the class (None: the top class).
        map_grid: (rows, cols) of the map.
        added: nodes added.
    """

    model: onnx.ModelProto
    method: str
    layer: str | None
    map_output: str
    class_output: str
    class_input: str | None
    map_grid: tuple[int, int]
    added: int


def compiled_methods() -> list[str]:
    """The methods ``compile_explanation`` can write, in the order they are listed."""
    return list(COMPILED)


def compile_explanation(
    model: ModelSource,
    method: str,
    *,
    layer: str | None = None,
    class_input: bool = False,
    output: str | None = None,
    preset: PresetArg = None,
) -> Compiled:
    """Write ``method``'s map into the model as extra outputs.

    The map is for the top class of the explained output (its argmax), or for the class fed to
    an extra int64 (N,) input with ``class_input`` (a class out of range gives an all-zero map).
    Every node computing the original outputs is kept as it was.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        method: one of ``compiled_methods()``.
        layer: the layer Grad-CAM reads (default: the last spatial map).
        class_input: add the class input.
        output: the class-score output explained (default: the first).
        preset: the preprocessing (it only sets the input size of a model whose size is symbolic:
            the compiled backward is written for that size).

    Raises:
        OptionError: a method that cannot be compiled, or a bad option.
        UnsupportedOpError: a node on the backward path has no ONNX form of its gradient.
        ModelError, FixtraceError: the method cannot run on this model, or its input is not float32.
    """
    from fixtrace.api import Explainer  # the facade imports much; only compiling needs it

    if method not in COMPILED:
        raise OptionError(f"--method {method!r} cannot be compiled; fixtrace compile writes {', '.join(COMPILED)}")
    explainer = Explainer(model, method=method, layer=layer, output=output, preset=preset, device="cpu")
    prepared = explainer.map_method
    graph = explainer.graph
    original = graph.model
    builder = model_builder(explainer.runner, prepared.touched | {explainer.logits})
    image = next(i for i in original.graph.input if i.name == graph.image_input.name)
    if image.type.tensor_type.elem_type != TensorProto.FLOAT:
        kind = helper.tensor_dtype_to_string(image.type.tensor_type.elem_type).split(".")[-1].lower()
        raise ModelError(f"input {image.name!r} is {kind}; fixtrace compile writes the backward of float32 models")
    batch_dim = image.type.tensor_type.shape.dim[0]
    inputs = []
    tag = method.replace("-", "_").replace("+", "p")  # gradcam++ -> gradcampp_map
    if class_input:
        chosen = builder.fresh("class", prefixed=False)
        inputs.append(helper.make_tensor_value_info(chosen, TensorProto.INT64, [_dim(batch_dim)]))
        target = chosen
    else:
        flat = builder.op("Flatten", [explainer.logits], "scores", axis=1)
        target = builder.op("ArgMax", [flat], "top_class", axis=1, keepdims=0)
    classes = builder.const(np.arange(explainer.num_classes, dtype=np.int64)[None], "classes")
    hit = builder.op("Equal", [classes, builder.unsqueeze(target, [1])], "is_target")
    one_hot = builder.op("Cast", [hit], "one_hot", to=TensorProto.FLOAT)
    made = COMPILED[method](prepared, builder, one_hot)
    map_output = builder.output(made.name, f"{tag}_map")
    class_output = builder.output(target, f"{tag}_class")
    compiled = onnx.ModelProto()
    compiled.CopyFrom(original)
    compiled.graph.node.extend(builder.nodes)
    compiled.graph.initializer.extend(builder.initializers)
    compiled.graph.input.extend(inputs)
    compiled.graph.output.extend(
        [
            helper.make_tensor_value_info(map_output, TensorProto.FLOAT, [_dim(batch_dim), *made.grid]),
            helper.make_tensor_value_info(class_output, TensorProto.INT64, [_dim(batch_dim)]),
        ]
    )
    record = {
        "method": method,
        "layer": made.layer,
        "map": map_output,
        "class": class_output,
        "class_input": inputs[0].name if inputs else None,
    }
    helper.set_model_props(compiled, {**{p.key: p.value for p in original.metadata_props}, METADATA_KEY: json.dumps(record)})
    return Compiled(
        compiled,
        method,
        made.layer,
        map_output,
        class_output,
        record["class_input"],
        made.grid,
        len(builder.nodes),
    )


def graph_names(model: onnx.ModelProto) -> set[str]:
    """Every name the graph uses: tensors, nodes, initializers, inputs, outputs."""
    g = model.graph
    names = {n.name for n in g.node} | {t for n in g.node for t in (*n.input, *n.output)}
    return names | {i.name for i in (*g.initializer, *g.input, *g.output, *g.value_info)}


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    """A declared dim as ``make_tensor_value_info`` takes it."""
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    return dim.dim_param or None


def model_builder(runner: Runner, touched: set[str]) -> GraphBuilder:
    """A builder of nodes for the runner's model: its names taken, the static shapes of what the
    nodes touch (``static_shapes``), its constants, and which tensors lead with the batch."""
    graph = runner.graph
    shapes = static_shapes(runner, touched)
    return GraphBuilder(graph.opset, graph_names(graph.model), shapes, graph.constants, batch_led=batch_led(runner, shapes))


def static_shapes(runner: Runner, touched: set[str]) -> dict[str, tuple[int, ...]]:
    """Static shapes at a batch of 2 (so that a dim broadcast over the batch shows as 1), or at
    the model's fixed batch; those inference cannot tell read from a run on a black input."""
    batch = runner.batch_shape(runner.graph.image_input.fixed_batch or 2)
    shapes = dict(runner.graph.shapes(batch))
    unknown = {t for t in touched if t not in shapes}
    if unknown:
        values = runner.session.run(np.zeros(batch, np.float32))
        shapes |= {t: tuple(values[t].shape) for t in unknown if t in values}
    return shapes


def batch_led(runner: Runner, shapes: dict[str, tuple[int, ...]]) -> set[str]:
    """The tensors of ``shapes`` (at the compile batch, ``static_shapes``) whose first dim is the
    batch: it follows the batch from 2 to 3 in shape inference (with a fixed batch, every tensor
    is static: all of them)."""
    fixed = runner.graph.image_input.fixed_batch
    if fixed:
        return {t for t, s in shapes.items() if len(s) > 1 and s[0] == fixed}
    at_three = runner.graph.shapes(runner.batch_shape(3))
    return {t for t, s in shapes.items() if len(s) > 1 and s[0] == 2 and tuple(at_three.get(t, ())) == (3, *s[1:])}
