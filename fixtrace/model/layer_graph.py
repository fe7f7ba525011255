"""The ONNX graph as a layer graph: nodes with op type, attributes, weights and shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from fixtrace.errors import ModelError
from fixtrace.model.checks import check_weights, check_windows
from fixtrace.model.shape_values import shape_only, shape_values

#: The default-domain opsets read (23: jax2onnx's default).
MIN_OPSET, MAX_OPSET = 7, 23
# Ops whose value is not a pure function of constant inputs; never folded.
_UNFOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


@dataclass
class Node:
    """One ONNX node.

    Attributes:
        name: the node's name, or its first output when the node is unnamed.
        op_type: ONNX op type, e.g. ``"Conv"``.
        inputs: input tensor names ("" for an omitted optional input).
        outputs: output tensor names.
        attrs: attributes as Python values (bytes decoded to str).
        order: position in topological order.
    """

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    order: int
    domain: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        """Return attribute ``key``, or ``default`` when absent."""
        return self.attrs.get(key, default)


@dataclass
class ImageInput:
    """What the graph says about its image input.

    Attributes:
        name: input tensor name.
        shape: declared dims; None where symbolic.
        layout: ``"NCHW"`` or ``"NHWC"``.
    """

    name: str
    shape: tuple[int | None, ...]
    layout: str

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the input declares, when it declares one."""
        return self.shape[0] if isinstance(self.shape[0], int) and self.shape[0] > 0 else None

    @property
    def channels(self) -> int | None:
        return self.shape[1] if self.layout == "NCHW" else self.shape[3]

    @property
    def height(self) -> int | None:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int | None:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


