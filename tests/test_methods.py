"""Gradient methods through the API and the CLI on the bundled MobileNetV2 (no torch needed:
the rules themselves are checked against torch and Captum in test_gradients_* and test_methods_captum)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_rules_oracle import _w, build

from conftest import IMAGES, MODELS, run_cli
from fixtrace import Explainer, FixtraceError, ModelError
from fixtrace.methods import method_names

# The cat's face in chelsea.jpg and the cup in coffee.jpg (x0, y0, x1, y1), as in test_models.
FACE, CUP = (80, 0, 370, 300), (170, 20, 420, 260)


#: The methods made from one forward and the gradient walk (fixations and the methods that run
#: the model again have tests of their own).
GRADIENT_METHODS = ("saliency", "guided-backprop", "deconvnet", "cam", "gradcam", "guided-gradcam")


@pytest.fixture(scope="module")
def explainers(mobilenet_path):
    made = {name: Explainer(mobilenet_path, method=name, device="cpu") for name in GRADIENT_METHODS}
    made["gradcam-ge"] = Explainer(mobilenet_path, method="gradcam", ge=True, device="cpu")
    return made


@pytest.mark.parametrize("name", [*GRADIENT_METHODS, "gradcam-ge"])
@pytest.mark.parametrize("photo, box", [("chelsea", FACE), ("coffee", CUP)])
def test_every_method_peaks_on_the_object(explainers, name, photo, box):
    e = explainers[name].explain(IMAGES / f"{photo}.jpg")
    height, width = e.image.shape[:2]
    assert e.heatmap.shape == (height, width) and e.heatmap.dtype == np.float32
    assert e.heatmap.min() >= 0 and e.heatmap.max() == pytest.approx(1.0)
    assert e.input_map.shape == (224, 224) and len(e.points) == 0 and e.per_layer == {}
    assert e.settings["method"] == name.split("-ge")[0] and e.settings["gradual_extrapolation"] == name.endswith("-ge")
    # The strongest response lies on the object (the smoothed peak for the sparse gradient maps).
    y, x = np.unravel_index(np.argmax(_smooth(e.heatmap)), e.heatmap.shape)
    x0, y0, x1, y1 = box
    assert x0 <= x <= x1 and y0 <= y <= y1, (name, photo, x, y)


def _smooth(heat: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(heat, sigma=min(heat.shape) / 12)


def test_batched_maps_equal_single_photo_maps(explainers):
    explainer = explainers["guided-gradcam"]
    items = list(explainer.explain_many([IMAGES / "chelsea.jpg", IMAGES / "coffee.jpg"], top_k=2, batch_size=2))
    for item in items:
        for got, want in zip(item.explanations, explainer.explain(item.image, top_k=2)):
            assert got.target == want.target
            np.testing.assert_allclose(got.input_map, want.input_map, rtol=1e-5, atol=1e-7)


def test_gradual_extrapolation_layers_and_range(explainers):
    ge = explainers["gradcam-ge"].map_method.extrapolation
    shapes = explainers["gradcam-ge"].graph.shapes((1, 3, 224, 224))
    assert [shapes[t][2] for t in ge.layers] == [112, 56, 28, 14, 7]  # activations after each stride-2 conv
    e = explainers["gradcam-ge"].explain(IMAGES / "chelsea.jpg")
    assert 0.0 <= e.input_map.min() and e.input_map.max() <= 1.0


def test_gradcam_on_a_named_layer(mobilenet_path):
    layer = "/features/features.7/conv/conv.1/conv.1.2/Clip_output_0"  # 14x14
    explainer = Explainer(mobilenet_path, method="gradcam", layer=layer, device="cpu")
    e = explainer.explain(IMAGES / "chelsea.jpg")
    assert e.settings["layer"] == layer
    assert explainer.map_method.attributions(*_run(explainer)).shape == (1, 14, 14)


def _run(explainer):
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess

    sample, _ = preprocess(load_image(IMAGES / "chelsea.jpg"), explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    return explainer.tensors(explainer.session.run(batch), batch), [285]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "lime"}, "unknown method 'lime'; methods: fixations, saliency"),
        ({"method": "gradcam", "layer": "nope"}, "layer 'nope' is not on the way from the input to the logits"),
        ({"method": "saliency", "ge": True}, "Gradual Extrapolation sharpens coarse maps"),
        ({"layer": "x"}, "--layer picks the layer of the layer methods"),
    ],
)
def test_bad_method_options_are_clear_errors(mobilenet_path, kwargs, message):
    with pytest.raises(FixtraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Explainer(mobilenet_path, device="cpu", **kwargs).explain(IMAGES / "chelsea.jpg")


def test_cam_needs_a_pooled_head():
    x = _w(np.random.default_rng(0), 1, 3, 6, 6)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    model = build(
        nodes, x.shape, ["y"], {"w": _w(np.random.default_rng(1), 4, 3, 3, 3), "fc": _w(np.random.default_rng(2), 5, 64)}
    )
    with pytest.raises(ModelError, match="CAM needs a global average pool before the fully connected layer; found Relu"):
        Explainer(model, method="cam", preset="raw", device="cpu")
    Explainer(model, method="gradcam", preset="raw", device="cpu")  # Grad-CAM works on any spatial layer


def test_cli_method_and_layers(tmp_path):
    out = tmp_path / "out"
    model, photo = MODELS / "mobilenet_v2.onnx", IMAGES / "chelsea.jpg"
    proc = run_cli("explain", model, photo, "--out", out, "--method", "gradcam", "--ge", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "explained 285 Egyptian cat: gradcam, box" in proc.stdout
    assert {p.name for p in (out / "chelsea").iterdir()} >= {"overlay.png", "heatmap.npy", "input_map.npy", "explanation.json"}
    proc = run_cli("layers", model, cwd=tmp_path)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["tensor", "op", "shape"] and len(lines) == 1 + 100  # a header, then every node output
    assert any(line.split() == ["/features/features.18/features.18.2/Clip_output_0", "Clip", "1x1280x7x7"] for line in lines)
    proc = run_cli("explain", model, photo, "--out", out, "--method", "lime", cwd=tmp_path)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == f"fixtrace: error: unknown method 'lime'; methods: {', '.join(method_names())}"
    )


@pytest.mark.parametrize("photo, box", [("chelsea", FACE), ("coffee", CUP)])
def test_gradual_extrapolation_of_fixations(mobilenet_path, photo, box):
    """Fixations' counts on the last spatial map, sharpened: the points stay, the map replaces the blur."""
    plain = Explainer(mobilenet_path, device="cpu").explain(IMAGES / f"{photo}.jpg")
    sharp = Explainer(mobilenet_path, ge=True, device="cpu").explain(IMAGES / f"{photo}.jpg")
    assert sharp.settings["gradual_extrapolation"] and not plain.settings["gradual_extrapolation"]
    np.testing.assert_array_equal(sharp.points, plain.points)
    assert sharp.heatmap.shape == plain.heatmap.shape and sharp.heatmap.max() == pytest.approx(1.0)
    assert not np.allclose(sharp.heatmap, plain.heatmap)
    y, x = np.unravel_index(np.argmax(_smooth(sharp.heatmap)), sharp.heatmap.shape)
    x0, y0, x1, y1 = box
    assert x0 <= x <= x1 and y0 <= y <= y1, (x, y)
