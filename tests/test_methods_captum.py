"""Map methods on the bundled MobileNetV2 against Captum 0.9 on the same weights (torch rebuilt).

Captum's GuidedBackprop and Deconvolution override only ``nn.ReLU`` modules; MobileNetV2 uses
ReLU6, so the torch oracle swaps each ReLU6 for a ReLU subclass computing clamp(x, 0, 6), which
Captum then treats as a ReLU: the same rule fixtrace applies to ONNX Clip(0, 6).

Tolerance: onnxruntime (BatchNorm folded into the convs) and torch differ in the last bits of
some activations, and an activation on a ReLU6 kink then takes the other branch. Input-grid
attributions must match within 1e-4 x max on at least 99.5 % of elements with an L2 error under
1 %; layer maps (Grad-CAM 7x7) within 1e-3 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.methods import CAM, Deconvnet, GradCAM, GuidedBackprop, GuidedGradCAM, Saliency
from fixtrace.runtime.session import Session

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr", reason="captum is needed for these oracles (pip install captum==0.9.0)")
pytestmark = pytest.mark.torch

TARGETS = [285, 967]


class _ReLU6AsReLU(torch.nn.ReLU):
    def forward(self, x):
        return torch.clamp(x, 0.0, 6.0)


@pytest.fixture(scope="module")
def torch_model(torch_mobilenet):
    for module in list(torch_mobilenet.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU6):
                setattr(module, name, _ReLU6AsReLU())
    return torch_mobilenet


@pytest.fixture(scope="module")
def run(mobilenet, chelsea_path, coffee_path):
    """Both photos as one batch: the input and every tensor any method needs."""
    graph = mobilenet.graph
    samples = [preprocess(load_image(p), graph.image_input, mobilenet.preset)[0] for p in (chelsea_path, coffee_path)]
    batch = np.stack(samples)
    shapes = graph.shapes(batch.shape)
    methods = {
        cls: cls(graph, mobilenet.plan.logits, shapes=shapes) for cls in (Saliency, GuidedBackprop, Deconvnet, GradCAM, CAM)
    }
    needs = set().union(*(m.needs for m in methods.values()))
    values = Session(graph, needs | {mobilenet.plan.logits}).run(batch)
    return batch, methods, mobilenet.tensors(values, batch)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    close = np.abs(got - want) <= 1e-4 * float(np.abs(want).max())
    assert close.mean() >= 0.995, close.mean()
    assert np.linalg.norm(got - want) <= 1e-2 * np.linalg.norm(want)


@pytest.mark.parametrize(
    "cls, captum_name, kwargs",
    [
        (Saliency, "Saliency", {"abs": True}),
        (GuidedBackprop, "GuidedBackprop", {}),
        (Deconvnet, "Deconvolution", {}),
    ],
)
def test_input_attributions_equal_captum(run, torch_model, cls, captum_name, kwargs):
    batch, methods, tensors = run
    got = methods[cls].attributions(tensors, TARGETS)
    want = getattr(captum_attr, captum_name)(torch_model).attribute(torch.tensor(batch), target=TARGETS, **kwargs)
    _close(got, want.detach().numpy())


def test_gradcam_equals_captum_layer_gradcam(run, torch_model):
    batch, methods, tensors = run
    method = methods[GradCAM]
    assert method.layer == methods[CAM].layer  # the default: the last spatial map, here the pooled one
    got = method.attributions(tensors, TARGETS)
    assert got.shape == (2, 7, 7)
    want = (
        captum_attr.LayerGradCam(torch_model, torch_model.features[-1])
        .attribute(torch.tensor(batch), target=TARGETS, relu_attributions=True)
        .detach()
        .numpy()[:, 0]
    )
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))
    assert got.reshape(2, -1).argmax(1).tolist() == want.reshape(2, -1).argmax(1).tolist()


def test_guided_gradcam_equals_captum(run, torch_model, mobilenet):
    batch, methods, tensors = run
    method = GuidedGradCAM(
        mobilenet.graph, mobilenet.plan.logits, shapes=mobilenet.graph.shapes(batch.shape), upsample_mode="nearest"
    )  # Captum's default interpolation
    got = method.attributions(tensors, TARGETS)
    want = captum_attr.GuidedGradCam(torch_model, torch_model.features[-1]).attribute(torch.tensor(batch), target=TARGETS)
    _close(got, want.detach().numpy())


def test_cam_is_gradcam_up_to_scale_on_a_gap_fc_head(run):
    """For conv -> GAP -> FC, Grad-CAM's alpha_k is w_ck / (h w): CAM and Grad-CAM agree (ReLU aside)."""
    batch, methods, tensors = run
    cam = np.maximum(methods[CAM].attributions(tensors, TARGETS), 0)
    gradcam = methods[GradCAM].attributions(tensors, TARGETS)
    np.testing.assert_allclose(cam / 49.0, gradcam, rtol=1e-4, atol=1e-6)
