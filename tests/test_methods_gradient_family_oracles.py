"""Grad-CAM++, LayerCAM, XGrad-CAM, Integrated Gradients and SmoothGrad against torch on the
bundled MobileNetV2's weights (torch rebuilt): Captum 0.9's ``IntegratedGradients`` itself; for
SmoothGrad, torch autograd on the very noisy copies fixtrace made (Captum's ``NoiseTunnel`` draws
its own noise); and pytorch-grad-cam 1.5's weights written with torch ops as its
``GradCAMPlusPlus``, ``LayerCAM`` and ``XGradCAM`` compute them (the package is not installed here).

Tolerance. The layer maps match within 1e-4 of their max. On MobileNetV2, onnxruntime
(BatchNorm folded into the convs) and torch differ in the last bits of activations, and an
activation on a ReLU6 kink then takes the other branch; one flip early in the net changes the
input gradient a little over its whole receptive field (a quarter of a walk's elements move by
more than 1e-4 x max, L2 0.4-0.7 %), and Integrated Gradients and SmoothGrad add up 12 to 16 walks
on new inputs, each with its own flips. So on MobileNetV2 their attributions match with an L2 error
under 1 %, within 1e-3 x max on 99 % of elements and within 1e-2 x max everywhere; on a kink-free
CNN (SiLU, Tanh, Softplus; exported by torch) within 1e-4 x max everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fixtrace import Explainer
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr", reason="captum is needed for these oracles (pip install captum==0.9.0)")
pytestmark = pytest.mark.torch

TARGETS = [285, 967]
#: torch: features[14].conv[0]'s output (the expand conv's ReLU6), 576 x 14 x 14.
MIDDLE = "/features/features.14/conv/conv.0/conv.0.2/Clip_output_0"


@pytest.fixture(scope="module")
def explainer(mobilenet_path):
    return Explainer(mobilenet_path, device="cpu")


@pytest.fixture(scope="module")
def batch(explainer, chelsea_path, coffee_path):
    graph = explainer.graph
    return np.stack([preprocess(load_image(p), graph.image_input, explainer.preset)[0] for p in (chelsea_path, coffee_path)])


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Sums of walks on MobileNetV2 agree but where ReLU6 kinks flipped (see the module's docstring)."""
    assert got.shape == want.shape
    error = np.abs(got - want) / float(np.abs(want).max())
    assert np.linalg.norm(got - want) <= 1e-2 * np.linalg.norm(want)
    assert (error <= 1e-3).mean() >= 0.99, (error <= 1e-3).mean()
    assert error.max() <= 1e-2, error.max()


def _exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    error = float(np.abs(got - want).max()) / float(np.abs(want).max())
    assert error <= 1e-4, error


def _layer_and_gradient(model, module, x):
    """(A, d score / d A) of ``module``'s output for each photo's target, in torch."""
    kept = {}
    handle = module.register_forward_hook(lambda _m, _i, out: kept.update(a=out))
    try:
        scores = model(x)
    finally:
        handle.remove()
    score = scores[torch.arange(len(TARGETS)), TARGETS].sum()
    (grads,) = torch.autograd.grad(score, kept["a"])
    return kept["a"].detach(), grads


def _pytorch_grad_cam_weights(name, activations, grads):
    """pytorch-grad-cam 1.5's ``get_cam_weights`` (LayerCAM: the per-position weights) in torch."""
    if name == "gradcam++":  # GradCAMPlusPlus
        grads_power_2 = grads**2
        grads_power_3 = grads_power_2 * grads
        sum_activations = activations.sum(dim=(2, 3))
        aij = grads_power_2 / (2 * grads_power_2 + sum_activations[:, :, None, None] * grads_power_3 + 0.000001)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        return (torch.clamp(grads, min=0) * aij).sum(dim=(2, 3))[:, :, None, None]
    if name == "xgradcam":  # XGradCAM
        sum_activations = activations.sum(dim=(2, 3))
        return (grads * activations / (sum_activations[:, :, None, None] + 1e-7)).sum(dim=(2, 3))[:, :, None, None]
    return torch.clamp(grads, min=0)  # LayerCAM: spatial_weighted_activations = relu(grads) * activations


@pytest.mark.parametrize("name", ["gradcam++", "layercam", "xgradcam"])
@pytest.mark.parametrize("layer", [None, MIDDLE])
def test_cam_variants_equal_pytorch_grad_cams_formulas(explainer, batch, torch_mobilenet, name, layer):
    method = explainer.prepared(name if layer is None else f"{name}:layer={layer}")
    got = method.coarse(explainer.runner.run(batch).tensors, TARGETS)
    module = torch_mobilenet.features[-1] if layer is None else torch_mobilenet.features[14].conv[0]
    activations, grads = _layer_and_gradient(torch_mobilenet, module, torch.tensor(batch))
    # BaseCAM.get_cam_image, then compute_cam_per_layer's ReLU (before its scaling to [0, 1]).
    want = torch.relu((_pytorch_grad_cam_weights(name, activations, grads) * activations).sum(dim=1)).numpy()
    assert got.shape == want.shape == ((2, 7, 7) if layer is None else (2, 14, 14))
    assert want.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())


