"""Small hand-built ONNX graphs, each odd in one way, for the hostile corpus.

Every builder returns an ``onnx.ModelProto`` (ir_version 8, opset 13 unless asked otherwise) that
is NOT run through the checker: some are meant to be invalid.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def model(nodes: list, inputs: list, outputs: list, inits: list, opset: int = 13, ir: int = 8) -> onnx.ModelProto:
    """A ModelProto from parts, not checked."""
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def tensor(name: str, elem: int, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, None if dims is None else list(dims))


def weights(shape, seed: int = 0, scale: float = 0.3, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def classifier(
    *,
    dims=(1, 3, 32, 32),
    elem: int = FLOAT,
    classes: int = 10,
    channels: int | None = None,
    middle: str = "Relu",
    middle_name: str = "act",
    conv: dict | None = None,
    kernel: int = 3,
    weight: np.ndarray | None = None,
    fc: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    head_extra: list | None = None,
    output_dims=None,
    opset: int = 13,
    ir: int = 8,
    conv_name: str = "conv",
) -> onnx.ModelProto:
    """Conv -> MIDDLE -> GlobalAveragePool -> Flatten -> Gemm (+ optional ops after the Gemm).

    Args:
        dims: the declared input dims (names for symbolic ones).
        elem: the input's element type.
        classes: scores out.
        channels: the conv weight's input channels (default: dims[1] when it is a number, else 3).
        middle: the op between the conv and the pool.
        conv: extra Conv attributes (pads, strides, group, ...).
        kernel: conv kernel side.
        weight, fc, bias: replace the conv weight, the dense weight or the dense bias.
        head_extra: nodes after the Gemm, reading "logits"; the last one must write "scores".
        output_dims: the declared output dims.
    """
    if channels is None:
        channels = dims[1] if isinstance(dims[1], int) else 3
    group = (conv or {}).get("group", 1)
    w = weight if weight is not None else weights((4, max(channels // max(group, 1), 1), kernel, kernel))
    fcw = fc if fc is not None else weights((4, classes), seed=1)
    fcb = bias if bias is not None else np.zeros(classes, np.float32)
    attrs = {"pads": [kernel // 2] * 4} | (conv or {})
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["conv_out"], name=conv_name, **attrs),
        helper.make_node(middle, ["conv_out"], ["mid_out"], name=middle_name),
        helper.make_node("GlobalAveragePool", ["mid_out"], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "FC", "FCB"], ["logits"], name="fc"),
    ]
    out_name = "logits"
    if head_extra:
        nodes += head_extra
        out_name = "scores"
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(fcw, "FC"), numpy_helper.from_array(fcb, "FCB")]
    out_dims = output_dims if output_dims is not None else [dims[0], classes]
    return model(nodes, [tensor("input", elem, dims)], [tensor(out_name, FLOAT, out_dims)], inits, opset, ir)


def feature_net(output: str, *, dims=(1, 3, 32, 32), extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, whose graph outputs are ``output``
    (one of conv_out, relu_out, pooled, logits) then ``extra_outputs``."""
    shapes = {
        "conv_out": [dims[0], 4, dims[2], dims[3]],
        "relu_out": [dims[0], 4, dims[2], dims[3]],
        "pooled": [dims[0], 4, 1, 1],
        "logits": [dims[0], 10],
    }
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu_out"], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "FC"], ["logits"], name="fc"),
    ]
    inits = [numpy_helper.from_array(weights((4, dims[1], 3, 3)), "W"), numpy_helper.from_array(weights((4, 10), 1), "FC")]
    outs = [tensor(name, FLOAT, shapes[name]) for name in (output, *extra_outputs)]
    return model(nodes, [tensor("input", FLOAT, dims)], outs, inits)


