"""Every gradient rule against torch autograd on the same weights and inputs.

Each case builds a small ONNX graph, runs onnxruntime for the activations, walks a random seed
gradient from the output down to the input with fixtrace's rules, and compares the input
gradient with torch's (the same op written with torch.nn.functional). The forward outputs are
compared first, so that a mistranslated torch oracle cannot pass. Tolerance: max |error| <=
1e-4 x max |torch gradient| (float32).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_rules_oracle import CONV_CASES, Case, _w, build, resolve_pads

from fixtrace.gradients import GradientPlan

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

TOLERANCE = 1e-4


def check(case: Case, torch_fn, mode: str = "plain", output: str = "y", seed: int = 0) -> None:
    """fixtrace's input gradient of <seed, y> equals torch's, and both forwards agree."""
    x = torch.tensor(case.x, requires_grad=True)
    y = torch_fn(x)
    np.testing.assert_allclose(y.detach().numpy(), case.values[output], rtol=1e-4, atol=1e-5)
    g = np.random.default_rng(seed).standard_normal(case.values[output].shape).astype(np.float32)
    (y * torch.tensor(g)).sum().backward()
    want = x.grad.numpy()
    got = GradientPlan(case.graph, output, mode).run(g, case.tensors)["x"]
    assert got.shape == want.shape and got.dtype == np.float32
    scale = max(float(np.abs(want).max()), 1e-12)
    assert float(np.abs(got - want).max()) <= TOLERANCE * scale, float(np.abs(got - want).max()) / scale


def _single(op: str, x: np.ndarray, inits=None, opset: int = 13, **attrs) -> Case:
    inputs = ["x", *(inits or {})]
    return Case(build([helper.make_node(op, inputs, ["y"], **attrs)], x.shape, ["y"], inits, opset), x)


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv(name):
    c_in, c_out, kernel, hw, attrs = CONV_CASES[name]
    rng = np.random.default_rng(1)
    groups = attrs.get("group", 1)
    w, bias = _w(rng, c_out, c_in // groups, *kernel), _w(rng, c_out)
    x = _w(rng, 2, c_in, *hw)
    top, left, bottom, right = resolve_pads(attrs, kernel, hw)
    case = _single("Conv", x, {"w": w, "b": bias}, kernel_shape=list(kernel), **attrs)

    def oracle(t):
        t = F.pad(t, (left, right, top, bottom))
        return F.conv2d(
            t,
            torch.tensor(w),
            torch.tensor(bias),
            stride=attrs.get("strides", [1, 1]),
            dilation=attrs.get("dilations", [1, 1]),
            groups=groups,
        )

    check(case, oracle)


POOLS = {
    "max-3x3-s2-pad1": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "max-3x3-s2-ceil": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    "max-3x3-s1-asym": ("MaxPool", dict(kernel_shape=[3, 3], pads=[0, 1, 2, 1])),
    "max-2x2-dilation2": ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2])),
    "avg-3x3-s2-pad1": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "avg-3x3-s2-pad1-include": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    "avg-2x2-s2-ceil": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "avg-3x3-s1": ("AveragePool", dict(kernel_shape=[3, 3])),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pools(name):
    op, attrs = POOLS[name]
    x = _w(np.random.default_rng(2), 2, 3, 9, 8)
    case = _single(op, x, **attrs)
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    k, s, ceil = attrs["kernel_shape"], attrs.get("strides", [1, 1]), bool(attrs.get("ceil_mode", 0))

    def oracle(t):
        if op == "MaxPool":
            t = F.pad(t, (left, right, top, bottom), value=-np.inf)
            return F.max_pool2d(t, k, s, dilation=attrs.get("dilations", [1, 1]), ceil_mode=ceil)
        return F.avg_pool2d(t, k, s, padding=top, ceil_mode=ceil, count_include_pad=bool(attrs.get("count_include_pad", 0)))

    check(case, oracle)


def test_max_pool_ties_go_to_the_first_maximum():
    x = np.maximum(np.random.default_rng(3).integers(-2, 2, size=(2, 3, 8, 8)), 0).astype(np.float32)
    case = _single("MaxPool", x, kernel_shape=[3, 3], strides=[1, 1])
    check(case, lambda t: F.max_pool2d(t, 3, 1))


def _flat_then(op: str, x: np.ndarray, inits: dict, **attrs) -> Case:
    """Flatten a (N, K, 1, 1) input (fixtrace takes image-shaped inputs), then ``op``."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node(op, ["f", *inits], ["y"], **attrs)]
    return Case(build(nodes, x.shape, ["y"], inits), x)


