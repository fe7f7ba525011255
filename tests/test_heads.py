"""Graphs as exporters write them: CAM heads of every spelling (against Grad-CAM, which equals CAM
up to a positive scale on a linear global-average-pool head), shapes computed by Shape nodes
(torch's legacy 'same' padding, a dynamic batch), and maps that come out empty."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper
from test_rules_oracle import _w, build

from fixtrace import EmptyMapWarning, Explainer
from fixtrace.cli import main
from fixtrace.methods.extrapolation import GradualExtrapolation
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.tensors import Tensors

SIDE, CLASSES, K = 8, 5, 4
_RNG = np.random.default_rng(11)
_BODY = {"w": _w(_RNG, K, 3, 3, 3), "b": _w(_RNG, K)}
_FC = {"fc": _w(_RNG, CLASSES, K), "fc_b": _w(_RNG, CLASSES), "wk": _w(_RNG, K, CLASSES)}
_HEAD_CONV = {"w1": _w(_RNG, CLASSES, K, 1, 1), "b1": _w(_RNG, CLASSES)}
_AXES = np.array([2, 3], np.int64)


def _n(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], **attrs)


#: Head name -> (nodes after the body's map "a", extra constants, the bias CAM leaves out).
HEADS = {
    "gemm": (
        [_n("GlobalAveragePool", ["a"], "g"), _n("Flatten", ["g"], "f"), _n("Gemm", ["f", "fc", "fc_b"], "y", transB=1)],
        {},
        "fc_b",
    ),
    "matmul_add": (
        [_n("ReduceMean", ["a"], "g", axes=[2, 3], keepdims=0), _n("MatMul", ["g", "wk"], "m"), _n("Add", ["m", "fc_b"], "y")],
        {},
        "fc_b",
    ),
    "identity_squeeze": (
        [
            _n("GlobalAveragePool", ["a"], "g"),
            _n("Identity", ["g"], "i"),
            _n("Squeeze", ["i", "sq"], "s"),
            _n("Gemm", ["s", "fc", "fc_b"], "y", transB=1),
        ],
        {"sq": np.array([2, 3], np.int64)},
        "fc_b",
    ),
    "reducesum_div": (
        [
            _n("ReduceSum", ["a", "axes"], "g", keepdims=1),
            _n("Div", ["g", "cells"], "d"),
            _n("Reshape", ["d", "shape"], "r"),
            _n("Gemm", ["r", "fc", "fc_b"], "y", transB=1),
        ],
        {"axes": _AXES, "cells": np.array(float(SIDE * SIDE), np.float32), "shape": np.array([0, -1], np.int64)},
        "fc_b",
    ),
    "reducesum_mul": (
        [
            _n("ReduceSum", ["a", "axes"], "g", keepdims=0),
            _n("Mul", ["g", "inv"], "d"),
            _n("MatMul", ["d", "wk"], "y"),
        ],
        {"axes": _AXES, "inv": np.array(1.0 / (SIDE * SIDE), np.float32)},
        None,
    ),
    "reducesum_alone": (
        [_n("ReduceSum", ["a", "axes"], "g", keepdims=0), _n("Gemm", ["g", "fc"], "y", transB=1)],
        {"axes": _AXES},
        None,
    ),
    "conv1x1_then_pool": (
        [_n("Conv", ["a", "w1", "b1"], "c1"), _n("GlobalAveragePool", ["c1"], "g"), _n("Flatten", ["g"], "y")],
        _HEAD_CONV,
        "b1",
    ),
    "conv1x1_relu_pool": (
        [
            _n("Conv", ["a", "w1", "b1"], "c1"),
            _n("Relu", ["c1"], "r1"),
            _n("GlobalAveragePool", ["r1"], "g"),
            _n("Flatten", ["g"], "y"),
        ],
        _HEAD_CONV,
        None,
    ),
}


def head_model(head: str) -> onnx.ModelProto:
    nodes, extra, _ = HEADS[head]
    body = [_n("Conv", ["x", "w", "b"], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), _n("Relu", ["c"], "a")]
    return build(body + nodes, ["N", 3, SIDE, SIDE], ["y"], {**_BODY, **_FC, **_HEAD_CONV, **extra}, opset=13)


def _maps(model, method: str, photo: np.ndarray, target: int) -> np.ndarray:
    return Explainer(model, method=method, preset="raw", device="cpu").explain(photo, target=target).input_map


@pytest.mark.filterwarnings("ignore::fixtrace.EmptyMapWarning")  # classes whose maps are all zero are skipped below
@pytest.mark.parametrize("head", list(HEADS))
def test_cam_finds_the_class_weights_and_equals_gradcam_up_to_scale(head):
    model = head_model(head)
    explainer = Explainer(model, method="cam", preset="raw", device="cpu")
    cam = explainer.map_method
    assert cam.layer == ("r1" if head == "conv1x1_relu_pool" else "a")
    # Invariant: the spatial mean of sum_k w_ck A_k is the class score less its bias.
    x = np.random.default_rng(5).standard_normal((2, 3, SIDE, SIDE)).astype(np.float32)
    run = explainer.runner.run(x)
    bias = explainer.graph.constants[HEADS[head][2]] if HEADS[head][2] else np.zeros(CLASSES, np.float32)
    for target in range(CLASSES):
        means = cam.attributions(run.tensors, [target, target]).mean(axis=(1, 2))
        np.testing.assert_allclose(means + bias[target], run.scores[:, target], rtol=1e-4, atol=1e-5)
    # Grad-CAM on the same layer is CAM / (rows x cols): equal once normalised.
    photo = np.random.default_rng(6).uniform(0, 255, (SIDE, SIDE, 3)).astype(np.uint8)
    compared = 0
    for target in range(CLASSES):
        want = _maps(model, f"gradcam:layer={cam.layer}", photo, target)
        got = _maps(model, "cam", photo, target)
        if want.max() > 0:
            np.testing.assert_allclose(got / got.max(), want / want.max(), atol=1e-5)
            compared += 1
    assert compared >= 2


def test_a_head_without_a_pool_is_refused_in_one_line():
    body = [_n("Conv", ["x", "w", "b"], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), _n("Flatten", ["c"], "f")]
    model = build(
        [*body, _n("Gemm", ["f", "big"], "y", transB=1)], ["N", 3, SIDE, SIDE], ["y"], {**_BODY, "big": _w(_RNG, 5, 256)}
    )
    with pytest.raises(
        Exception, match=r"CAM needs a global average pool before the fully connected layer; found Conv: use --method gradcam"
    ):
        Explainer(model, method="cam", preset="raw", device="cpu")


# --------------------------------------------------------------------------------------------
# Shapes computed by Shape nodes
# --------------------------------------------------------------------------------------------


def _same_pad(prefix: str, x: str) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """timm's pad_same for a 3x3, stride-2 conv as torch's legacy exporter writes it: the pads
    computed from Shape(x) (total = (ceil(n / 2) - 1) * 2 + 3 - n; begin = total // 2)."""
    numbers = {"one": [1], "two": [2], "three": [3], "end": [4], "zeros": [0, 0]}
    c = {f"{prefix}{k}": np.array(v, np.int64) for k, v in numbers.items()}
    p = prefix
    nodes = [
        _n("Shape", [x], f"{p}shape"),
        _n("Slice", [f"{p}shape", f"{p}two", f"{p}end"], f"{p}hw"),
        _n("Add", [f"{p}hw", f"{p}one"], f"{p}h1"),
        _n("Div", [f"{p}h1", f"{p}two"], f"{p}ceil"),
        _n("Sub", [f"{p}ceil", f"{p}one"], f"{p}steps"),
        _n("Mul", [f"{p}steps", f"{p}two"], f"{p}span"),
        _n("Add", [f"{p}span", f"{p}three"], f"{p}reach"),
        _n("Sub", [f"{p}reach", f"{p}hw"], f"{p}total"),
        _n("Div", [f"{p}total", f"{p}two"], f"{p}begin"),
        _n("Sub", [f"{p}total", f"{p}begin"], f"{p}end_pad"),
        _n("Concat", [f"{p}zeros", f"{p}begin", f"{p}zeros", f"{p}end_pad"], f"{p}pads", axis=0),
        _n("Pad", [x, f"{p}pads"], f"{p}padded"),
    ]
    return nodes, c


def computed_pads_model(declared_batch: int | str = "N") -> onnx.ModelProto:
    """Two 'same'-padded stride-2 convs whose pads come from Shape nodes, a flatten to
    (Shape(x)[0], -1) and an FC: shapes only known once the Shape nodes are folded."""
    rng = np.random.default_rng(12)
    pad1, c1 = _same_pad("p1/", "x")
    pad2, c2 = _same_pad("p2/", "r1")
    nodes = [
        *pad1,
        _n("Conv", ["p1/padded", "w1"], "conv1", kernel_shape=[3, 3], strides=[2, 2]),
        _n("Relu", ["conv1"], "r1"),
        *pad2,
        _n("Conv", ["p2/padded", "w2"], "conv2", kernel_shape=[3, 3], strides=[2, 2]),
        _n("Relu", ["conv2"], "r2"),
        _n("GlobalAveragePool", ["r2"], "g"),
        _n("Shape", ["g"], "gshape"),
        _n("Gather", ["gshape", "zero"], "batch", axis=0),
        _n("Unsqueeze", ["batch", "zero1"], "batch1"),
        _n("Concat", ["batch1", "minus1"], "target", axis=0),
        _n("Reshape", ["g", "target"], "flat"),
        _n("Gemm", ["flat", "fc"], "y", transB=1),
    ]
    inits = {
        **c1,
        **c2,
        "w1": _w(rng, 6, 3, 3, 3),
        "w2": _w(rng, 8, 6, 3, 3),
        "fc": _w(rng, CLASSES, 8),
        "zero": np.array(0, np.int64),
        "zero1": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    graph = helper.make_graph(
        nodes,
        "pads",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [declared_batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [declared_batch, CLASSES])],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_shapes_computed_by_shape_nodes_are_inferred():
    graph = LayerGraph.from_model(computed_pads_model())
    shapes = graph.shapes((1, 3, 16, 16))
    assert shapes["p1/padded"] == (1, 3, 17, 17) and shapes["conv1"] == (1, 6, 8, 8)
    assert shapes["p2/padded"] == (1, 6, 9, 9) and shapes["r2"] == (1, 8, 4, 4) and shapes["y"] == (1, CLASSES)
    assert graph.shapes((3, 3, 16, 16))["flat"] == (3, 8)  # the batch is never folded into the graph


def test_layers_lists_real_shapes(tmp_path, capsys):
    path = tmp_path / "pads.onnx"
    onnx.save(computed_pads_model(), path)
    assert main(["layers", str(path), "--preset", "raw"]) == 0
    listed = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed["conv1"] == "1x6x8x8" and listed["r2"] == "1x8x4x4" and listed["y"] == f"1x{CLASSES}"


def test_methods_run_through_computed_pads_and_batches_agree():
    model = computed_pads_model()
    photos = [np.random.default_rng(k).uniform(0, 255, (16, 16, 3)).astype(np.uint8) for k in range(3)]
    for method in ("fixations", "gradcam", "saliency", "cam"):
        explainer = Explainer(model, method=method, preset="raw", device="cpu")
        assert getattr(explainer.map_method, "layer", "r2") == "r2"
        alone = [explainer.explain(p, target=2).input_map for p in photos]
        together = [item.explanations[0].input_map for item in explainer.explain_many(photos, target=2, batch_size=3)]
        for a, b in zip(alone, together):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(float(np.abs(a).max()), 1e-30))


@pytest.mark.parametrize("declared", ["N", -1])
def test_a_dynamic_batch_never_counts_negative_classes(tmp_path, capsys, declared):
    model = computed_pads_model()
    for spec in (*model.graph.input, *model.graph.output):
        dim = spec.type.tensor_type.shape.dim[0]
        dim.Clear()
        if declared == -1:
            dim.dim_value = -1  # some writers declare a dynamic dim as -1
        else:
            dim.dim_param = str(declared)
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, path)
    assert main(["info", str(path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"({CLASSES} classes)" in out and "-1 classes" not in out
    assert main(["layers", str(path), "--preset", "raw"]) == 0
    assert all("-1" not in line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:])


@pytest.mark.torch
def test_a_torch_legacy_export_with_same_padding_explains(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed to export the model (pip install torch==2.13.0)")
    import math

    class SameConv(torch.nn.Conv2d):
        def forward(self, x):
            ih, iw = x.size()[-2:]
            ph = max((math.ceil(ih / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - ih, 0)
            pw = max((math.ceil(iw / self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - iw, 0)
            x = torch.nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride)

    torch.manual_seed(1)
    net = torch.nn.Sequential(
        SameConv(3, 6, 3, stride=2), torch.nn.ReLU(), SameConv(6, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)
    )
    net = torch.nn.Sequential(net, torch.nn.Flatten(), torch.nn.Linear(8, CLASSES)).eval()
    path = tmp_path / "same.onnx"
    x = torch.zeros(1, 3, 16, 16)
    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=13, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    written = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Pad", "Shape"} <= written, written  # the pads are computed from the input's shape
    explainer = Explainer(str(path), method="saliency", preset="raw", device="cpu")
    assert len(explainer.map_method.layer if hasattr(explainer.map_method, "layer") else "") == 0
    layer = Explainer(str(path), method="gradcam", preset="raw", device="cpu").map_method.layer
    assert explainer.runner.shapes[layer] == (1, 8, 4, 4)
    # The gradient through the computed pads is torch's.
    photo = np.random.default_rng(7).uniform(0, 255, (16, 16, 3)).astype(np.uint8)
    batch = torch.tensor(photo.transpose(2, 0, 1)[None].astype(np.float32) / 255, requires_grad=True)  # preset raw
    net(batch)[0, 2].backward()
    want = batch.grad.abs().amax(dim=1)[0].numpy()
    got = explainer.explain(photo, target=2).input_map
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert Explainer(str(path), preset="raw", device="cpu").explain(photo, target=2).points.size


# --------------------------------------------------------------------------------------------
# Empty maps
# --------------------------------------------------------------------------------------------


def negative_shortcut_model(stages: int = 4) -> onnx.ModelProto:
    """Residual stages whose strided shortcut convs (BatchNorm folded, no ReLU, as in Keras'
    mini-Xception) are negative everywhere, so that their channel sums are all negative."""
    rng = np.random.default_rng(13)
    nodes, inits, x, channels = [], {}, "x", 3
    for k in range(stages):
        p = f"s{k}/"
        nodes += [
            _n("Conv", [x, f"{p}w", f"{p}b"], f"{p}main", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
            _n("Relu", [f"{p}main"], f"{p}r"),
            _n("Conv", [x, f"{p}ws", f"{p}bs"], f"{p}short", kernel_shape=[1, 1], strides=[2, 2]),
            _n("Add", [f"{p}r", f"{p}short"], f"{p}sum"),
            _n("Relu", [f"{p}sum"], f"{p}out"),
        ]
        inits |= {
            f"{p}w": 0.3 * _w(rng, 4, channels, 3, 3),
            f"{p}b": np.full(4, 12.0, np.float32),
            f"{p}ws": 0.01 * _w(rng, 4, channels, 1, 1),
            f"{p}bs": np.full(4, -10.0, np.float32),
        }
        x, channels = f"{p}out", 4
    nodes += [_n("GlobalAveragePool", [x], "g"), _n("Flatten", ["g"], "f"), _n("Gemm", ["f", "fc"], "y", transB=1)]
    return build(nodes, ["N", 3, 64, 64], ["y"], {**inits, "fc": np.abs(_w(rng, CLASSES, 4))})


def test_gradual_extrapolation_skips_an_all_negative_layer_instead_of_zeroing_the_map():
    model = negative_shortcut_model()
    photo = np.random.default_rng(8).uniform(0, 1, (64, 64, 3)).astype(np.float32)
    explainer = Explainer(model, method="gradcam:ge", preset="raw", device="cpu")
    assert {"s0/short", "s1/short"} <= set(explainer.map_method.extrapolation.layers)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyMapWarning)
        sharp = explainer.explain((photo * 255).astype(np.uint8), target=0).input_map
    assert np.isfinite(sharp).all() and sharp.max() > 0
    # Sharpened, not inverted: it still follows Grad-CAM's map.
    coarse = Explainer(model, method="gradcam", preset="raw", device="cpu").explain((photo * 255).astype(np.uint8), target=0)
    assert np.corrcoef(sharp.ravel(), coarse.input_map.ravel())[0, 1] > 0.5
    # A single all-negative E_j leaves the coarse map as it is (resized), never zero.
    extrapolation = GradualExtrapolation.__new__(GradualExtrapolation)
    extrapolation.layers, extrapolation.layouts = ["e"], {"e": "NCHW"}
    coarse = np.random.default_rng(9).uniform(0, 1, (1, 2, 2)).astype(np.float32)
    energy = -np.ones((1, 3, 4, 4), np.float32)
    got = extrapolation.apply(coarse, Tensors({"e": energy}, {}, {}))
    assert got.max() == pytest.approx(1.0) and np.isfinite(got).all()
    positive = extrapolation.apply(coarse, Tensors({"e": -energy}, {}, {}))
    np.testing.assert_allclose(got, positive, atol=1e-6)  # a flat E_j changes nothing either


def all_negative_class_model() -> onnx.ModelProto:
    """Every class weight negative over non-negative maps: Grad-CAM is ReLU(negative) = 0."""
    rng = np.random.default_rng(14)
    nodes = [
        _n("Conv", ["x", "w"], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        _n("Relu", ["c"], "a"),
        _n("GlobalAveragePool", ["a"], "g"),
        _n("Flatten", ["g"], "f"),
        _n("Gemm", ["f", "fc"], "y", transB=1),
    ]
    return build(nodes, ["N", 3, SIDE, SIDE], ["y"], {"w": _w(rng, K, 3, 3, 3), "fc": -np.abs(_w(rng, CLASSES, K))})


def test_an_empty_map_warns_in_python_and_fails_the_photo_on_the_command_line(tmp_path, capsys):
    model = all_negative_class_model()
    photo = np.random.default_rng(10).uniform(0, 255, (SIDE, SIDE, 3)).astype(np.uint8)
    with pytest.warns(EmptyMapWarning, match=r"the gradcam map of class 1 \(.*\) is empty \(all zero or not finite\)"):
        explanation = Explainer(model, method="gradcam", preset="raw", device="cpu").explain(photo, target=1)
    assert explanation.empty
    path, image = tmp_path / "neg.onnx", tmp_path / "photo.png"
    onnx.save(model, path)
    from PIL import Image

    Image.fromarray(photo).save(image)
    out = tmp_path / "out"
    code = main(
        ["explain", str(path), str(image), "--method", "gradcam", "--preset", "raw", "--class", "1", "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "is empty (all zero or not finite)" in err[0] and "nothing written" in err[0]
    assert not (out / "photo" / "heatmap.png").exists()


@pytest.mark.parametrize(
    "heat, input_map, empty",
    [
        (0.0, 0.0, True),
        (-0.0, 1.0, True),  # the heat map is what is shown: all zero is empty
        (0.5, 0.0, False),
        (np.nan, 0.0, True),
        (0.5, np.inf, True),
        (0.5, -np.inf, True),
        (0.5, np.nan, True),
    ],
)
def test_empty_is_an_all_zero_heat_map_or_a_map_that_is_not_finite(heat, input_map, empty):
    with pytest.warns(EmptyMapWarning):
        made = Explainer(all_negative_class_model(), method="gradcam", preset="raw", device="cpu").explain(
            np.full((SIDE, SIDE, 3), 128, np.uint8), target=1
        )
    heatmap, grid = np.zeros_like(made.heatmap), np.zeros_like(made.input_map)
    heatmap[3, 4], grid[1, 2] = heat, input_map
    assert dataclasses.replace(made, heatmap=heatmap, input_map=grid).empty is empty
