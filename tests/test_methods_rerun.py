"""Occlusion, RISE and Score-CAM (the methods that run the model again) on tiny ONNX models whose
answer numpy computes independently, plus a few forwards of the bundled MobileNetV2.

The references below are written from the definitions, not from fixtrace's code:
- occlusion: Captum 0.9's ``Occlusion`` (ceil((side - patch) / stride) + 1 windows per axis at
  multiples of the stride, the last one cut at the edge; each pixel the mean score drop of the
  windows covering it), scored with the linear model's closed form;
- RISE: sum_i P(target | x * M_i) M_i / (N p), Petsiuk et al.'s normalisation, which DIANNA's
  ``normalize`` (saliency / n_masks / p_keep) shares; OpenVINO XAI sums the same products and
  min-max scales them (no division), checked here to be the same map up to an affine scale;
- Score-CAM: pytorch-grad-cam's ``ScoreCAM.get_cam_weights`` (channels upsampled with corners
  aligned, (a - min) / (max - min + 1e-8), softmax over channels of the raw target scores) and
  ``BaseCAM`` (ReLU of the weighted channel sum).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
from test_rules_oracle import _w, build

from conftest import IMAGES
from fixtrace import Explainer, FixtraceError, OptionError
from fixtrace.methods import occlusion
from fixtrace.methods.occlusion import window_starts
from fixtrace.methods.perturb import COPIES, target_scores
from fixtrace.methods.rise import RiseMasks

SIDE, CLASSES = 30, 5


def linear_model(layout: str = "NCHW", batch: int | str = "N"):
    """x -> 1x1 conv (4 channels) -> global average pool -> fully connected: a linear score."""
    rng = np.random.default_rng(0)
    shape = [batch, 3, SIDE, SIDE] if layout == "NCHW" else [batch, SIDE, SIDE, 3]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2])] if layout == "NHWC" else []
    nodes += [
        helper.make_node("Conv", ["t" if nodes else "x", "w", "b"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1),
    ]
    weights = {"w": _w(rng, 4, 3, 1, 1), "b": _w(rng, 4), "fc": _w(rng, CLASSES, 4), "fb": _w(rng, CLASSES)}
    return build(nodes, shape, ["y"], weights), weights


def linear_scores(weights: dict, x: np.ndarray) -> np.ndarray:
    """(classes,) scores of one NCHW photo by the closed form."""
    v = weights["fc"] @ weights["w"][:, :, 0, 0]  # (classes, colours)
    return v @ x.mean(axis=(1, 2)) + weights["fc"] @ weights["b"] + weights["fb"]


def strided_model(dead: int | None = None):
    """x -> 3x3 stride-2 conv (6 channels) -> ReLU -> global average pool -> fully connected.
    ``dead``: a channel whose weights are zero (an all-zero map after the ReLU)."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    weights = _w(rng, 6, 3, 3, 3)
    if dead is not None:
        weights[dead] = 0
    return build(nodes, ["N", 3, SIDE, SIDE], ["y"], {"w": weights, "fc": _w(rng, CLASSES, 6)})


def photos(n: int = 2, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIDE, SIDE)).astype(np.float32)


def explain(model, spec: str, batch: np.ndarray, targets: list[int]):
    """(Maps, Run, method) of one batch, through the Explainer's own runner."""
    explainer = Explainer(model, method=spec, preset="raw", device="cpu")
    run = explainer.runner.run(batch)
    method = explainer.map_method
    return method.explain(run, targets), run, method


def onnx_scores(model, batch: np.ndarray) -> np.ndarray:
    """Raw outputs by a plain onnxruntime session (not fixtrace's)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": batch.astype(np.float32)})[0].astype(np.float64)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------------------------------
# Occlusion
# --------------------------------------------------------------------------------------------


def reference_occlusion(score, x: np.ndarray, patch: int, stride: int, fill: float) -> np.ndarray:
    """Captum's Occlusion of one NCHW photo, pixel by pixel (``score``: photo -> target score)."""
    _, height, width = x.shape
    total, count = np.zeros((height, width)), np.zeros((height, width))
    for i in range(int(np.ceil((height - patch) / stride)) + 1):
        for j in range(int(np.ceil((width - patch) / stride)) + 1):
            rows, cols = slice(i * stride, i * stride + patch), slice(j * stride, j * stride + patch)
            occluded = x.copy()
            occluded[:, rows, cols] = fill
            total[rows, cols] += score(x) - score(occluded)
            count[rows, cols] += 1
    return total / count