@dataclass
class LayerGraph:
    """A parsed ONNX model ready for backward walks.

    Attributes:
        model: the ONNX model as loaded.
        nodes: the non-constant nodes, in topological order.
        constants: every tensor whose value is known without an input: initializers,
            Constant nodes and subgraphs of constants folded at load time.
        graph: networkx DiGraph over node names; an edge carries the tensor in ``tensor``.
        image_input: the image input.
        outputs: graph output names.
        opset: the default-domain opset version.
    """

    model: onnx.ModelProto
    nodes: list[Node]
    constants: dict[str, np.ndarray]
    graph: nx.DiGraph
    image_input: ImageInput
    outputs: list[str]
    opset: int
    _shape_cache: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_model(cls, model: onnx.ModelProto) -> LayerGraph:
        """Build the layer graph.

        Args:
            model: a loaded ONNX model.

        Returns:
            The layer graph, constants folded.

        Raises:
            ModelError: no image input, or a constant subgraph cannot be evaluated.
        """
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ModelError(f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
        constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        nodes: list[Node] = []
        names: set[str] = set()
        for raw in _topological(model.graph.node):
            node = Node(
                name=_unique(raw.name or raw.output[0] or raw.op_type, names),
                op_type=raw.op_type,
                inputs=list(raw.input),
                outputs=list(raw.output),
                attrs={a.name: attr_value(a) for a in raw.attribute},
                order=len(nodes),
                domain=raw.domain,
            )
            if _is_constant(node, constants):
                _fold(raw, node, constants, model)
                continue
            node.order = len(nodes)
            nodes.append(node)
        graph = nx.DiGraph()
        producer = {out: n for n in nodes for out in n.outputs}
        for n in nodes:
            graph.add_node(n.name, node=n)
        for n in nodes:
            for t in n.inputs:
                if t in producer:
                    graph.add_edge(producer[t].name, n.name, tensor=t)
        check_weights(constants, nodes)
        check_windows(nodes)
        return cls(
            model=model,
            nodes=nodes,
            constants=constants,
            graph=graph,
            image_input=_image_input(model, nodes, constants),
            outputs=[o.name for o in model.graph.output],
            opset=opset,
        )

    @cached_property
    def producer(self) -> dict[str, Node]:
        """Map each computed tensor to the node that writes it."""
        return {out: n for n in self.nodes for out in n.outputs}

    @cached_property
    def consumers(self) -> dict[str, list[Node]]:
        """Map each tensor to the nodes that read it."""
        table: dict[str, list[Node]] = {}
        for n in self.nodes:
            for t in n.inputs:
                table.setdefault(t, []).append(n)
        return table

    def node(self, name: str) -> Node:
        """Return the node called ``name``."""
        return self.graph.nodes[name]["node"]

    def is_constant(self, tensor: str) -> bool:
        """True when ``tensor`` is known without running the model (or is an omitted input)."""
        return tensor == "" or tensor in self.constants

    def shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Static shapes of every tensor for a concrete input shape (cached per shape).

        Args:
            input_shape: the exact shape of the image input tensor.

        Returns:
            Tensor name -> shape, for every tensor whose shape inference could resolve. It runs
            on the graph with its constants folded and the tensors computed from shapes alone
            evaluated at ``input_shape`` (pads computed from Shape nodes, as torch's legacy
            exporter writes them).
        """
        key = tuple(int(d) for d in input_shape)
        if key not in self._shape_cache:
            shapes = _infer_shapes(self.model, self.image_input.name, key, self.constants)
            if self.shape_only and any(t and t not in shapes for n in self.nodes for t in n.outputs):
                known = self.constants | shape_values(self.model, self.image_input.name, key, self.shape_only)
                shapes = _infer_shapes(self.model, self.image_input.name, key, known)
            self._shape_cache[key] = shapes
        return self._shape_cache[key]

    @cached_property
    def shape_only(self) -> list[str]:
        """Computed tensors that depend on the input's shape only (see ``model.shape_values``)."""
        return shape_only(self.nodes, self.is_constant)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name#2``, ``name#3`` ... when another node already has it (ONNX does not
    require unique node names; the layer graph keys nodes by name)."""
    unique, k = name, 1
    while unique in taken:
        k += 1
        unique = f"{name}#{k}"
    taken.add(unique)
    return unique


def _topological(raw_nodes) -> list[onnx.NodeProto]:
    """ONNX asks for topological order; enforce it, since not every writer obeys."""
    produced_by = {out: i for i, n in enumerate(raw_nodes) for out in n.output}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(raw_nodes)))
    for i, n in enumerate(raw_nodes):
        for t in n.input:
            if t in produced_by and produced_by[t] != i:
                dag.add_edge(produced_by[t], i)
    try:
        order = list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        raise ModelError("the graph has a cycle: not a feed-forward ONNX model") from None
    return [raw_nodes[i] for i in order]


def attr_value(attr: onnx.AttributeProto) -> Any:
    """An attribute as a Python value: bytes decoded to str, tensors to numpy arrays."""
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _is_constant(node: Node, constants: dict[str, np.ndarray]) -> bool:
    if node.op_type in _UNFOLDABLE or node.domain not in ("", "ai.onnx"):
        return False
    if any(
        isinstance(v, onnx.GraphProto) or (isinstance(v, list) and v and isinstance(v[0], onnx.GraphProto))
        for v in node.attrs.values()
    ):
        return False  # a subgraph (If, Loop, Scan) may read tensors of the outer graph
    return all(t == "" or t in constants for t in node.inputs)


def _fold(raw: onnx.NodeProto, node: Node, constants: dict[str, np.ndarray], model: onnx.ModelProto) -> None:
    """Evaluate a node whose inputs are all constants, with onnx's reference evaluator."""
    if node.op_type == "Constant":
        constants[node.outputs[0]] = _constant_value(node)
        return
    from onnx.reference import ReferenceEvaluator  # imported lazily: only graphs with constant subgraphs need it

    inputs = [t for t in node.inputs if t]
    graph = helper.make_graph(
        [raw],
        "fold",
        inputs=[],
        outputs=[helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.outputs if o],
        initializer=[numpy_helper.from_array(np.asarray(constants[t]), t) for t in inputs],
    )
    mini = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        values = ReferenceEvaluator(mini).run(None, {})
    except Exception as exc:  # the reference evaluator raises many types; any of them means "cannot fold"
        raise ModelError(f"cannot evaluate constant node {node.name!r} ({node.op_type}): {exc}") from None
    for name, value in zip([o for o in node.outputs if o], values):
        constants[name] = np.asarray(value)


def _constant_value(node: Node) -> np.ndarray:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            return np.asarray(node.attrs[key], dtype=np.int64 if "int" in key else np.float32 if "float" in key else None)
    raise ModelError(f"Constant node {node.name!r} has no supported value attribute")


#: Element types the image input may have: fixtrace feeds it floats.
_FLOAT_INPUTS = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.DOUBLE: "float64"}
#: The largest input fixtrace feeds: a side over MAX_INPUT_SIDE, or more than MAX_INPUT_PIXELS
#: pixels, is a mistake in the model (or a model that is not an image classifier).
MAX_INPUT_SIDE = 8192
MAX_INPUT_PIXELS = 4096 * 4096