@pytest.mark.parametrize("form", ["gemm-transB1", "gemm-alpha", "matmul"])
def test_dense(form):
    rng = np.random.default_rng(4)
    x = _w(rng, 3, 6, 1, 1)
    w = _w(rng, 5, 6)
    if form == "matmul":
        case = _flat_then("MatMul", x, {"w": w.T.copy()})
        check(case, lambda t: t.flatten(1) @ torch.tensor(w.T.copy()))
    else:
        alpha = 0.5 if form == "gemm-alpha" else 1.0
        bias = _w(rng, 5)
        case = _flat_then("Gemm", x, {"w": w, "b": bias}, transB=1, alpha=alpha)
        check(case, lambda t: alpha * (t.flatten(1) @ torch.tensor(w).T) + torch.tensor(bias))


@pytest.mark.parametrize(
    "op, attrs, axes",
    [
        ("GlobalAveragePool", {}, (2, 3)),
        ("ReduceMean", {"axes": [2, 3]}, (2, 3)),
        ("ReduceMean", {"axes": [1, 2], "keepdims": 0}, (1, 2)),
    ],
)
def test_means(op, attrs, axes):
    x = _w(np.random.default_rng(5), 2, 3, 4, 5)
    keep = bool(attrs.get("keepdims", 1))
    check(_single(op, x, **attrs), lambda t: t.mean(dim=axes, keepdim=keep))


ACTIVATIONS = {
    "Relu": ({}, {}, lambda t: F.relu(t)),
    "Clip-relu6": ({"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}, {}, lambda t: F.hardtanh(t, 0.0, 6.0)),
    "LeakyRelu": ({}, {"alpha": 0.1}, lambda t: F.leaky_relu(t, 0.1)),
    "Sigmoid": ({}, {}, torch.sigmoid),
    "HardSigmoid": ({}, {"alpha": 1 / 6, "beta": 0.5}, lambda t: F.hardsigmoid(t)),
    "HardSwish": ({}, {}, lambda t: F.hardswish(t)),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations(name):
    inits, attrs, fn = ACTIVATIONS[name]
    x = 4 * _w(np.random.default_rng(6), 2, 3, 4, 5)  # spans every branch of the clipped ones
    check(_single(name.split("-")[0], x, inits, opset=14, **attrs), fn)


def test_batch_norm_inference():
    rng = np.random.default_rng(7)
    x = _w(rng, 2, 3, 4, 5)
    scale, bias, mean, var = _w(rng, 3), _w(rng, 3), _w(rng, 3), np.abs(_w(rng, 3)) + 0.5
    case = _single("BatchNormalization", x, {"s": scale, "b": bias, "m": mean, "v": var}, epsilon=1e-3)
    check(
        case,
        lambda t: F.batch_norm(
            t, torch.tensor(mean), torch.tensor(var), torch.tensor(scale), torch.tensor(bias), training=False, eps=1e-3
        ),
    )


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Sum"])
def test_broadcast_arithmetic_of_two_computed_operands(op):
    """a = relu(x) (2, 3, 4, 5) and b = mean(x, axis 2) + 2 (2, 3, 1, 5), both computed from x."""
    x = _w(np.random.default_rng(8), 2, 3, 4, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2]),
        helper.make_node("Add", ["m", "two"], ["b"]),
        helper.make_node(op, ["a", "b"], ["y"]),
    ]
    case = Case(build(nodes, x.shape, ["y"], {"two": np.array(2.0, np.float32)}), x)
    ops = {"Add": torch.add, "Sum": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}
    check(case, lambda t: ops[op](F.relu(t), t.mean(dim=2, keepdim=True) + 2))


@pytest.mark.parametrize("axis", [1, 3])
def test_concat_and_reshapes(axis):
    x = _w(np.random.default_rng(9), 2, 3, 4, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Sigmoid", ["x"], ["b"]),
        helper.make_node("Concat", ["a", "b", "a"], ["c"], axis=axis),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["t"], ["y"]),
    ]
    case = Case(build(nodes, x.shape, ["y"]), x)
    check(case, lambda t: torch.cat([F.relu(t), torch.sigmoid(t), F.relu(t)], dim=axis).permute(0, 2, 3, 1).flatten(1))


@pytest.mark.parametrize(
    "mode, torch_mode", [("constant", "constant"), ("reflect", "reflect"), ("edge", "replicate"), ("wrap", "circular")]
)
def test_pad(mode, torch_mode):
    x = _w(np.random.default_rng(10), 2, 3, 4, 5)
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    case = _single("Pad", x, {"p": pads}, opset=19, mode=mode)
    check(case, lambda t: F.pad(t, (2, 1, 1, 2), mode=torch_mode))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax(op):
    x = _w(np.random.default_rng(11), 3, 7, 1, 1)
    fn = F.softmax if op == "Softmax" else F.log_softmax
    check(_flat_then(op, x, {}, axis=1), lambda t: fn(t.flatten(1), dim=1))