def test_window_positions_follow_captum():
    assert window_starts(30, 8, 5).tolist() == [0, 5, 10, 15, 20, 25]  # the last window overhangs, cut at 30
    assert window_starts(224, 16, 8).tolist() == list(range(0, 209, 8))  # 27 windows, the last ending at 224
    assert window_starts(8, 8, 3).tolist() == [0]
    with pytest.raises(OptionError, match=r"occlusion's patch \(9 px\) is larger than the model input's side \(8 px\)"):
        window_starts(8, 9, 1)


@pytest.mark.parametrize("patch, stride, fill", [(8, 5, 0.0), (6, 6, 0.5), (30, 1, -1.0)])
def test_occlusion_equals_the_reference_on_a_linear_model(patch, stride, fill):
    model, weights = linear_model()
    x, targets = photos(), [1, 3]
    made, _, _ = explain(model, f"occlusion:patch={patch}:stride={stride}:fill={fill}", x, targets)
    assert made.maps.shape == (2, SIDE, SIDE) and made.maps.dtype == np.float32 and made.coarse is None
    for n, t in enumerate(targets):
        want = reference_occlusion(lambda image, t=t: linear_scores(weights, image)[t], x[n], patch, stride, fill)
        # The drops are differences of float32 scores: exact to a few float32 steps of the score itself.
        np.testing.assert_allclose(made.maps[n], want, rtol=1e-4, atol=1e-5 * np.abs(linear_scores(weights, x[n])).max())


def test_occlusion_coverage_by_hand():
    """On a photo of ones with fill 0, a window's drop is proportional to the pixels it covers, so
    a pixel's value is v / 900 times the mean area of the windows covering it."""
    model, weights = linear_model()
    made, _, _ = explain(model, "occlusion:patch=8:stride=5", np.ones((1, 3, SIDE, SIDE), np.float32), [0])
    v = (weights["fc"] @ weights["w"][:, :, 0, 0])[0].sum() / SIDE**2
    area = {0: 8, 5: 8, 10: 8, 15: 8, 20: 8, 25: 5}  # rows (and columns) each window start covers
    covering = [[s for s in area if s <= i < s + 8] for i in range(SIDE)]
    want = np.array([[np.mean([area[r] * area[c] for r in rows for c in cols]) for cols in covering] for rows in covering])
    np.testing.assert_allclose(made.maps[0], v * want, rtol=1e-4)
    assert [len(c) for c in covering][:12] == [1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 2, 2]


def test_occlusion_forwards_bounded_chunks(monkeypatch):
    sizes = []

    def scores(run, targets, copies, probabilities=False):
        sizes.append(len(copies))
        return target_scores(run, targets, copies, probabilities)

    monkeypatch.setattr(occlusion, "target_scores", scores)
    _, run, _ = explain(linear_model()[0], "occlusion:patch=4:stride=2", photos(3), [0, 1, 2])
    assert sum(sizes) == run.forward.images == 3 * 14 * 14 and max(sizes) <= COPIES  # 14 x 14 windows per photo