def dense_head_net(head: str, out_dims, *, dims=(1, 3, 32, 32)) -> onnx.ModelProto:
    """Conv -> Relu -> then ``head``: "detection" (Reshape to (N, 100, 4)), "segmentation"
    (1x1 Conv to 21 channels), "argmax" (ArgMax of the logits: int64), "pairs" (logits as (N, 5, 2)),
    "single" (one score), "empty" (zero classes), "rank3" ((N, 1, 10) scores)."""
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
    ]
    inits = [numpy_helper.from_array(weights((4, dims[1], 3, 3)), "W")]
    elem = FLOAT
    if head == "segmentation":
        nodes.append(helper.make_node("Conv", ["relu_out", "S"], ["out"], name="classifier"))
        inits.append(numpy_helper.from_array(weights((21, 4, 1, 1), 2), "S"))
    else:
        classes = {"detection": 400, "argmax": 10, "pairs": 10, "single": 1, "empty": 0, "rank3": 10}[head]
        nodes += [
            helper.make_node("GlobalAveragePool", ["relu_out"], ["pooled"], name="gap"),
            helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
            helper.make_node("Gemm", ["flat", "FC"], ["logits"], name="fc"),
        ]
        inits.append(numpy_helper.from_array(weights((4, classes), 1), "FC"))
        if head == "argmax":
            nodes.append(helper.make_node("ArgMax", ["logits"], ["out"], name="argmax", axis=1))
            elem = TensorProto.INT64
        elif head in ("detection", "pairs", "rank3"):
            shape = {"detection": [-1, 100, 4], "pairs": [-1, 5, 2], "rank3": [-1, 1, 10]}[head]
            inits.append(numpy_helper.from_array(np.array(shape, np.int64), "shape"))
            nodes.append(helper.make_node("Reshape", ["logits", "shape"], ["out"], name="reshape"))
        else:
            nodes.append(helper.make_node("Identity", ["logits"], ["out"], name="identity"))
    return model(nodes, [tensor("input", FLOAT, dims)], [tensor("out", elem, out_dims)], inits)


def two_input_net() -> onnx.ModelProto:
    m = classifier()
    m.graph.input.append(tensor("mask", FLOAT, [1, 3, 32, 32]))
    return m


def rank_input_net(dims) -> onnx.ModelProto:
    """A Gemm classifier on an input of any rank (Flatten first)."""
    features = int(np.prod([d for d in dims[1:]]))
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "FC"], ["logits"], name="fc"),
    ]
    inits = [numpy_helper.from_array(weights((max(features, 1), 10)), "FC")]
    return model(nodes, [tensor("input", FLOAT, dims)], [tensor("logits", FLOAT, [dims[0], 10])], inits)


def cyclic_net() -> onnx.ModelProto:
    m = classifier()
    nodes = list(m.graph.node)
    nodes[1].input[0] = "flat"  # Relu reads the Flatten that depends on it
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def side_branch_net(op: str) -> onnx.ModelProto:
    """The classifier plus an extra graph output computed by ``op`` from the conv output."""
    m = classifier()
    m.graph.node.append(helper.make_node(op, ["conv_out"], ["side"], name="side_op"))
    m.graph.output.append(tensor("side", FLOAT, [1, 4, 32, 32]))
    return m


def reduce_channels_net() -> onnx.ModelProto:
    """ReduceMax over the channel axis (keepdims) before the pool: the walk has no rule for that form."""
    m = classifier()
    nodes = list(m.graph.node)
    reduce = helper.make_node("ReduceMax", ["mid_out"], ["reduced"], name="channel_max", axes=[1], keepdims=1)
    expand_w = numpy_helper.from_array(weights((4, 1, 1, 1), 3), "E")
    expand = helper.make_node("Conv", ["reduced", "E"], ["expanded"], name="expand")
    nodes[2].input[0] = "expanded"
    del m.graph.node[:]
    m.graph.node.extend(nodes[:2] + [reduce, expand] + nodes[2:])
    m.graph.initializer.append(expand_w)
    return m


def chain_net(depth: int) -> onnx.ModelProto:
    """``depth`` Relu nodes between the conv and the pool."""
    m = classifier()
    nodes = list(m.graph.node)
    chain = [helper.make_node("Relu", [f"r{k}" if k else "mid_out"], [f"r{k + 1}"], name=f"relu{k}") for k in range(depth)]
    nodes[2].input[0] = f"r{depth}"
    del m.graph.node[:]
    m.graph.node.extend(nodes[:2] + chain + nodes[2:])
    return m


def duplicate_names_net() -> onnx.ModelProto:
    """Two convs with the same node name (ONNX does not require unique names)."""
    m = classifier(conv_name="layer")
    nodes = list(m.graph.node)
    second = helper.make_node("Conv", ["mid_out", "W2"], ["conv2_out"], name="layer", pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="layer")
    nodes[2].input[0] = "relu2_out"
    del m.graph.node[:]
    m.graph.node.extend(nodes[:2] + [second, relu] + nodes[2:])
    m.graph.initializer.append(numpy_helper.from_array(weights((4, 4, 3, 3), 4), "W2"))
    return m


