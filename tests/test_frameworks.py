"""One small CNN, three frameworks, the same weights: every export explains alike (``-m frameworks``).

The network (conv, max pool, depthwise conv, residual Add, average pool, two branches joined by
Concat, a last conv, global average pool, a dense head with bias; ReLUs) is built with numpy
weights (seeded) in PyTorch, Keras and Flax, exported by ``exporters/`` (TorchScript and dynamo;
tf2onnx and Keras's exporter; jax2onnx), and explained by fixtrace on a real photo with the preset
the file carries. Each export is checked against the same network written directly in ONNX
(no framework needed): the same prediction, the same input fixations, Grad-CAM and saliency maps
within 1e-4 of the map's max. Stride-1 convs pad symmetrically so 'same' means the same everywhere;
only the pools stride.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import IMAGES, ROOT

pytestmark = pytest.mark.frameworks

SIDE, CLASSES = 64, 10
LABELS = [f"shape {i}" for i in range(CLASSES)]
PRESET = "imagenet"
PHOTO = IMAGES / "chelsea.jpg"
METHODS = ["fixations", "gradcam", "saliency"]
#: Maps equal within this fraction of their max; logits within this (absolute, they are O(1)).
MAP_TOLERANCE = LOGIT_TOLERANCE = 1e-4
#: Weights in torch's layouts: conv (out, in / groups, kh, kw), dense (out, in); each with a bias.
SHAPES = {
    "stem": (8, 3, 3, 3),
    "depthwise": (8, 1, 3, 3),
    "pointwise": (8, 8, 1, 1),
    "left": (8, 8, 3, 3),
    "right": (8, 8, 1, 1),
    "last": (16, 16, 3, 3),
    "head": (CLASSES, 16),
}


@pytest.fixture(scope="module")
def weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(13)
    made = {}
    for name, shape in SHAPES.items():
        fan_in = int(np.prod(shape[1:]))
        made[name] = (
            rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32),
            rng.normal(0, 0.1, shape[0]).astype(np.float32),
        )
    return made


# --------------------------------------------------------------------------- the reference, in ONNX
def reference_onnx(weights) -> onnx.ModelProto:
    """The network written node by node (NCHW); its last conv's output is ``features``."""
    initializers = []
    for name, (w, b) in weights.items():
        initializers += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]

    def conv(x, name, out, pad, group=1):
        k = SHAPES[name][2]
        return helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], pads=[pad] * 4, group=group, kernel_shape=[k, k])

    nodes = [
        conv("input", "stem", "stem", 1),
        helper.make_node("Relu", ["stem"], ["stem_relu"]),
        helper.make_node("MaxPool", ["stem_relu"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2]),
        conv("pool1", "depthwise", "dw", 1, group=8),
        helper.make_node("Relu", ["dw"], ["dw_relu"]),
        conv("dw_relu", "pointwise", "pw", 0),
        helper.make_node("Add", ["pool1", "pw"], ["residual"]),
        helper.make_node("Relu", ["residual"], ["residual_relu"]),
        helper.make_node("AveragePool", ["residual_relu"], ["pool2"], kernel_shape=[2, 2], strides=[2, 2]),
        conv("pool2", "left", "left", 1),
        helper.make_node("Relu", ["left"], ["left_relu"]),
        conv("pool2", "right", "right", 0),
        helper.make_node("Relu", ["right"], ["right_relu"]),
        helper.make_node("Concat", ["left_relu", "right_relu"], ["joined"], axis=1),
        conv("joined", "last", "features", 1),
        helper.make_node("Relu", ["features"], ["features_relu"]),
        helper.make_node("GlobalAveragePool", ["features_relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "head.w", "head.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------- the three frameworks
def torch_model(weights):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[torch]')")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pointwise = nn.Conv2d(8, 8, 1)
            self.left = nn.Conv2d(8, 8, 3, padding=1)
            self.right = nn.Conv2d(8, 8, 1)
            self.last = nn.Conv2d(16, 16, 3, padding=1)
            self.head = nn.Linear(16, CLASSES)

        def forward(self, x):
            relu = torch.relu
            p1 = nn.functional.max_pool2d(relu(self.stem(x)), 2)
            p2 = nn.functional.avg_pool2d(relu(p1 + self.pointwise(relu(self.depthwise(p1)))), 2)
            joined = torch.cat([relu(self.left(p2)), relu(self.right(p2))], dim=1)
            return self.head(relu(self.last(joined)).mean(dim=(2, 3)))

    net = Net()
    with torch.no_grad():
        for name, (w, b) in weights.items():
            getattr(net, name).weight.copy_(torch.from_numpy(w))
            getattr(net, name).bias.copy_(torch.from_numpy(b))
    return net.eval()


def keras_model(weights):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install '.[keras]')")
    keras = pytest.importorskip("keras", reason="Keras is not installed (pip install '.[keras]')")
    layers = keras.layers
    made = {
        "stem": layers.Conv2D(8, 3, padding="same", activation="relu", name="stem"),
        "depthwise": layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise"),
        "pointwise": layers.Conv2D(8, 1, name="pointwise"),
        "left": layers.Conv2D(8, 3, padding="same", activation="relu", name="left"),
        "right": layers.Conv2D(8, 1, activation="relu", name="right"),
        "last": layers.Conv2D(16, 3, padding="same", activation="relu", name="last"),
        "head": layers.Dense(CLASSES, name="head"),
    }
    image = keras.Input((SIDE, SIDE, 3))
    p1 = layers.MaxPooling2D(2)(made["stem"](image))
    residual = layers.ReLU()(layers.Add()([p1, made["pointwise"](made["depthwise"](p1))]))
    p2 = layers.AveragePooling2D(2)(residual)
    joined = layers.Concatenate(axis=-1)([made["left"](p2), made["right"](p2)])
    logits = made["head"](layers.GlobalAveragePooling2D()(made["last"](joined)))
    model = keras.Model(image, logits)
    for name, (w, b) in weights.items():
        kernel = w.T if w.ndim == 2 else w.transpose(2, 3, 0, 1) if name == "depthwise" else w.transpose(2, 3, 1, 0)
        made[name].set_weights([kernel, b])
    return model


def flax_model(weights):
    pytest.importorskip("jax", reason="JAX is not installed (pip install '.[jax]')")
    nnx = pytest.importorskip("flax.nnx", reason="Flax is not installed (pip install '.[jax]')")
    import jax.numpy as jnp

    class Net(nnx.Module):
        def __init__(self, rngs):
            pad = ((1, 1), (1, 1))
            self.stem = nnx.Conv(3, 8, (3, 3), padding=pad, rngs=rngs)
            self.depthwise = nnx.Conv(8, 8, (3, 3), padding=pad, feature_group_count=8, rngs=rngs)
            self.pointwise = nnx.Conv(8, 8, (1, 1), rngs=rngs)
            self.left = nnx.Conv(8, 8, (3, 3), padding=pad, rngs=rngs)
            self.right = nnx.Conv(8, 8, (1, 1), rngs=rngs)
            self.last = nnx.Conv(16, 16, (3, 3), padding=pad, rngs=rngs)
            self.head = nnx.Linear(16, CLASSES, rngs=rngs)

        def __call__(self, x):
            relu = nnx.relu
            p1 = nnx.max_pool(relu(self.stem(x)), window_shape=(2, 2), strides=(2, 2))
            p2 = nnx.avg_pool(relu(p1 + self.pointwise(relu(self.depthwise(p1)))), window_shape=(2, 2), strides=(2, 2))
            joined = jnp.concatenate([relu(self.left(p2)), relu(self.right(p2))], axis=-1)
            return self.head(jnp.mean(relu(self.last(joined)), axis=(1, 2)))

    net = Net(nnx.Rngs(0))
    for name, (w, b) in weights.items():
        layer = getattr(net, name)
        layer.kernel[...] = jnp.asarray(w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0))
        layer.bias[...] = jnp.asarray(b)
    return net


# --------------------------------------------------------------------------- exporting
def export(case: str, weights, path):
    """Build the network in the case's framework and export it to ``path``; returns the framework's own
    forward (an NCHW batch -> logits)."""
    from exporters import export_jax, export_keras, export_torch

    common = {"preset": PRESET, "labels": LABELS}
    if case.startswith("torch"):
        net = torch_model(weights)  # skips without torch
        import torch

        if case == "torch-dynamo":
            pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
        export_torch(net, torch.zeros(1, 3, SIDE, SIDE), path, dynamo=case == "torch-dynamo", **common)
        return lambda x: net(torch.from_numpy(x)).detach().numpy()
    if case.startswith("keras"):
        net = keras_model(weights)
        export_keras(net, path, via=case.split("-")[1], **common)
        return lambda x: np.asarray(net(x.transpose(0, 2, 3, 1), training=False))
    net = flax_model(weights)
    export_jax(net, np.zeros((1, SIDE, SIDE, 3), np.float32), path, **common)
    return lambda x: np.asarray(net(x.transpose(0, 2, 3, 1)))


def last_conv_output(model: onnx.ModelProto) -> str:
    """The output of the graph's last Conv: a map every export establishes as NCHW (jax2onnx keeps
    maps NHWC between convs, so later maps would not do)."""
    return [n for n in model.graph.node if n.op_type == "Conv"][-1].output[0]


def explain(path, layer: str, preset) -> dict:
    """Each method's explanations of every class on the photo (method -> one per class)."""
    from fixtrace import Explainer

    explainer = Explainer(path, preset=preset, method=METHODS, layer=layer, device="cpu")
    return explainer.explain(PHOTO, target=list(range(CLASSES)), methods=METHODS)


@pytest.fixture(scope="module")
def reference(weights, tmp_path_factory) -> dict:
    """The hand-written network's explanations (as ``explain`` returns them)."""
    from fixtrace.images.presets import get_preset

    path = tmp_path_factory.mktemp("reference") / "reference.onnx"
    onnx.save(reference_onnx(weights), path)
    return explain(path, "features", get_preset(PRESET))


CASES = ["torch", "torch-dynamo", "keras-tf2onnx", "keras-keras", "jax"]
LAYOUTS = {"torch": "NCHW", "keras": "NHWC", "jax": "NHWC"}


def map_difference(ours, theirs) -> float:
    """Max difference of two input-grid maps, relative to the larger map's max."""
    a, b = np.asarray(ours.input_map, np.float64), np.asarray(theirs.input_map, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max()))


