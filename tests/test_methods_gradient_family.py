"""Grad-CAM++, LayerCAM, XGrad-CAM, Integrated Gradients and SmoothGrad without torch: through the
API and the CLI on the bundled MobileNetV2 and a Fashion CNN, with the properties their
definitions imply (the equalities with Captum and pytorch-grad-cam's formulas are in
test_methods_gradient_family_oracles, torch-marked)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_layouts import small_cnn

from conftest import IMAGES, MODELS, run_cli
from fixtrace import Explainer, FixtraceError
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.methods import IntegratedGradients, SmoothGrad, method_names
from fixtrace.methods.gradient import WALK_BYTES

#: Each new method, light enough for the default run (the path and noise methods with few walks).
LIGHT = {
    "gradcam++": "gradcam++",
    "layercam": "layercam",
    "xgradcam": "xgradcam",
    "integrated-gradients": "integrated-gradients:steps=6",
    "smoothgrad": "smoothgrad:samples=6",
}
CHELSEA, COFFEE = IMAGES / "chelsea.jpg", IMAGES / "coffee.jpg"


@pytest.fixture(scope="module")
def explainer(mobilenet_path):
    return Explainer(mobilenet_path, device="cpu", method=list(LIGHT.values()))


def _batch(explainer, *paths):
    return np.stack([preprocess(load_image(p), explainer.graph.image_input, explainer.preset)[0] for p in paths])


def test_the_five_are_registered_with_options():
    names = method_names()
    assert {"gradcam++", "layercam", "xgradcam", "integrated-gradients", "smoothgrad"} <= set(names)
    assert names.index("deconvnet") < names.index("integrated-gradients") < names.index("smoothgrad") < names.index("cam")
    assert IntegratedGradients.parameters["steps"].default == 50
    assert IntegratedGradients.parameters["rule"].default == "gausslegendre"  # Captum's default
    assert SmoothGrad.parameters["noise"].default == 0.15  # the paper's


@pytest.mark.parametrize("name", list(LIGHT))
def test_maps_are_non_negative_class_sensitive_and_repeatable(explainer, name):
    spec = LIGHT[name]
    cat, bag = (explainer.explain(CHELSEA, target=t, method=spec) for t in (285, 728))  # Egyptian cat, plastic bag
    for e in (cat, bag):
        assert e.input_map.shape == (224, 224) and e.input_map.dtype == np.float32
        assert np.isfinite(e.input_map).all() and e.input_map.min() >= 0 and e.input_map.max() > 0
        assert e.settings["method"] == name
    assert np.corrcoef(cat.input_map.ravel(), bag.input_map.ravel())[0, 1] < 0.99
    again = explainer.explain(CHELSEA, target=285, method=spec)
    np.testing.assert_array_equal(again.input_map, cat.input_map)


@pytest.mark.parametrize("name", list(LIGHT))
def test_a_batch_gives_each_photo_its_own_map(explainer, name):
    items = list(explainer.explain_many([CHELSEA, COFFEE], method=LIGHT[name], batch_size=2))
    for item in items:
        alone = explainer.explain(item.image, method=LIGHT[name])
        np.testing.assert_allclose(item.explanations[0].input_map, alone.input_map, rtol=1e-4, atol=1e-6 * alone.input_map.max())


def test_xgradcam_is_gradcam_on_a_global_pool_head(explainer):
    """Before a global average pool the gradient is constant over positions: XGrad-CAM's weight
    sum(g A) / sum(A) is then Grad-CAM's mean gradient."""
    run = explainer.runner.run(_batch(explainer, CHELSEA, COFFEE))
    x = explainer.prepared("xgradcam").coarse(run.tensors, [285, 967])
    g = explainer.prepared("gradcam").coarse(run.tensors, [285, 967])
    np.testing.assert_allclose(x, g, rtol=1e-4, atol=1e-6 * g.max())