def unnamed_net() -> onnx.ModelProto:
    m = classifier()
    for node in m.graph.node:
        node.name = ""
    return m


def constant_output_net() -> onnx.ModelProto:
    """The class scores are a constant: they do not depend on the image."""
    m = classifier()
    m.graph.node.append(
        helper.make_node(
            "Constant", [], ["const_scores"], name="const", value=numpy_helper.from_array(np.zeros((1, 10), np.float32))
        )
    )
    del m.graph.output[:]
    m.graph.output.append(tensor("const_scores", FLOAT, [1, 10]))
    return m


def identity_output_net() -> onnx.ModelProto:
    """The output is the input, untouched."""
    nodes = [helper.make_node("Identity", ["input"], ["out"], name="identity")]
    return model(nodes, [tensor("input", FLOAT, [1, 3, 32, 32])], [tensor("out", FLOAT, [1, 3, 32, 32])], [])


def if_net() -> onnx.ModelProto:
    """An If node on the path to the scores."""
    m = classifier()
    branch = helper.make_graph(
        [helper.make_node("Identity", ["flat"], ["branch_out"])], "branch", [], [tensor("branch_out", FLOAT, None)]
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = list(m.graph.node)
    nodes[4].input[0] = "picked"
    node_if = helper.make_node("If", ["cond"], ["picked"], name="choose", then_branch=branch, else_branch=branch)
    del m.graph.node[:]
    m.graph.node.extend(nodes[:4] + [node_if, nodes[4]])
    m.graph.initializer.append(cond)
    return m


def no_output_net() -> onnx.ModelProto:
    m = classifier()
    del m.graph.output[:]
    return m


def no_input_net() -> onnx.ModelProto:
    """The input is an initializer: nothing is left to feed."""
    m = classifier()
    m.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 3, 32, 32), np.float32), "input"))
    return m


def cast_input_net(elem: int) -> onnx.ModelProto:
    """An input of type ``elem`` cast to float inside the graph (common for uint8 image inputs)."""
    m = classifier()
    m.graph.input[0].type.tensor_type.elem_type = elem
    nodes = list(m.graph.node)
    nodes[0].input[0] = "as_float"
    del m.graph.node[:]
    m.graph.node.extend([helper.make_node("Cast", ["input"], ["as_float"], name="cast", to=FLOAT)] + nodes)
    return m


def typed_net(elem: int, dtype: type) -> onnx.ModelProto:
    """The whole classifier in another float type (input, weights and output)."""
    m = classifier(elem=elem)
    for init in m.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(dtype), init.name))
    m.graph.output[0].type.tensor_type.elem_type = elem
    return m


def softmax_net(op: str = "Softmax") -> onnx.ModelProto:
    return classifier(head_extra=[helper.make_node(op, ["logits"], ["scores"], name="softmax", axis=1)])


def mul_after_softmax_net() -> onnx.ModelProto:
    """Probabilities whose Softmax hides behind a Mul by one: the output is probabilities, not logits."""
    one = helper.make_node("Constant", [], ["one"], name="one", value=numpy_helper.from_array(np.array(1.0, np.float32)))
    return classifier(
        head_extra=[
            helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
            one,
            helper.make_node("Mul", ["probs", "one"], ["scores"], name="times_one"),
        ]
    )


def sigmoid_net() -> onnx.ModelProto:
    return classifier(head_extra=[helper.make_node("Sigmoid", ["logits"], ["scores"], name="sigmoid")])


def nonfinite_weight_net(where: str, value: float) -> onnx.ModelProto:
    """``value`` (nan, inf) planted in the conv weight, the dense weight or the dense bias."""
    w = weights((4, 3, 3, 3))
    fc = weights((4, 10), 1)
    bias = np.zeros(10, np.float32)
    {"conv": w, "fc": fc, "bias": bias}[where].reshape(-1)[1] = value
    return classifier(weight=w, fc=fc, bias=bias)


def external_net() -> onnx.ModelProto:
    """The classifier, to be saved with its weights as external data."""
    return classifier()
