"""Class-sensitive fixations: the ``spread`` rule's counts on the last feature map are each
neuron's share of the class score, computed here from onnxruntime's activations and the ONNX
weights alone; and on two objects, each class's map goes to its own object."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import ROOT
from fixtrace import Explainer
from fixtrace.images.load import load_photo
from fixtrace.images.preprocess import preprocess
from fixtrace.images.presets import get_preset
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import load_model

MODEL = ROOT / "models" / "mobilenet_v2.onnx"
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"


def _pooled_map_and_weights(target: int) -> tuple[str, np.ndarray, np.ndarray]:
    """The GAP input's name, its (C, H, W) activation on chelsea (onnxruntime) and the
    classifier's weights of ``target`` (C,), read from the ONNX file."""
    model = onnx.load(str(MODEL))
    (pool,) = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    (gemm,) = [n for n in model.graph.node if n.op_type == "Gemm"]
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    w = weights[gemm.input[1]]
    w = w[target] if any(a.name == "transB" and a.i == 1 for a in gemm.attribute) else w[:, target]
    model.graph.output.append(onnx.ValueInfoProto(name=pool.input[0]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    spec = LayerGraph.from_model(load_model(MODEL)).image_input
    photo = load_photo(CHELSEA)
    x = preprocess(photo.pixels, spec, get_preset("imagenet"), photo.size)[0][None]
    (a,) = session.run([pool.input[0]], {spec.name: x})
    return pool.input[0], a[0].astype(np.float64), w.astype(np.float64)


@pytest.mark.parametrize("target", [285, 728])  # Egyptian cat (predicted), plastic bag
def test_spread_counts_on_the_last_map_are_each_neurons_share_of_the_class_score(target):
    name, a, w = _pooled_map_and_weights(target)
    explainer = Explainer(MODEL, method="fixations:rule=spread")
    (e,) = explainer.explain(CHELSEA, target=[target])
    layer = e.per_layer[name]
    got = np.zeros(a.shape)
    for (c, r, q), count in zip(layer.positions, layer.counts):
        got[c, r, q] += count
    # logit = sum_k w_k mean(A_k) + b = sum_{k,r,q} w_k A_krq / HW + b: the neurons whose channel
    # contributes positively (w_k mean(A_k) > 0) share the count in proportion to w_k A_krq.
    contribution = w[:, None, None] * a / (a.shape[1] * a.shape[2])
    positive_channel = (w * a.mean(axis=(1, 2))) > 0
    expected = np.where(positive_channel[:, None, None] & (a > 0), contribution, 0.0)
    expected /= expected.sum()
    assert got.sum() == pytest.approx(1.0, abs=1e-4)
    assert np.all(expected[got > 0] > 0)
    assert np.all(got[expected >= 2.0**-20] > 0)  # smaller shares round to 0 (multiples of 2**-20)
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_the_authors_rule_is_kept_by_name():
    """``rule=authors``: every positive channel with the whole count (whole numbers), each at its
    channel's spatial argmax, one per channel."""
    explainer = Explainer(MODEL, method="fixations:rule=authors")
    e = explainer.explain(CHELSEA)
    name = next(t for t, layer in e.per_layer.items() if layer.op_type != "Input" and len(layer.shape) == 2)
    counts = e.per_layer[name].counts
    assert np.all(counts == 1.0)
    assert e.settings["rule"] == "authors"


FASHION = ROOT / "models" / "fashion"


@pytest.mark.parametrize(
    "model, pooled",
    [(MODEL, True), (FASHION / "resnet.onnx", True), (FASHION / "inception.onnx", True), (FASHION / "vgg.onnx", False)],
)
def test_the_head_is_told_from_the_graph(model, pooled):
    """GAP heads (MobileNetV2 and the Fashion ResNet/Inception) against the VGG-style model, whose
    scores read a flattened map through two dense layers."""
    from fixtrace.fixations.head import reads_global_pool
    from fixtrace.model.outputs import find_logits

    graph = LayerGraph.from_model(load_model(model))
    assert reads_global_pool(graph, find_logits(graph, None)) is pooled


def test_heads_of_every_spelling_are_global_pools_and_a_flattened_conv_is_not():
    from test_heads import HEADS, head_model
    from test_rules_oracle import _w, build

    from fixtrace.fixations.head import reads_global_pool

    for head in HEADS:
        assert reads_global_pool(LayerGraph.from_model(head_model(head)), "y"), head
    rng = np.random.default_rng(3)
    body = [
        onnx.helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["c"], ["r"]),
        onnx.helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        onnx.helper.make_node("Flatten", ["p"], ["f"]),
        onnx.helper.make_node("Gemm", ["f", "fc"], ["h"], transB=1),
        onnx.helper.make_node("Relu", ["h"], ["hr"]),
        onnx.helper.make_node("Gemm", ["hr", "fc2"], ["y"], transB=1),
    ]
    inits = {"w": _w(rng, 4, 3, 3, 3), "b": _w(rng, 4), "fc": _w(rng, 6, 64), "fc2": _w(rng, 5, 6)}
    assert not reads_global_pool(LayerGraph.from_model(build(body, ["N", 3, 8, 8], ["y"], inits)), "y")


def _head_graph(head: list, extra: dict | None = None) -> LayerGraph:
    """A conv body (8x8 -> 4 channels, ReLU) then ``head`` (nodes from "a" to "y")."""
    from test_rules_oracle import _w, build

    rng = np.random.default_rng(5)
    body = [
        onnx.helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["c"], ["a"]),
    ]
    inits = {"w": _w(rng, 4, 3, 3, 3), "w1": _w(rng, 6, 4, 1, 1), "w2": _w(rng, 5, 6, 1, 1), "fc": _w(rng, 5, 4)}
    return LayerGraph.from_model(build(body + head, [1, 3, 8, 8], ["y"], inits | (extra or {})))