def test_cam_variants_read_a_named_layer_and_sharpen(mobilenet_path):
    layer = "/features/features.7/conv/conv.1/conv.1.2/Clip_output_0"  # 14x14
    for name in ("gradcam++", "layercam", "xgradcam"):
        explainer = Explainer(mobilenet_path, method=f"{name}:layer={layer}", device="cpu")
        e = explainer.explain(CHELSEA)
        assert e.settings["layer"] == layer and e.input_map.max() > 0
        sharp = Explainer(mobilenet_path, method=name, ge=True, device="cpu").explain(CHELSEA)
        assert sharp.method == f"{name}:ge" and 0 <= sharp.input_map.min() and sharp.input_map.max() <= 1


def test_smoothgrad_without_noise_is_saliency(explainer):
    smooth, saliency = explainer.prepared("smoothgrad:samples=2:noise=0"), explainer.prepared("saliency")
    run = explainer.runner.run(_batch(explainer, CHELSEA))
    want = saliency.attributions(run.tensors, [285])
    np.testing.assert_allclose(smooth.attributions(run, [285]), want, rtol=1e-5, atol=1e-7 * want.max())
    np.testing.assert_allclose(
        smooth.explain(run, [285]).maps, saliency.maps(run.tensors, [285]), rtol=1e-5, atol=1e-7 * want.max()
    )


def test_smoothgrad_noise_is_seeded(explainer):
    first = explainer.explain(CHELSEA, method="smoothgrad:samples=3:seed=5").input_map
    np.testing.assert_array_equal(explainer.explain(CHELSEA, method="smoothgrad:samples=3:seed=5").input_map, first)
    assert not np.allclose(explainer.explain(CHELSEA, method="smoothgrad:samples=3:seed=6").input_map, first)
    method = explainer.prepared("smoothgrad:samples=3:seed=5")
    run = explainer.runner.run(_batch(explainer, CHELSEA))
    noise = method.noisy(run, np.arange(3)) - run.batch
    span = np.ptp(run.batch)
    assert abs(noise.std() / span - 0.15) < 0.01  # the noise level: a fraction of the input's range


def test_integrated_gradients_add_up_to_the_score_difference():
    """Completeness (Sundararajan et al.): the attributions sum to f(x) - f(baseline), up to the
    quadrature's error (50 Gauss-Legendre points: within 5 % on a Fashion CNN)."""
    explainer = Explainer(MODELS / "fashion" / "resnet.onnx", preset="raw", device="cpu", method="integrated-gradients")
    paths = sorted((MODELS / "fashion" / "samples").glob("*.png"))[:2]
    run = explainer.runner.run(_batch(explainer, *paths))
    targets = [int(s.argmax()) for s in run.scores]
    method = explainer.map_method
    got = method.attributions(run, targets).reshape(2, -1).sum(axis=1)
    want = run.scores[[0, 1], targets] - explainer.runner.forward(method.baseline(run))[0, targets]
    np.testing.assert_allclose(got, want, rtol=0.05)


def test_integrated_gradients_black_baseline_is_a_black_photo(explainer):
    run = explainer.runner.run(_batch(explainer, CHELSEA))
    black = explainer.prepared("integrated-gradients:baseline=black:steps=2").baseline(run)
    want = preprocess(np.zeros((300, 400, 3), np.uint8), explainer.graph.image_input, explainer.preset)[0]
    np.testing.assert_array_equal(black[0], want)
    assert black[0, 0, 0, 0] == pytest.approx(-0.485 / 0.229)  # imagenet: black is not the zero tensor
    assert not explainer.prepared("integrated-gradients:steps=2").baseline(run).any()


def test_copies_are_walked_a_bounded_number_at_a_time(explainer, monkeypatch):
    method = explainer.prepared(LIGHT["integrated-gradients"])
    assert not method.needs  # the batch's own forward keeps nothing for it
    run = explainer.runner.run(_batch(explainer, CHELSEA, COFFEE))
    step = method.per_walk(run)
    kept = sum(4 * int(np.prod(explainer.runner.shapes[t][1:])) for t in method.keep if t in explainer.runner.shapes)
    assert 1 <= step and 2 * step * kept <= WALK_BYTES
    sizes = []
    original = type(run.forward).keeping
    monkeypatch.setattr(
        type(run.forward), "keeping", lambda self, inputs, keep: sizes.append(len(inputs)) or original(self, inputs, keep)
    )
    method.explain(run, [285, 967])
    assert sum(sizes) == 12 and max(sizes) == step


