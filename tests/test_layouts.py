"""Layer methods on graphs whose maps stay channels-last between layers (as jax2onnx writes them:
a Transpose around every conv): fixtrace reads only maps the graph establishes as NCHW, and
refuses a channels-last layer in one line instead of reading it as NCHW."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_rules_oracle import _w, build

from fixtrace import Explainer, FixtraceError, ModelError
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import feature_layouts

SIDE, CLASSES = 16, 5
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"w1": _w(rng, 6, 3, 3, 3), "w2": _w(rng, 8, 6, 3, 3), "fc": _w(rng, CLASSES, 8)}


def _conv(name: str, x: str, w: str) -> object:
    return helper.make_node("Conv", [x, w], [name], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


def channels_last_model():
    """x (N, H, W, 3) -> [T, Conv, T, Relu] x 2 with maps NHWC between the convs -> mean over H, W -> FC."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=TO_NCHW),
        _conv("c1", "t0", "w1"),
        helper.make_node("Transpose", ["c1"], ["t1"], perm=TO_NHWC),
        helper.make_node("Relu", ["t1"], ["r1"]),
        helper.make_node("Transpose", ["r1"], ["t2"], perm=TO_NCHW),
        _conv("c2", "t2", "w2"),
        helper.make_node("Transpose", ["c2"], ["t3"], perm=TO_NHWC),
        helper.make_node("Relu", ["t3"], ["r2"]),
        helper.make_node("ReduceMean", ["r2"], ["g"], axes=[1, 2], keepdims=0),
        helper.make_node("Gemm", ["g", "fc"], ["y"], transB=1),
    ]
    return build(nodes, ["N", SIDE, SIDE, 3], ["y"], _weights())


def channels_first_model():
    """The same network written NCHW throughout."""
    nodes = [
        _conv("c1", "x", "w1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        _conv("c2", "r1", "w2"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("ReduceMean", ["r2"], ["g"], axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["g", "fc"], ["y"], transB=1),
    ]
    return build(nodes, ["N", 3, SIDE, SIDE], ["y"], _weights())


def test_layouts_are_established_from_the_graph():
    layouts = feature_layouts(LayerGraph.from_model(channels_last_model()))
    assert layouts["x"] == "NHWC" and layouts["t0"] == "NCHW" and layouts["c1"] == "NCHW"
    assert layouts["t1"] == layouts["r1"] == "NHWC" and layouts["c2"] == "NCHW" and layouts["r2"] == "NHWC"
    assert "g" not in layouts and "y" not in layouts


def test_gradcam_reads_the_conv_outputs_and_equals_the_channels_first_graph():
    photo = np.random.default_rng(4).uniform(0, 255, (SIDE, SIDE, 3)).astype(np.uint8)
    last = Explainer(channels_last_model(), method="gradcam", preset="raw", device="cpu")
    assert last.map_method.layer == "c2"  # never the channels-last ReLU output r2
    first = Explainer(channels_first_model(), method="gradcam:layer=c2", preset="raw", device="cpu")
    got, want = last.explain(photo, target=1), first.explain(photo, target=1)
    assert want.input_map.max() > 0
    np.testing.assert_allclose(got.input_map, want.input_map, rtol=1e-5, atol=1e-6 * float(want.input_map.max()))
    sharp = Explainer(channels_last_model(), method="gradcam:ge", preset="raw", device="cpu").explain(photo, target=1)
    assert sharp.input_map.max() > 0


def test_a_channels_last_layer_is_refused_not_misread():
    with pytest.raises(FixtraceError, match=r"layer 'r2' is NHWC \(channels last\): gradcam reads \(N, C, H, W\) maps"):
        Explainer(channels_last_model(), method="gradcam:layer=r2", preset="raw", device="cpu")
    with pytest.raises(ModelError, match=r"pools axes \(1, 2\): use --method gradcam"):
        Explainer(channels_last_model(), method="cam", preset="raw", device="cpu")