@pytest.mark.parametrize(
    "spec, captum_method, steps",
    [
        ("integrated-gradients:steps=16", "gausslegendre", 16),
        ("integrated-gradients:baseline=black:rule=riemann_trapezoid:steps=12", "riemann_trapezoid", 12),
    ],
)
def test_integrated_gradients_equal_captum(explainer, batch, torch_mobilenet, spec, captum_method, steps):
    method = explainer.prepared(spec)
    run = explainer.runner.run(batch)
    got = method.attributions(run, TARGETS)
    baseline = torch.tensor(method.baseline(run))
    if "black" in spec:  # a black photo through imagenet's mean and std, not the zero tensor
        np.testing.assert_allclose(
            baseline[0, :, 0, 0].numpy(), -np.array([0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225], rtol=1e-6
        )
    want = captum_attr.IntegratedGradients(torch_mobilenet).attribute(
        torch.tensor(batch), baselines=baseline, target=TARGETS, n_steps=steps, method=captum_method
    )
    _close(got, want.detach().numpy())
    # The map: |sum over channels|, as Captum's visualize_image_attr draws it by default.
    maps = method.explain(run, TARGETS).maps
    np.testing.assert_allclose(maps, np.abs(got.sum(axis=1)), rtol=1e-6)


def test_smoothgrad_equals_torch_on_the_same_noisy_copies(explainer, batch, torch_mobilenet):
    samples = 6
    method = explainer.prepared(f"smoothgrad:samples={samples}:noise=0.2:seed=7")
    run = explainer.runner.run(batch)
    got = method.attributions(run, TARGETS)
    copies = method.noisy(run, np.arange(len(batch) * samples))
    assert copies.shape == (12, 3, 224, 224)
    span = batch.reshape(2, -1).max(axis=1) - batch.reshape(2, -1).min(axis=1)
    spread = (copies - np.repeat(batch, samples, axis=0)).reshape(2, -1).std(axis=1)
    np.testing.assert_allclose(spread, 0.2 * span, rtol=0.01)  # the noise level: a fraction of the input's range
    x = torch.tensor(copies, requires_grad=True)
    scores = torch_mobilenet(x)
    (grads,) = torch.autograd.grad(scores[torch.arange(12), np.repeat(TARGETS, samples)].sum(), x)
    # Captum's NoiseTunnel(Saliency) with nt_type="smoothgrad": the mean of |grad| over the copies.
    want = grads.abs().reshape(2, samples, 3, 224, 224).mean(dim=1).numpy()
    _close(got, want)
    np.testing.assert_allclose(method.explain(run, TARGETS).maps, got.max(axis=1))


@pytest.fixture(scope="module")
def smooth_net(tmp_path_factory):
    """A kink-free CNN in torch and its ONNX export (batch dim symbolic)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.SiLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.Softplus(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 5),
    ).eval()
    path = tmp_path_factory.mktemp("smooth") / "net.onnx"
    with warnings.catch_warnings():  # torch 2.9+ deprecates the TorchScript exporter (this net needs nothing newer)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            dynamic_axes={"x": {0: "N"}},
        )
    explainer = Explainer(path, preset="raw", device="cpu")
    x = np.random.default_rng(2).uniform(0, 1, (2, 3, 32, 32)).astype(np.float32)
    return net, explainer, x


def test_integrated_gradients_equal_captum_exactly_without_kinks(smooth_net):
    net, explainer, x = smooth_net
    for spec, captum_method in (
        ("integrated-gradients", "gausslegendre"),
        ("integrated-gradients:rule=riemann-left:steps=20", "riemann_left"),
    ):
        method = explainer.prepared(spec)
        got = method.attributions(explainer.runner.run(x), [1, 3])
        steps = method.params["steps"]
        want = captum_attr.IntegratedGradients(net).attribute(torch.tensor(x), target=[1, 3], n_steps=steps, method=captum_method)
        _exact(got, want.detach().numpy())


def test_smoothgrad_equals_torch_exactly_without_kinks(smooth_net):
    net, explainer, x = smooth_net
    method = explainer.prepared("smoothgrad:samples=10")
    run = explainer.runner.run(x)
    got = method.attributions(run, [1, 3])
    copies = torch.tensor(method.noisy(run, np.arange(20)), requires_grad=True)
    (grads,) = torch.autograd.grad(net(copies)[torch.arange(20), np.repeat([1, 3], 10)].sum(), copies)
    _exact(got, grads.abs().reshape(2, 10, 3, 32, 32).mean(dim=1).numpy())