@pytest.mark.parametrize("spec", ["occlusion:patch=8:stride=5", "rise:masks=20", "scorecam"])
def test_nhwc_and_fixed_batch_models_give_the_same_maps(spec):
    x, targets = photos(), [4, 0]
    want, _, _ = explain(linear_model()[0], spec, x, targets)
    nhwc, _, _ = explain(linear_model("NHWC")[0], spec, x.transpose(0, 2, 3, 1), targets)
    fixed, run, _ = explain(linear_model(batch=2)[0], spec, x, targets)
    assert run.forward.chunk == 2 and run.forward.images > 0
    np.testing.assert_allclose(nhwc.maps, want.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fixed.maps, want.maps, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("occlusion:patch=31", r"occlusion's patch \(31 px\) is larger than the model input's side \(30 px\)"),
        ("occlusion:patch=4:stride=5", r"occlusion's stride \(5\) is larger than its patch \(4\)"),
        ("occlusion:patch=0", "occlusion's patch must be between 1 and 4096, not 0"),
        ("occlusion:fill=grey", "occlusion's fill must be a number, not 'grey'"),
        ("rise:p=0", r"rise's p must be a number in \[0.01, 1\]"),
        ("rise:masks=1.5", "rise's masks must be a whole number"),
        ("scorecam:layer=nope", "layer 'nope' is not"),
    ],
)
def test_bad_options_are_one_line_errors(spec, message):
    with pytest.raises(OptionError if "layer" not in spec else FixtraceError, match=message) as caught:
        Explainer(linear_model()[0], method=spec, preset="raw", device="cpu")
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# RISE
# --------------------------------------------------------------------------------------------


def test_rise_masks_follow_the_paper_and_the_seed():
    masks = RiseMasks(200, 4, 0.3, (30, 30), seed=5)
    full = masks[0:200]
    assert full.shape == (200, 30, 30) and full.dtype == np.float32 and 0 <= full.min() and full.max() <= 1
    assert masks.cells == (8, 8) and 0 <= masks.shifts.min() and masks.shifts.max() < 8  # a shift below one cell
    assert abs(full.mean() - 0.3) < 0.05  # bilinear upsampling keeps the keep rate
    np.testing.assert_array_equal(np.concatenate([masks[0:7], masks[7:200]]), full)  # slices do not change masks
    np.testing.assert_array_equal(RiseMasks(200, 4, 0.3, (30, 30), seed=5)[0:200], full)
    assert not np.array_equal(RiseMasks(200, 4, 0.3, (30, 30), seed=6)[0:200], full)


def test_rise_equals_the_reference_and_other_normalisations():
    model = strided_model()
    x, targets = photos(), [2, 0]
    made, _, method = explain(model, "rise:masks=150:cell=5:p=0.4:seed=3", x, targets)
    masks = method.masks((SIDE, SIDE))[0:150]
    for n, t in enumerate(targets):
        probs = softmax(onnx_scores(model, x[n][None] * masks[:, None]))[:, t]  # P(t | x * M_i)
        ours = np.tensordot(probs, masks, axes=1) / (150 * 0.4)  # Petsiuk et al. and DIANNA
        np.testing.assert_allclose(made.maps[n], ours, rtol=1e-5, atol=1e-7)
        raw_sum = np.tensordot(probs, masks, axes=1)
        openvino = (raw_sum - raw_sum.min()) / (raw_sum.max() - raw_sum.min())  # OpenVINO XAI's scaling
        assert np.corrcoef(openvino.ravel(), made.maps[n].ravel())[0, 1] > 0.9999


def test_rise_seed_decides_the_map():
    model, x = strided_model(), photos(1)
    first, _, _ = explain(model, "rise:masks=40:seed=1", x, [0])
    again, _, _ = explain(model, "rise:masks=40:seed=1", x, [0])
    other, _, _ = explain(model, "rise:masks=40:seed=2", x, [0])
    np.testing.assert_array_equal(first.maps, again.maps)
    assert not np.allclose(first.maps, other.maps)


def test_rise_keeping_everything_gives_the_probability():
    model, x = strided_model(), photos(1)
    made, run, _ = explain(model, "rise:masks=10:p=1", x, [3])
    np.testing.assert_allclose(made.maps[0], softmax(run.scores)[0, 3], rtol=1e-5)


