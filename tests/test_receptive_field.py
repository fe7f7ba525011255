"""Receptive fields composed from the ONNX graph, against measurements that do not compose them:

- a hand-made model (conv k3 s2 p1 -> max pool k2 s2 -> dilated conv k3 d2) whose fields are worked
  out by hand, and measured with onnxruntime by perturbing each input pixel in turn;
- MobileNetV2 layers (a stride-2 depthwise block, Adds, early to late) against the support of the
  input gradient of single cells, walked by fixtrace's gradient engine: on a linearised copy
  (every conv weight made positive, every ReLU6 open) the support is exactly the dependency set,
  so its bounding box must equal the clipped window; on the real weights and a photo it must lie
  inside the window.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper
from test_layouts import small_cnn, to_channels_last
from test_rules_oracle import build

from conftest import IMAGES, run_exposing
from fixtrace.errors import OptionError, UnsupportedOpError
from fixtrace.gradients import GradientPlan
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.images.presets import get_preset
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import load_model
from fixtrace.model.receptive_field import ReceptiveField, receptive_field
from fixtrace.runtime.session import Session
from fixtrace.runtime.tensors import Tensors

SIDE = 32


def _hand_model(extra=(), outputs=("c2",)) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {"w1": np.abs(rng.standard_normal((4, 3, 3, 3))).astype(np.float32) + 0.1}
    inits["w2"] = np.abs(rng.standard_normal((5, 4, 3, 3))).astype(np.float32) + 0.1
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w2"], ["c2"], kernel_shape=[3, 3], dilations=[2, 2]),
        *extra,
    ]
    return build(nodes, ["N", 3, SIDE, SIDE], list(outputs), inits)


def _field(model: onnx.ModelProto, tensor: str) -> ReceptiveField:
    graph = LayerGraph.from_model(model)
    return receptive_field(graph, tensor, graph.shapes((1, 3, SIDE, SIDE)))


def test_hand_made_model_fields_worked_out_by_hand():
    model = _hand_model()
    # c1 (16x16): 3 px, jump 2, cell 0 centred on pixel 0 (pad 1 puts row -1 first).
    assert _field(model, "c1") == ReceptiveField((3, 3), (2, 2), (0.0, 0.0), (SIDE, SIDE))
    # p (8x8): 2 c1 cells = 3 + 1 x 2 = 5 px, jump 4, centre between c1 cells 0 and 1: pixel 1.
    assert _field(model, "p") == ReceptiveField((5, 5), (4, 4), (1.0, 1.0), (SIDE, SIDE))
    # c2 (4x4): p cells 0, 2, 4 = 5 + 4 x 4 = 21 px, jump 4, centre on p cell 2: pixel 1 + 2 x 4 = 9.
    c2 = _field(model, "c2")
    assert c2 == ReceptiveField((21, 21), (4, 4), (9.0, 9.0), (SIDE, SIDE))
    assert c2.window(0, 0) == (0, 0, 20, 20)  # rows -1..19, the padding row clipped
    assert c2.window(3, 1) == (11, 3, 32, 24)  # rows 11..31, cols 3..23
    assert c2.centre(3, 1) == (21.0, 13.0)


def _box(support: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _assert_perturbations_agree(model: onnx.ModelProto, tensors: tuple[str, ...]) -> None:
    """Each input pixel raised in turn (weights positive, so the raised value wins every max pool
    it reaches): the output cells that change are the ones whose clipped window holds the pixel
    (dilation leaves holes inside; the bounding box is what the window promises)."""
    base = np.random.default_rng(1).uniform(0, 1, (1, 3, SIDE, SIDE)).astype(np.float32)
    batch = np.repeat(base, SIDE * SIDE, axis=0)
    pixels = np.arange(SIDE * SIDE)
    batch.reshape(SIDE * SIDE, 3, -1)[pixels, :, pixels] += 1000.0
    values = run_exposing(model, "x", np.concatenate([base, batch]))
    for tensor in tensors:
        out = values[tensor]
        changed = (np.abs(out[1:] - out[:1]) > 1e-3).any(axis=1)  # (pixel, rows, cols)
        field = _field(model, tensor)
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                assert _box(changed[:, i, j].reshape(SIDE, SIDE)) == field.window(i, j), (tensor, i, j)


def test_hand_made_model_fields_match_onnxruntime_perturbations():
    _assert_perturbations_agree(_hand_model(outputs=("c1", "p", "c2")), ("c1", "p", "c2"))


@pytest.mark.parametrize(
    ("kernel", "attrs", "offset"),
    [
        (4, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 0.5),  # total pad 2: 1 before
        (5, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 1.0),  # total pad 3: 1 before
        (5, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, 0.0),  # total pad 3: 2 before
        (4, {"auto_pad": "VALID"}, 1.5),
        (4, {"pads": [2, 0, 1, 0], "strides": [3, 3]}, -0.5),
    ],
)
def test_auto_pad_and_even_kernels(kernel, attrs, offset):
    w = np.ones((2, 3, kernel, kernel), np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[kernel, kernel], **attrs)
    model = build([conv], ["N", 3, SIDE, SIDE], ["y"], {"w": w})
    field = _field(model, "y")
    stride = attrs.get("strides", [1, 1])[0]
    assert field.size == (kernel, kernel) and field.offset[0] == offset and field.stride == (stride, stride)
    _assert_perturbations_agree(model, ("y",))


def test_union_of_branches_concat_add_and_pad():
    ones = {f"w{k}": np.ones((2, 3, k, k), np.float32) for k in (3, 5)}
    nodes = [
        helper.make_node("Conv", ["x", "w3"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w5"], ["b"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
        helper.make_node("Conv", ["x", "w3"], ["s"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w3"], ["t"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 2, 2]),
        helper.make_node("Add", ["s", "t"], ["sum"]),
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Conv", ["padded", "w3"], ["same"], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["a", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Mul", ["a", "gap"], ["gated"]),
    ]
    inits = {**ones, "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    inits |= {name: np.full(2, value, np.float32) for name, value in (("scale", 2), ("bias", 1), ("mean", 0), ("var", 1))}
    model = build(nodes, ["N", 3, SIDE, SIDE], ["cat", "sum", "same", "bn", "gated"], inits)
    assert _field(model, "cat") == _field(model, "b")  # the larger field holds the smaller
    # s sees rows [-1, 1] of cell 0, t rows [0, 2]: the sum sees [-1, 2].
    assert _field(model, "sum") == ReceptiveField((4, 4), (2, 2), (0.5, 0.5), (SIDE, SIDE))
    assert _field(model, "same") == _field(model, "a")  # Pad 1 + conv = conv with pads 1
    assert _field(model, "bn") == _field(model, "a")
    gated = _field(model, "gated")  # a squeeze-and-excitation gate sees everything
    assert gated.whole and gated.window(5, 7) == (0, 0, SIDE, SIDE) and _field(model, "gap").whole
    _assert_perturbations_agree(model, ("cat", "sum", "same", "bn", "gated"))


def test_channels_last_graph_gives_the_same_fields():
    first, last = small_cnn(), to_channels_last(small_cnn())
    shapes = {"NCHW": (1, 3, 16, 16), "NHWC": (1, 16, 16, 3)}
    for tensor in ("c1", "r1", "sum", "r2", "p", "c3", "swish", "r3", "g", "y"):
        fields = []
        for model in (first, last):
            graph = LayerGraph.from_model(model)
            fields.append(receptive_field(graph, tensor, graph.shapes(shapes[graph.image_input.layout])))
        assert fields[0] == fields[1], tensor
    assert fields[0].whole  # y, after the global pool and the dense layer


def test_unsupported_op_on_the_path_names_op_and_node():
    resize = helper.make_node("Resize", ["c2", "", "scales"], ["up"], name="upsample")
    model = _hand_model([resize], outputs=("up",))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    assert _field(model, "c2").size == (21, 21)  # an op after the layer does not matter
    with pytest.raises(UnsupportedOpError, match=r"unsupported op 'Resize' at node 'upsample' \(receptive field"):
        _field(model, "up")
    swap = helper.make_node("Transpose", ["c2"], ["swapped"], name="swap", perm=[0, 1, 3, 2])
    with pytest.raises(UnsupportedOpError, match=r"'Transpose' at node 'swap'.*rows and columns"):
        _field(_hand_model([swap], outputs=("swapped",)), "swapped")
    with pytest.raises(OptionError, match="not a tensor the model computes"):
        _field(_hand_model(), "w1")
    # A shape read from the map (as torch's exporter flattens) is not on the field's path.
    flatten = [
        helper.make_node("Shape", ["c2"], ["shape"], end=1),
        helper.make_node("Concat", ["shape", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["c2", "target"], ["flat"]),
    ]
    model = _hand_model(flatten, outputs=("flat",))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus_one"))
    assert _field(model, "flat").whole


# --------------------------------------------------------------------------------------------
# MobileNetV2 against the gradient engine
# --------------------------------------------------------------------------------------------

#: (layer, what it is): fields of 11, 59, 139 and 299 pixels.
LAYERS = {
    "early": "/features/features.2/conv/conv.1/conv.1.2/Clip_output_0",  # a stride-2 depthwise block's output
    "mid-add": "/features/features.6/Add_output_0",
    "late-add": "/features/features.9/Add_output_0",
    "late": "/features/features.14/conv/conv.1/conv.1.2/Clip_output_0",  # stride-2 depthwise, wider than the image
}


@pytest.fixture(scope="module")
def mobilenet_graph(mobilenet_path):
    return LayerGraph.from_model(load_model(mobilenet_path))


def _cells(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    h, w = shape[2], shape[3]
    return [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (1, w - 2), (h // 2 + 1, 0)]


def _supports(graph: LayerGraph, layer: str, values, shapes, cells, channels) -> np.ndarray:
    """(cells, H, W): where the input gradient of each cell (one per batch item) is non-zero."""
    seed = np.zeros((len(cells), *shapes[layer][1:]), np.float32)
    for k, ((i, j), channel) in enumerate(zip(cells, channels)):
        seed[k, channel, i, j] = 1.0
    tensors = Tensors(values, shapes, graph.constants)
    grad = GradientPlan(graph, layer).run(seed, tensors)[graph.image_input.name]
    return np.abs(grad).sum(axis=1) > 0


@pytest.mark.parametrize("name", list(LAYERS))
def test_mobilenet_fields_equal_the_linearised_gradient_support(mobilenet_graph, name):
    graph, layer = mobilenet_graph, LAYERS[name]
    field = receptive_field(graph, layer, graph.shapes((1, 3, 224, 224)))
    cells = _cells(graph.shapes((1, 3, 224, 224))[layer])
    shapes = graph.shapes((len(cells), 3, 224, 224))
    weights = {n.inputs[1] for n in graph.nodes if n.op_type == "Conv"}
    positive = {k: np.abs(v) + 0.01 if k in weights else v for k, v in graph.constants.items()}
    linear = dataclasses.replace(graph, constants=positive, _shape_cache={})
    plan = GradientPlan(linear, layer)
    # ReLU6 open everywhere: every Clip input at 1, inside (0, 6).
    values = {tensor: np.ones(shapes[tensor], np.float32) for tensor in plan.needs}
    supports = _supports(linear, layer, values, shapes, cells, range(len(cells)))
    unclipped = 0
    for (i, j), support in zip(cells, supports):
        box = _box(support)
        assert box == field.window(i, j), (name, (i, j))
        assert support[box[0] : box[2], box[1] : box[3]].all()  # no holes: no dilation in MobileNetV2
        unclipped += (box[2] - box[0], box[3] - box[1]) == field.size
    if field.size[0] < 224:
        assert unclipped >= 1, name  # an interior cell's support spans the whole computed size


@pytest.mark.parametrize("name", ["early", "late-add"])
def test_mobilenet_real_gradient_lies_inside_the_field(mobilenet_graph, chelsea_path, name):
    graph, layer = mobilenet_graph, LAYERS[name]
    sample, _ = preprocess(load_image(chelsea_path), graph.image_input, get_preset("imagenet"))
    cells = _cells(graph.shapes((1, 3, 224, 224))[layer]) * 2
    batch = np.repeat(sample[None], len(cells), axis=0)
    plan = GradientPlan(graph, layer)
    values = Session(graph, sorted(plan.needs)).run(batch)
    field = receptive_field(graph, layer, graph.shapes(batch.shape))
    supports = _supports(graph, layer, values, graph.shapes(batch.shape), cells, range(len(cells)))
    reached = 0
    for (i, j), support in zip(cells, supports):
        top, left, bottom, right = field.window(i, j)
        assert not support[:top].any() and not support[bottom:].any(), (name, (i, j))
        assert not support[:, :left].any() and not support[:, right:].any(), (name, (i, j))
        reached += bool(support.any())
    assert reached >= 5  # the ReLU6 masks leave enough gradients to check


def test_photo_fields_cover_the_photo_pixels_a_cell_sees(mobilenet_graph):
    """The window mapped through the preprocessing: an input pixel's photo position lies in the box."""
    photo = load_image(IMAGES / "chelsea.jpg")
    _, geometry = preprocess(photo, mobilenet_graph.image_input, get_preset("imagenet"))
    field = receptive_field(mobilenet_graph, LAYERS["mid-add"], mobilenet_graph.shapes((1, 3, 224, 224)))
    for cell in [(0, 0), (14, 14), (27, 3)]:
        top, left, bottom, right = field.window(*cell)
        x0, y0, x1, y1 = geometry.box_to_original(top, left, bottom, right)
        corners = geometry.to_original(np.array([top, bottom - 1]), np.array([left, right - 1]))
        assert (
            (x0 <= corners[:, 0]).all()
            and (corners[:, 0] < x1).all()
            and (y0 <= corners[:, 1]).all()
            and (corners[:, 1] < y1).all()
        )
        scale = geometry.original[1] / geometry.resized[1]  # photo pixels per input pixel
        assert abs((x1 - x0) - (right - left) * scale) <= 2 and abs((y1 - y0) - (bottom - top) * scale) <= 2