_N = onnx.helper.make_node
#: Heads that pool the whole map without a Global* op or with ops on the pooled vector.
POOLED_HEADS = {
    "full-map AveragePool": [
        _N("AveragePool", ["a"], ["p"], kernel_shape=[8, 8]),
        _N("Flatten", ["p"], ["f"]),
        _N("Gemm", ["f", "fc"], ["y"], transB=1),
    ],
    "1x1 conv classifier after the pool": [
        _N("GlobalAveragePool", ["a"], ["p"]),
        _N("Conv", ["p", "w1"], ["h"], kernel_shape=[1, 1]),
        _N("HardSigmoid", ["h"], ["hs"]),
        _N("Conv", ["hs", "w2"], ["z"], kernel_shape=[1, 1]),
        _N("Flatten", ["z"], ["y"]),
    ],
    "a LayerNorm on the pooled vector": [
        _N("GlobalAveragePool", ["a"], ["p"]),
        _N("Flatten", ["p"], ["f"]),
        _N("ReduceMean", ["f"], ["m"], axes=[1]),
        _N("Sub", ["f", "m"], ["d"]),
        _N("Mul", ["d", "d"], ["sq"]),
        _N("Gemm", ["sq", "fc"], ["y"], transB=1),
    ],
}


@pytest.mark.parametrize("head", list(POOLED_HEADS))
def test_heads_that_pool_in_other_spellings_are_global_pools_given_the_shapes(head):
    from fixtrace.fixations.head import reads_global_pool

    graph = _head_graph(POOLED_HEADS[head])
    assert reads_global_pool(graph, "y", graph.shapes((1, 3, 8, 8)))


def test_a_partial_pool_before_a_dense_layer_is_a_flattened_map():
    from fixtrace.fixations.head import reads_global_pool

    head = [
        _N("AveragePool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        _N("Flatten", ["p"], ["f"]),
        _N("Gemm", ["f", "big"], ["y"], transB=1),
    ]
    graph = _head_graph(head, {"big": np.ones((5, 64), np.float32)})
    assert not reads_global_pool(graph, "y", graph.shapes((1, 3, 8, 8)))


@pytest.mark.parametrize(
    "model, location, rule", [(MODEL, "coarse-centre", "spread"), (FASHION / "vgg.onnx", "centre", "authors")]
)
def test_the_default_follows_the_head_and_named_options_win(model, location, rule):
    photo = CHELSEA if model == MODEL else FASHION / "samples" / "00001.png"
    auto = Explainer(model).explain(photo)
    named = Explainer(model, method=f"fixations:conv_location={location}:rule={rule}").explain(photo)
    assert (auto.settings["conv_location"], auto.settings["rule"]) == (location, rule)
    assert auto.settings["head"] == ("global pool" if model == MODEL else "flattened map")
    np.testing.assert_array_equal(auto.points, named.points)
    np.testing.assert_array_equal(auto.counts, named.counts)
    other = "authors" if rule == "spread" else "spread"
    overridden = Explainer(model, method=f"fixations:rule={other}").explain(photo)
    assert overridden.settings["rule"] == other and overridden.settings["conv_location"] == location