def test_rise_batched_maps_equal_single_photo_maps():
    model, x = strided_model(), photos(3)
    together, _, _ = explain(model, "rise:masks=30", x, [0, 1, 2])
    for n in range(3):
        alone, _, _ = explain(model, "rise:masks=30", x[n : n + 1], [n])
        np.testing.assert_allclose(together.maps[n], alone.maps[0], rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Score-CAM
# --------------------------------------------------------------------------------------------


def corners_upsample(a: np.ndarray, size: int) -> np.ndarray:
    """(h, w) -> (size, size) bilinear with corners aligned (torch's UpsamplingBilinear2d), by np.interp."""
    grid = np.linspace(0, a.shape[0] - 1, size), np.linspace(0, a.shape[1] - 1, size)
    rows = np.stack([np.interp(grid[1], np.arange(a.shape[1]), row) for row in a])
    return np.stack([np.interp(grid[0], np.arange(a.shape[0]), col) for col in rows.T], axis=1)


def reference_scorecam(model, x: np.ndarray, activations: np.ndarray, target: int) -> np.ndarray:
    """pytorch-grad-cam's Score-CAM of one photo on the layer grid."""
    up = np.stack([corners_upsample(a, SIDE) for a in activations])
    low, high = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    up = (up - low) / (high - low + 1e-8)
    scores = onnx_scores(model, x[None] * up[:, None])[:, target]
    return np.maximum(np.einsum("k,khw->hw", softmax(scores), activations), 0)


@pytest.mark.parametrize("dead", [None, 2])
def test_scorecam_equals_pytorch_grad_cams_definition(dead):
    """Also with a constant (all-zero) channel, which fixtrace scores once for all such channels."""
    model = strided_model(dead)
    x, targets = photos(), [1, 4]
    explainer = Explainer(model, method="scorecam", preset="raw", device="cpu", ge=True)
    run = explainer.runner.run(x)
    method = explainer.map_method.inner
    assert method.layer == "r" and method.wants_coarse
    made = method.explain(run, targets)
    activations = run.tensors.value("r")
    assert activations.shape == (2, 6, 15, 15) and made.coarse.shape == (2, 15, 15)
    assert dead is None or not activations[:, dead].any()
    for n, t in enumerate(targets):
        want = reference_scorecam(model, x[n], activations[n], t)
        np.testing.assert_allclose(made.coarse[n], want, rtol=1e-5, atol=1e-6 * want.max())
    assert made.maps.shape == (2, SIDE, SIDE)
    sharp = explainer.map_method.explain(run, targets)  # Gradual Extrapolation of the coarse maps
    assert sharp.maps.shape == (2, SIDE, SIDE) and 0 <= sharp.maps.min() and sharp.maps.max() <= 1


def test_scorecam_refuses_a_layer_off_the_path():
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c"], ["side"]),
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    model = build(nodes, ["N", 3, 8, 8], ["y", "side"], {"w": _w(rng, 2, 3, 1, 1), "fc": _w(rng, 4, 3)})
    with pytest.raises(FixtraceError, match="layer 'side' is not on the way from the input to the logits"):
        Explainer(model, method="scorecam:layer=side", preset="raw", device="cpu", output="y")


# --------------------------------------------------------------------------------------------
# The bundled MobileNetV2 (few forwards)
# --------------------------------------------------------------------------------------------

EARLY = "/features/features.1/conv/conv.1/Conv_output_0"  # 16 channels at 112 x 112


@pytest.fixture(scope="module")
def mobilenet_results(mobilenet_path):
    explainer = Explainer(mobilenet_path, method="gradcam", device="cpu")
    specs = ["gradcam", "rise:masks=200", "occlusion:patch=56:stride=28", f"scorecam:layer={EARLY}"]
    return explainer, explainer.explain(IMAGES / "chelsea.jpg", methods=specs)


def test_mobilenet_rise_peaks_inside_gradcams_box(mobilenet_results):
    _, results = mobilenet_results
    x0, y0, x1, y1 = results["gradcam"].box
    heat = results["rise:masks=200"].heatmap
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert x0 <= x <= x1 and y0 <= y <= y1, (x, y, results["gradcam"].box)


def test_mobilenet_occlusion_and_scorecam_smoke(mobilenet_results):
    explainer, results = mobilenet_results
    occlusion, scorecam = results["occlusion:patch=56:stride=28"], results[f"scorecam:layer={EARLY}"]
    assert occlusion.target.index == 285 and occlusion.settings["patch"] == 56 and occlusion.settings["fill"] == 0.0
    assert scorecam.settings["layer"] == EARLY and scorecam.input_map.shape == (224, 224)
    for e in (occlusion, scorecam):
        assert np.isfinite(e.input_map).all() and e.heatmap.max() == pytest.approx(1.0)
    assert explainer.runner.forward.images == 200 + 7 * 7 + 16