def test_a_fixed_batch_of_one_gives_the_same_maps():
    model = small_cnn()
    fixed = small_cnn()
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    photo = np.random.default_rng(4).uniform(0, 255, (16, 16, 3)).astype(np.uint8)
    for spec in ("integrated-gradients:steps=5", "smoothgrad:samples=3"):
        want = Explainer(model, method=spec, preset="raw", device="cpu").explain(photo, target=1).input_map
        got = Explainer(fixed, method=spec, preset="raw", device="cpu").explain(photo, target=1).input_map
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * want.max())


@pytest.mark.parametrize(
    "spec, message",
    [
        ("integrated-gradients:steps=0", "integrated-gradients's steps must be between 1 and 10000, not 0"),
        ("integrated-gradients:rule=simpson", "unknown integrated-gradients's rule 'simpson'"),
        ("integrated-gradients:baseline=grey", "unknown integrated-gradients's baseline 'grey'"),
        ("integrated-gradients:rule=riemann_left:steps=1", "steps must be at least 2 with rule riemann-left, not 1"),
        ("smoothgrad:noise=2", "smoothgrad's noise must be a number in [0, 1], not 2.0"),
        ("smoothgrad:samples=x", "smoothgrad's samples must be a whole number, not 'x'"),
        ("gradcam++:layer=nope", "layer 'nope' is not on the way from the input to the logits"),
        ("smoothgrad:ge", "Gradual Extrapolation sharpens coarse maps (cam, fixations, gradcam, gradcam++, layercam"),
    ],
)
def test_bad_options_are_one_line_errors(mobilenet_path, spec, message):
    with pytest.raises(FixtraceError, match=re.escape(message)) as caught:
        Explainer(mobilenet_path, method=spec, device="cpu")
    assert "\n" not in str(caught.value)


def test_cli_writes_a_folder_per_method_and_info_lists_them(tmp_path):
    out = tmp_path / "out"
    methods = "gradcam,gradcam++,layercam,xgradcam,integrated-gradients:steps=4,smoothgrad:samples=4"
    proc = run_cli("explain", MODELS / "mobilenet_v2.onnx", CHELSEA, "--out", out, "--method", methods, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folders = sorted(p.name for p in (out / "chelsea").iterdir())
    assert folders == [
        "gradcam", "gradcampp", "grid.png", "integrated-gradients_steps_4", "layercam", "smoothgrad_samples_4", "xgradcam"
    ]  # fmt: skip
    record = json.loads((out / "chelsea" / "integrated-gradients_steps_4" / "explanation.json").read_text())
    assert record["settings"]["method"] == "integrated-gradients"
    assert record["settings"]["steps"] == 4 and record["settings"]["rule"] == "gausslegendre"
    proc = run_cli("info", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("gradcam++", "layercam", "xgradcam", "integrated-gradients", "smoothgrad"):
        assert any(line.split()[:1] == [name] for line in proc.stdout.splitlines()), name
    assert "baseline=zero, steps=50, rule=gausslegendre" in proc.stdout and "samples=50, noise=0.15, seed=0" in proc.stdout


def test_all_includes_them():
    """``all`` on a tiny model: the five are prepared with the rest (small_cnn has a global pool)."""
    explainer = Explainer(small_cnn(), method="all", preset="raw", device="cpu")
    labels = [s.label for s in explainer.specs]
    assert {"gradcam++", "layercam", "xgradcam", "integrated-gradients", "smoothgrad"} <= set(labels)
    assert not {k for k in explainer.skipped if k in LIGHT}