class _ModeReLU(torch.nn.Module):
    """ReLU whose backward pass follows guided backprop or deconvnet (the rule Captum applies)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, t):
        return _ModeReLUFunction.apply(t, self.mode)


class _ModeReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, mode):
        ctx.save_for_backward(t)
        ctx.mode = mode
        return t.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        if ctx.mode == "deconvnet":
            return grad.clamp(min=0), None
        return (grad * (t > 0)).clamp(min=0), None


@pytest.mark.parametrize("mode", ["guided", "deconvnet"])
def test_relu_modes_through_a_small_network(mode):
    rng = np.random.default_rng(12)
    x = _w(rng, 2, 3, 6, 6)
    w1, w2 = _w(rng, 4, 3, 3, 3), _w(rng, 2, 4, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["y"]),
    ]
    case = Case(build(nodes, x.shape, ["y"], {"w1": w1, "w2": w2}), x)
    relu = _ModeReLU(mode)
    check(case, lambda t: relu(F.conv2d(relu(F.conv2d(t, torch.tensor(w1), padding=1)), torch.tensor(w2))), mode=mode)


@pytest.mark.parametrize("size", [3, 5])
def test_lrn(size):
    x = _w(np.random.default_rng(13), 2, 7, 4, 5)
    case = _single("LRN", x, size=size, alpha=0.5, beta=0.75, bias=2.0)
    check(case, lambda t: F.local_response_norm(t, size, alpha=0.5, beta=0.75, k=2.0))


@pytest.mark.parametrize("op", ["Squeeze", "Unsqueeze", "Reshape"])
def test_other_reshapes(op):
    x = _w(np.random.default_rng(14), 2, 3, 1, 5)
    inits = {
        "Squeeze": {"ax": np.array([2], np.int64)},
        "Unsqueeze": {"ax": np.array([1], np.int64)},
        "Reshape": {"ax": np.array([2, 5, 3], np.int64)},
    }[op]
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node(op, ["s", "ax"], ["y"])]
    oracle = {
        "Squeeze": lambda t: torch.sigmoid(t).squeeze(2),
        "Unsqueeze": lambda t: torch.sigmoid(t).unsqueeze(1),
        "Reshape": lambda t: torch.sigmoid(t).reshape(2, 5, 3),
    }[op]
    check(Case(build(nodes, x.shape, ["y"], inits), x), oracle)


# The activations that gained a gradient rule with the op modules (opset: the first that has the op).
NEW_ACTIVATIONS = {
    "Elu": (12, {"alpha": 0.7}, lambda t: F.elu(t, 0.7)),
    "Selu": (12, {}, lambda t: F.selu(t)),
    "Celu": (12, {"alpha": 1.5}, lambda t: F.celu(t, 1.5)),
    "Tanh": (12, {}, torch.tanh),
    "Softplus": (12, {}, lambda t: F.softplus(t)),
    "Mish": (18, {}, lambda t: F.mish(t)),
    "Gelu": (20, {}, lambda t: F.gelu(t)),
    "Gelu-tanh": (20, {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
}


@pytest.mark.parametrize("name", list(NEW_ACTIVATIONS))
def test_smooth_activations(name):
    opset, attrs, fn = NEW_ACTIVATIONS[name]
    x = 3 * _w(np.random.default_rng(15), 2, 3, 4, 5)
    check(_single(name.split("-")[0], x, opset=opset, **attrs), fn)


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,)])
def test_prelu(slope_shape):
    rng = np.random.default_rng(16)
    x = _w(rng, 2, 3, 4, 5)
    slope = _w(rng, *slope_shape)
    check(_single("PRelu", x, {"slope": slope}), lambda t: torch.where(t > 0, t, torch.tensor(slope) * t))


@pytest.mark.parametrize(
    "op, attrs, axes",
    [
        ("GlobalMaxPool", {}, (2, 3)),
        ("ReduceMax", {"axes": [2, 3]}, (2, 3)),
        ("ReduceMax", {"axes": [1, 3], "keepdims": 0}, (1, 3)),
    ],
)
def test_maxima(op, attrs, axes):
    x = _w(np.random.default_rng(17), 2, 3, 4, 5)  # no ties: amax's shared gradient is the first maximum's
    keep = bool(attrs.get("keepdims", 1))
    check(_single(op, x, **attrs), lambda t: torch.amax(t, dim=axes, keepdim=keep))