def _image_input(model: onnx.ModelProto, nodes: list[Node], constants: dict[str, np.ndarray]) -> ImageInput:
    inputs = [i for i in model.graph.input if i.name not in constants]
    if not inputs:
        raise ModelError("the model has no input tensor left to feed (every graph input is a constant)")
    if len(inputs) > 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(f"the model has {len(inputs)} inputs ({names}); fixtrace explains single-input image classifiers")
    spec = inputs[0]
    tensor_type = spec.type.tensor_type
    if tensor_type.elem_type not in _FLOAT_INPUTS:
        kind = helper.tensor_dtype_to_string(tensor_type.elem_type).split(".")[-1].lower() if tensor_type.elem_type else "untyped"
        raise ModelError(
            f"input {spec.name!r} is {kind}; fixtrace feeds images as float32, float16 or float64 tensors "
            "(a model taking raw integer pixels needs a float input to be explained)"
        )
    dims = tuple((d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None) for d in tensor_type.shape.dim)
    if len(dims) != 4:
        raise ModelError(
            f"input {spec.name!r} has rank {len(dims)}; an image classifier takes a rank-4 tensor (N, C, H, W) or (N, H, W, C)"
        )
    image = ImageInput(spec.name, dims, _layout(spec.name, dims, nodes))
    shape = "x".join("?" if d is None else str(d) for d in dims)
    if image.shape[0] == 0:
        raise ModelError(f"input {spec.name!r} ({shape}) declares a batch of 0 images")
    height, width = image.height, image.width
    if height == 0 or width == 0:
        raise ModelError(f"input {spec.name!r} ({shape}) declares {height}x{width} pixels: an empty image")
    if height is not None and width is not None and (max(height, width) > MAX_INPUT_SIDE or height * width > MAX_INPUT_PIXELS):
        raise ModelError(
            f"input {spec.name!r} declares {height}x{width} pixels; fixtrace feeds at most "
            f"{MAX_INPUT_PIXELS:,} pixels with sides up to {MAX_INPUT_SIDE} (is this an image classifier?)"
        )
    return image


def _layout(name: str, dims: tuple[int | None, ...], nodes: list[Node]) -> str:
    """NHWC when the graph transposes its input to NCHW first (tf2onnx) or the last dim looks like colour."""
    for n in nodes:
        if name in n.inputs:
            if n.op_type == "Transpose" and list(n.attr("perm", [])) == [0, 3, 1, 2]:
                return "NHWC"
            break
    if dims[3] in (1, 3) and dims[1] not in (1, 3):
        return "NHWC"
    return "NCHW"


def _infer_shapes(
    model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...], known: dict[str, np.ndarray]
) -> dict[str, tuple[int, ...]]:
    """Shapes by onnx's inference on ``model`` at ``input_shape``, with every node whose outputs
    are all in ``known`` (folded constants, values computed from shapes) replaced by those values."""
    concrete = onnx.ModelProto()
    concrete.CopyFrom(model)
    for spec in concrete.graph.input:
        if spec.name == input_name:
            for dim, value in zip(spec.type.tensor_type.shape.dim, input_shape):
                dim.Clear()
                dim.dim_value = value
    del concrete.graph.value_info[:]
    for spec in concrete.graph.output:  # declared output shapes may hold -1 for a dynamic batch: infer them
        spec.type.tensor_type.ClearField("shape")
    initializers = {i.name for i in concrete.graph.initializer}
    kept = []
    for node in concrete.graph.node:
        outputs = [o for o in node.output if o]
        if outputs and all(o in known for o in outputs):
            concrete.graph.initializer.extend(
                numpy_helper.from_array(np.asarray(known[o]), o) for o in outputs if o not in initializers
            )
        else:
            kept.append(node)
    del concrete.graph.node[:]
    concrete.graph.node.extend(kept)
    try:
        inferred = onnx.shape_inference.infer_shapes(concrete, data_prop=True)
    except Exception:  # shape inference is best effort: unresolved shapes are read from a run instead
        return {input_name: input_shape}
    shapes: dict[str, tuple[int, ...]] = {input_name: input_shape}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    shapes.update((name, tuple(np.shape(known[name]))) for name in known if name not in initializers)
    return shapes
