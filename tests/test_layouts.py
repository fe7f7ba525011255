"""Layer methods on graphs whose maps stay channels-last between layers (as jax2onnx writes them:
a Transpose around every conv, activations, Add and the pool on NHWC tensors): fixtrace reads
each map with the channel axis the graph establishes, so the two spellings of one network give
the same maps and fixations; a map whose layout the graph does not establish is refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from test_rules_oracle import _w, build

from fixtrace import Explainer, FixtraceError
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import feature_layouts

SIDE, CLASSES = 16, 5
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
#: Ops ONNX defines on (N, C, H, W) maps: the rewrite wraps them in Transposes.
_CHANNELS_FIRST = {"Conv", "MaxPool", "AveragePool", "BatchNormalization"}


def to_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (NCHW throughout) rewritten as jax2onnx writes it: an NHWC input, every conv and pool
    between Transposes, element-wise ops on NHWC maps (per-channel constants (C, 1, 1) as (C,)),
    GlobalAveragePool as ReduceMean over axes 1, 2. Tensor names are kept for the NHWC maps."""
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes, nhwc = [], {graph.input[0].name}
    for node in graph.node:
        if node.op_type in _CHANNELS_FIRST:
            nodes.append(helper.make_node("Transpose", [node.input[0]], [f"{node.output[0]}/nchw_in"], perm=TO_NCHW))
            inner = helper.make_node(node.op_type, [f"{node.output[0]}/nchw_in", *node.input[1:]], [f"{node.output[0]}/nchw"])
            inner.attribute.extend(node.attribute)
            nodes += [inner, helper.make_node("Transpose", [f"{node.output[0]}/nchw"], [node.output[0]], perm=TO_NHWC)]
            nhwc.add(node.output[0])
        elif node.op_type == "GlobalAveragePool":
            axes = f"{node.output[0]}/axes"
            inits[axes] = np.array([1, 2], np.int64)
            nodes.append(helper.make_node("ReduceMean", [node.input[0], axes], [node.output[0]], keepdims=1))
        elif any(t in nhwc for t in node.input) and node.op_type not in ("Flatten", "Reshape"):
            for t in node.input:
                if t in inits and inits[t].ndim == 3:
                    inits[t] = inits[t].transpose(1, 2, 0)
            nodes.append(node)
            nhwc.add(node.output[0])
        else:
            nodes.append(node)
    (x,) = graph.input
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    image = helper.make_tensor_value_info(x.name, x.type.tensor_type.elem_type, [dims[0], dims[2], dims[3], dims[1]])
    written = helper.make_graph(
        nodes, "nhwc", [image], list(graph.output), [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    opset = max(18, model.opset_import[0].version)  # ReduceMean's axes as an input
    return helper.make_model(written, opset_imports=[helper.make_opsetid("", opset)], ir_version=model.ir_version)


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "w1": _w(rng, 6, 3, 3, 3),
        "b1": _w(rng, 6),
        "w2": _w(rng, 6, 6, 3, 3),
        "w3": _w(rng, 8, 6, 3, 3),
        "b3": _w(rng, 8),
        "shift": _w(rng, 8, 1, 1),
        "fc": _w(rng, CLASSES, 8),
        "fc_b": _w(rng, CLASSES),
    }


def small_cnn() -> onnx.ModelProto:
    """x (N, 3, 16, 16) -> conv s2 -> ReLU -> conv + residual -> ReLU -> max pool -> conv -> swish
    -> + shift -> ReLU -> global average pool -> flatten -> FC, written NCHW as torch does."""
    same = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2, 2], **same),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], **same),
        helper.make_node("Add", ["c2", "r1"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w3", "b3"], ["c3"], **same),
        helper.make_node("Sigmoid", ["c3"], ["gate"]),
        helper.make_node("Mul", ["c3", "gate"], ["swish"]),
        helper.make_node("Add", ["swish", "shift"], ["shifted"]),
        helper.make_node("Relu", ["shifted"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], transB=1),
    ]
    return build(nodes, ["N", 3, SIDE, SIDE], ["y"], _weights())


PHOTO = np.random.default_rng(4).uniform(0, 255, (SIDE, SIDE, 3)).astype(np.uint8)


def _explain(model: onnx.ModelProto, method: str, target: int | None = 1):
    explainer = Explainer(model, method=method, preset="raw", device="cpu")
    return explainer, explainer.explain(PHOTO, target=target)


def assert_same_maps(first: onnx.ModelProto, last: onnx.ModelProto, method: str, target: int | None = 1) -> float:
    """The maps of ``method`` on both spellings agree within 1e-5 of their peak; returns the largest difference."""
    (e1, want), (e2, got) = _explain(first, method, target), _explain(last, method, target)
    assert getattr(e1.map_method, "layer", None) == getattr(e2.map_method, "layer", None)
    peak = float(np.abs(want.input_map).max())
    assert peak > 0
    diff = float(np.abs(got.input_map - want.input_map).max())
    assert diff <= 1e-5 * peak, (method, diff, peak)
    return diff


def test_layouts_are_established_from_the_graph():
    layouts = feature_layouts(LayerGraph.from_model(to_channels_last(small_cnn())))
    assert layouts["x"] == "NHWC" and layouts["c1/nchw"] == "NCHW" and layouts["c1"] == "NHWC"
    assert layouts["r1"] == layouts["sum"] == layouts["swish"] == layouts["r3"] == "NHWC"
    assert layouts["g"] == "NHWC"  # ReduceMean keeping its dims keeps the layout
    assert "f" not in layouts and "y" not in layouts


@pytest.mark.parametrize(
    "method",
    [
        "gradcam",
        "cam",
        "guided-gradcam",
        "gradcam:ge",
        "cam:ge",
        "scorecam",
        "gradcam++",
        "layercam:ge",
        "xgradcam",
        "integrated-gradients:baseline=black",
        "smoothgrad",
    ],
)
def test_layer_methods_agree_on_both_layouts(method):
    assert_same_maps(small_cnn(), to_channels_last(small_cnn()), method)


def test_the_default_layer_is_the_last_relu_on_both_layouts():
    for model in (small_cnn(), to_channels_last(small_cnn())):
        assert Explainer(model, method="gradcam", preset="raw", device="cpu").map_method.layer == "r3"
        assert Explainer(model, method="cam", preset="raw", device="cpu").map_method.layer == "r3"


def test_an_nhwc_layer_can_be_asked_for():
    assert_same_maps(small_cnn(), to_channels_last(small_cnn()), "gradcam:layer=r1")
    assert_same_maps(small_cnn(), to_channels_last(small_cnn()), "gradcam:layer=sum")


def test_fixations_are_identical_on_both_layouts():
    (_, want), (_, got) = _explain(small_cnn(), "fixations"), _explain(to_channels_last(small_cnn()), "fixations")
    np.testing.assert_array_equal(got.points, want.points)
    np.testing.assert_array_equal(got.input_map, want.input_map)
    (_, want), (_, got) = _explain(small_cnn(), "fixations:ge"), _explain(to_channels_last(small_cnn()), "fixations:ge")
    np.testing.assert_allclose(got.input_map, want.input_map, atol=1e-6)


def test_a_layer_of_unknown_layout_is_refused_not_misread():
    model = to_channels_last(small_cnn())
    model.graph.node.append(helper.make_node("Transpose", ["r3"], ["odd"], perm=[0, 2, 1, 3]))
    model.graph.node.append(helper.make_node("Relu", ["odd"], ["odd_relu"]))
    model.graph.output.append(helper.make_tensor_value_info("odd_relu", onnx.TensorProto.FLOAT, None))
    model = onnx.shape_inference.infer_shapes(model)
    with pytest.raises(FixtraceError, match=r"layer 'odd_relu' has a layout the graph does not establish"):
        Explainer(model, method="gradcam:layer=odd_relu", preset="raw", device="cpu")
    with pytest.raises(FixtraceError, match=r"layer 'f' has shape \(1, 8\); gradcam reads a rank-4 feature map"):
        Explainer(model, method="gradcam:layer=f", preset="raw", device="cpu")


@pytest.mark.torch
def test_a_torch_export_rewritten_channels_last_explains_alike(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed to export the model (pip install torch==2.13.0)")
    torch.manual_seed(1)  # a seed whose Grad-CAM of class 1 is not all zero
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1),
        torch.nn.Hardswish(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, CLASSES),
    ).eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, SIDE, SIDE),), str(path), dynamo=False, opset_version=17, input_names=["x"])
    first = onnx.load(str(path))
    last = to_channels_last(first)
    for method in ("gradcam", "cam", "guided-gradcam", "gradcam:ge"):
        assert_same_maps(first, last, method)
    (_, want), (_, got) = _explain(first, "fixations"), _explain(last, "fixations")
    np.testing.assert_array_equal(got.points, want.points)