def points(e) -> dict[tuple[float, float], float]:
    """The input fixations on the photo: point -> how many fixations merged into it."""
    return {tuple(p): float(c) for p, c in zip(np.round(np.asarray(e.points), 6), e.counts)}


@pytest.mark.parametrize("case", CASES)
def test_export_explains_like_the_reference(case, weights, reference, tmp_path):
    from fixtrace.images.presets import preset_from_model

    path = tmp_path / f"{case}.onnx"
    forward = export(case, weights, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "one self-contained file"
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    preset = preset_from_model(model)
    assert (preset.name, preset.layout) == (PRESET, LAYOUTS[case.split("-")[0]])
    assert json.loads(meta["fixtrace.labels"]) == LABELS

    # The file computes what the framework computes, on a batch of 3 (the batch is dynamic).
    batch = np.random.default_rng(1).normal(size=(3, 3, SIDE, SIDE)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fed = batch if preset.layout == "NCHW" else batch.transpose(0, 2, 3, 1)
    logits = session.run(None, {session.get_inputs()[0].name: fed})[0]
    assert np.abs(logits - forward(batch)).max() <= LOGIT_TOLERANCE

    expected = reference
    got = explain(path, last_conv_output(model), preset)
    ranking = [c.index for c in got["fixations"][0].top_classes]
    assert ranking == [c.index for c in expected["fixations"][0].top_classes]
    for ours, theirs in zip(got["fixations"], expected["fixations"]):
        assert abs(ours.target.logit - theirs.target.logit) <= LOGIT_TOLERANCE
        assert points(ours) == points(theirs), f"class {ours.target.index}"
    assert sum(len(points(e)) for e in expected["fixations"]) >= 5 * CLASSES
    for method in ("gradcam", "saliency"):
        for ours, theirs in zip(got[method], expected[method]):
            assert map_difference(ours, theirs) <= MAP_TOLERANCE, f"{method}, class {ours.target.index}"


# --------------------------------------------------------------------------- the exporters' own checks
def test_importing_exporters_imports_no_framework():
    import subprocess
    import sys

    code = "import sys, exporters; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras', 'jax', 'flax'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_finish_refuses_wrong_labels_and_layout(weights, tmp_path):
    from exporters import finish

    path = tmp_path / "m.onnx"
    onnx.save(reference_onnx(weights), path)
    with pytest.raises(ValueError, match="3 labels for a model with 10 class scores"):
        finish(path, layout="NCHW", labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="channels in NHWC"):
        finish(path, layout="NHWC", preset=PRESET)
    finish(path, layout="NCHW", preset=PRESET, labels=LABELS, output_name="scores")
    model = onnx.load(str(path))
    assert model.graph.output[0].name == "scores"
    assert json.loads({p.key: p.value for p in model.metadata_props}["fixtrace.preprocessing"])["layout"] == "NCHW"


def test_keras_model_without_input_shape_is_refused(tmp_path):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install '.[keras]')")
    keras = pytest.importorskip("keras")
    from exporters import export_keras

    model = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="no known input shape"):
        export_keras(model, tmp_path / "m.onnx")
