"""Occlusion, RISE and Score-CAM against torch on the bundled MobileNetV2's weights (torch rebuilt):
Captum 0.9's ``Occlusion`` itself, and pytorch-grad-cam's Score-CAM weights written with torch ops
as its ``ScoreCAM.get_cam_weights`` does (the package is not installed here).

Tolerance: onnxruntime (BatchNorm folded into the convs) and torch agree on MobileNetV2's logits to
about 1e-5; occlusion maps are differences of logits, so they agree within 1e-4 of the map's
largest value; Score-CAM's layer maps within 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from fixtrace import Explainer
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.methods.rise import RiseMasks

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr", reason="captum is needed for these oracles (pip install captum==0.9.0)")
pytestmark = pytest.mark.torch

TARGETS = [285, 967]
EARLY = "/features/features.1/conv/conv.1/Conv_output_0"  # torch: features[1]'s output, 16 x 112 x 112


@pytest.fixture(scope="module")
def explainer(mobilenet_path):
    return Explainer(mobilenet_path, method="occlusion", device="cpu")


@pytest.fixture(scope="module")
def batch(explainer, chelsea_path, coffee_path):
    graph = explainer.graph
    return np.stack([preprocess(load_image(p), graph.image_input, explainer.preset)[0] for p in (chelsea_path, coffee_path)])


@pytest.mark.parametrize("patch, stride", [(56, 56), (64, 48)])  # 4 x 4 windows; 5 x 5, the last cut at the edge
def test_occlusion_equals_captum(explainer, batch, torch_mobilenet, patch, stride):
    method = explainer.prepared(f"occlusion:patch={patch}:stride={stride}")
    got = method.explain(explainer.runner.run(batch), TARGETS).maps
    want = (
        captum_attr.Occlusion(torch_mobilenet)
        .attribute(
            torch.tensor(batch),
            sliding_window_shapes=(3, patch, patch),
            strides=(3, stride, stride),
            baselines=0.0,
            target=TARGETS,
            perturbations_per_eval=16,
        )
        .detach()
        .numpy()
    )
    np.testing.assert_array_equal(want[:, 0], want[:, 2])  # a full-depth window: every channel alike
    assert got.shape == want[:, 0].shape
    error = np.abs(got - want[:, 0]).max()
    assert error <= 1e-4 * np.abs(want).max(), (error, np.abs(want).max())


def test_scorecam_equals_pytorch_grad_cams_weights(explainer, batch, torch_mobilenet):
    method = explainer.prepared(f"scorecam:layer={EARLY}")
    method.wants_coarse = True
    got = method.explain(explainer.runner.run(batch), TARGETS).coarse
    x = torch.tensor(batch)
    with torch.no_grad():
        activations = torch_mobilenet.features[:2](x)
        # pytorch-grad-cam 1.5 ScoreCAM.get_cam_weights, with ClassifierOutputTarget (the raw logit):
        upsampled = torch.nn.UpsamplingBilinear2d(size=x.shape[-2:])(activations)
        flat = upsampled.view(upsampled.size(0), upsampled.size(1), -1)
        maxs, mins = flat.max(dim=-1)[0][:, :, None, None], flat.min(dim=-1)[0][:, :, None, None]
        upsampled = (upsampled - mins) / (maxs - mins + 1e-8)
        inputs = x[:, None] * upsampled[:, :, None]
        scores = torch.stack([torch_mobilenet(inputs[n])[:, t] for n, t in enumerate(TARGETS)])
        weights = torch.nn.Softmax(dim=-1)(scores)
        # BaseCAM.get_cam_image: ReLU of the weighted sum of the activations.
        want = torch.relu((weights[:, :, None, None] * activations).sum(dim=1)).numpy()
    assert got.shape == want.shape == (2, 112, 112)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())


def test_rise_masks_are_torch_bilinear_crops():
    masks = RiseMasks(20, 7, 0.5, (224, 224), seed=0)
    up = torch.nn.functional.interpolate(
        torch.tensor(masks.grids[:, None]), size=(8 * 32, 8 * 32), mode="bilinear", align_corners=False
    )[:, 0].numpy()
    want = np.stack([u[r : r + 224, c : c + 224] for u, (r, c) in zip(up, masks.shifts)])
    np.testing.assert_allclose(masks[0:20], want, atol=1e-6)
