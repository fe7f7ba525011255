"""Products of two computed tensors: squeeze-and-excitation gates (MobileNetV3, EfficientNet) and
Swish. Fixations follow the feature map with the gate as a weight; the gradient is the product
rule, checked against finite differences of the onnxruntime forward."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from test_rules_oracle import _w, build

from fixtrace import Explainer
from fixtrace.gradients import GradientPlan
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.tensors import Tensors

SIDE = 8


def _head(source: str) -> list:
    return [
        helper.make_node("GlobalAveragePool", [source], ["p2"]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]


def se_model():
    """conv -> ReLU -> r * sigmoid(1x1 conv(global pool(r))) -> pool -> FC."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Conv", ["p", "se"], ["q"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["q"], ["s"]),
        helper.make_node("Mul", ["r", "s"], ["m"]),
        *_head("m"),
    ]
    rng = np.random.default_rng(5)
    return build(nodes, [1, 3, SIDE, SIDE], ["y"], {"w": _w(rng, 4, 3, 3, 3), "se": _w(rng, 4, 4, 1, 1), "fc": _w(rng, 3, 4)})


def swish_model():
    """conv -> c * sigmoid(c) -> pool -> FC."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Mul", ["s", "c"], ["m"]),  # the gate first: the map is still the one computed earliest
        *_head("m"),
    ]
    rng = np.random.default_rng(6)
    return build(nodes, [1, 3, SIDE, SIDE], ["y"], {"w": _w(rng, 4, 3, 3, 3), "fc": _w(rng, 3, 4)})


def _photo() -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (SIDE, SIDE, 3)).astype(np.uint8)


def test_fixations_follow_the_feature_map_through_a_gate():
    for model, feature_map, gate in ((se_model(), "r", "s"), (swish_model(), "c", "s")):
        e = Explainer(model, preset="raw", device="cpu").explain(_photo())
        layers = e.per_layer
        assert gate not in layers  # the gate is a weight: no fixation goes to it
        np.testing.assert_array_equal(layers[feature_map].positions, layers["m"].positions)
        np.testing.assert_array_equal(layers[feature_map].counts, layers["m"].counts)
        assert len(e.points) > 0


def test_the_gates_gradient_is_the_product_rule():
    model = se_model()
    graph = LayerGraph.from_model(model)
    x = np.random.default_rng(8).standard_normal((1, 3, SIDE, SIDE)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    plan = GradientPlan(graph, "y")
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    keep = sorted(plan.needs - {"x"})
    kept = _run_keeping(model, keep, x)
    seed = np.zeros((1, 3), np.float32)
    seed[0, 1] = 1
    grad = plan.run(seed, Tensors(kept | {"x": x} | values, graph.shapes(x.shape), graph.constants))["x"]
    direction = np.random.default_rng(9).standard_normal(x.shape)
    reference, eps = ReferenceEvaluator(_in_float64(model)), 1e-4
    up = reference.run(None, {"x": x.astype(np.float64) + eps * direction})[0][0, 1]
    down = reference.run(None, {"x": x.astype(np.float64) - eps * direction})[0][0, 1]
    numeric = (up - down) / (2 * eps)  # float64 central differences: float32's are noise at this scale
    np.testing.assert_allclose(float((grad * direction).sum()), numeric, rtol=1e-3, atol=1e-6)


def _in_float64(model):
    """The model with float64 weights, input and output (onnx's reference runs it in float64)."""
    double = onnx.ModelProto()
    double.CopyFrom(model)
    for tensor in double.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float64), tensor.name))
    for value in (*double.graph.input, *double.graph.output):
        value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del double.graph.value_info[:]
    return double


def _run_keeping(model, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    from fixtrace.runtime.session import Session

    return Session(LayerGraph.from_model(model), names).run(x)
