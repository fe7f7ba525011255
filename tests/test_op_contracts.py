"""One contract per op of ``fixtrace.ops``, on a one-node graph of that op.

For each op with a rule: the fixation rule sends every output position to valid input positions
(an element-wise op to the same position), identically on the CPU backend and in numba's CUDA
simulator; the gradient rule's vector-Jacobian product agrees with central finite differences
of the op computed in float64 by onnx's ReferenceEvaluator (<g, J v> for random g, v). The
detailed oracles of each rule live in test_rules_oracle.py (fixations) and
test_gradients_oracle.py (torch autograd). A new op adds its case to CASES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from test_rules_oracle import Case, build, every

from fixtrace import ops
from fixtrace.backends import cuda_status
from fixtrace.gradients import GradientPlan

_RNG = np.random.default_rng(20)


def _f(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape).astype(np.float32)


@dataclass
class OpCase:
    """A one-node graph: ``op`` on ``x`` (after a Flatten when ``flat``), constants as further inputs."""

    op: str
    attrs: dict = field(default_factory=dict)
    inits: dict = field(default_factory=dict)
    shape: tuple[int, ...] = (2, 3, 4, 5)
    opset: int = 13
    flat: bool = False
    #: Element-wise: a fixation keeps its position.
    same_index: bool = False
    #: A max or an index map: each fixation lands on an input cell holding the output's value.
    keeps_value: bool = False

    def nodes(self) -> list[onnx.NodeProto]:
        first = "f" if self.flat else "x"
        prefix = [helper.make_node("Flatten", ["x"], ["f"])] if self.flat else []
        return [*prefix, helper.make_node(self.op, [first, *self.inits], ["y"], **self.attrs)]

    def case(self) -> Case:
        x = 2 * _f(*self.shape) if self.shape else _f()
        return Case(build(self.nodes(), self.shape, ["y"], self.inits, self.opset), x)

    def double_model(self) -> onnx.ModelProto:
        """The same graph in float64, for the finite differences."""
        f64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in self.inits.items()}
        nodes = self.nodes()
        for node in nodes:
            for a in node.attribute:
                if a.name == "to":
                    a.i = TensorProto.DOUBLE
        graph = helper.make_graph(
            nodes,
            "f64",
            [helper.make_tensor_value_info("x", TensorProto.DOUBLE, list(self.shape))],
            [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
            [numpy_helper.from_array(v, k) for k, v in f64.items()],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=8)


def _elementwise(op: str, opset: int = 13, **attrs) -> OpCase:
    return OpCase(op, attrs, opset=opset, same_index=True)


def _moving(op: str, attrs: dict | None = None, inits: dict | None = None, **options) -> OpCase:
    return OpCase(op, attrs or {}, inits or {}, keeps_value=True, **options)


_BN = {"s": _f(3), "b": _f(3), "m": _f(3), "v": np.abs(_f(3)) + 0.5}
CASES: dict[str, OpCase] = {
    "Conv": OpCase("Conv", {"kernel_shape": [3, 3], "strides": [2, 1], "pads": [1, 1, 1, 1]}, {"w": _f(4, 3, 3, 3), "b": _f(4)}),
    "Gemm": OpCase("Gemm", {"transB": 1, "alpha": 0.5}, {"w": _f(6, 60), "b": _f(6)}, flat=True),
    "MatMul": OpCase("MatMul", {}, {"w": _f(60, 6)}, flat=True),
    "MaxPool": _moving("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "AveragePool": OpCase("AveragePool", {"kernel_shape": [2, 2], "strides": [1, 2]}),
    "GlobalAveragePool": OpCase("GlobalAveragePool"),
    "GlobalMaxPool": _moving("GlobalMaxPool"),
    "ReduceMean": OpCase("ReduceMean", {"axes": [2, 3]}),
    "ReduceMax": _moving("ReduceMax", {"axes": [2, 3], "keepdims": 0}),
    # Opset 13: ReduceSum's axes are an input; 18: every reduction's are (jax2onnx writes 23).
    "ReduceSum": OpCase("ReduceSum", {"keepdims": 0}, {"a": np.array([2, 3], np.int64)}),
    "ReduceL2": OpCase("ReduceL2", {}, {"a": np.array([-2, -1], np.int64)}, opset=18),
    "Max": OpCase("Max", {}, {"c": _f(3, 1, 1)}, same_index=True),
    "Min": OpCase("Min", {}, {"c": _f(5)}, opset=23, same_index=True),
    "Erf": _elementwise("Erf"),
    "Pow": OpCase("Pow", {}, {"p": np.array(3.0, np.float32)}, same_index=True),
    "Relu": _elementwise("Relu"),
    "Clip": OpCase("Clip", {}, {"lo": np.array(-0.5, np.float32), "hi": np.array(1.0, np.float32)}, same_index=True),
    "LeakyRelu": _elementwise("LeakyRelu", alpha=0.2),
    "PRelu": OpCase("PRelu", {}, {"slope": _f(3, 1, 1)}, same_index=True),
    "Elu": _elementwise("Elu"),
    "Selu": _elementwise("Selu"),
    "Celu": _elementwise("Celu", alpha=2.0),
    "Sigmoid": _elementwise("Sigmoid"),
    "HardSigmoid": _elementwise("HardSigmoid"),
    "HardSwish": _elementwise("HardSwish", opset=14),
    "Tanh": _elementwise("Tanh"),
    "Softplus": _elementwise("Softplus"),
    "Mish": _elementwise("Mish", opset=18),
    "Gelu": _elementwise("Gelu", opset=20),
    # Opset 15: onnx's reference BatchNormalization before 14 computes the training form.
    "BatchNormalization": OpCase("BatchNormalization", {"epsilon": 1e-3}, _BN, opset=15, same_index=True),
    "LRN": _elementwise("LRN", size=3),
    "Dropout": _elementwise("Dropout"),
    "Identity": _elementwise("Identity"),
    "Cast": _elementwise("Cast", to=TensorProto.FLOAT),
    "Add": OpCase("Add", {}, {"c": _f(3, 1, 1)}, same_index=True),
    "Sum": OpCase("Sum", {}, {"c": _f(5)}, same_index=True),
    "Sub": OpCase("Sub", {}, {"c": _f(3, 1, 1)}, same_index=True),
    "Mul": OpCase("Mul", {}, {"c": _f(3, 1, 1)}, same_index=True),
    "Div": OpCase("Div", {}, {"c": np.abs(_f(3, 1, 1)) + 1}, same_index=True),
    "Concat": _moving("Concat", {"axis": 1}, {"c": _f(2, 2, 4, 5)}),
    "Flatten": OpCase("Flatten", same_index=True),
    "Reshape": OpCase("Reshape", {}, {"s": np.array([2, 12, 5], np.int64)}, same_index=True),
    "Squeeze": OpCase("Squeeze", {}, {"a": np.array([2], np.int64)}, shape=(2, 3, 1, 5), same_index=True),
    "Unsqueeze": OpCase("Unsqueeze", {}, {"a": np.array([1], np.int64)}, same_index=True),
    "Transpose": _moving("Transpose", {"perm": [0, 2, 3, 1]}),
    "Pad": _moving("Pad", {"mode": "reflect"}, {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}),
    "Softmax": OpCase("Softmax", {"axis": 1}, flat=True),
    "LogSoftmax": OpCase("LogSoftmax", {"axis": 1}, flat=True),
}
FIXATION_OPS = ops.supported("fixation")
GRADIENT_OPS = ops.supported("gradient")


def test_every_op_with_a_rule_has_a_contract_case():
    assert set(FIXATION_OPS) | set(GRADIENT_OPS) <= set(CASES)


def test_every_op_with_a_fixation_rule_has_a_gradient_rule():
    assert set(FIXATION_OPS) <= set(GRADIENT_OPS)


@pytest.mark.parametrize("op", FIXATION_OPS)
def test_fixation_rule_sends_every_position_to_a_valid_input_position(op):
    spec = CASES[op]
    case = spec.case()
    index = every(case.values, "y")
    sent = case.backtrack("y", index, np.arange(1, index.size + 1))
    assert sent, "no fixation reached an input"
    for name, fixations in sent:
        assert not case.graph.is_constant(name)
        size = case.values[name].size
        assert fixations.index.size and np.all((fixations.index >= 0) & (fixations.index < size))
        assert np.all(fixations.count > 0)
    if spec.same_index:
        ((name, fixations),) = sent
        np.testing.assert_array_equal(np.sort(fixations.index), index)
    if spec.keeps_value or (spec.same_index and spec.op in ops.ops_with("reindex")):
        out = case.values["y"].ravel()
        for k, (name, i) in case.routed("y", index).items():
            assert case.values[name].ravel()[i] == out[index[k]], (k, name, i)


@pytest.mark.skipif(not cuda_status()["available"], reason=f"CUDA cannot run here: {cuda_status().get('reason')}")
@pytest.mark.parametrize("op", FIXATION_OPS)
def test_fixation_rule_is_identical_on_the_cuda_simulator(op):
    from test_cuda_backend import on_both

    on_both(CASES[op].case(), "y")


class LRN(OpRun):
    """onnx's reference LRN loops over the batch axis instead of the channels (onnx 1.23): ONNX's formula."""

    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        before, after = (size - 1) // 2, size // 2
        square = np.pad(x * x, [(0, 0), (before, after), (0, 0), (0, 0)])
        total = sum(square[:, k : k + x.shape[1]] for k in range(size))
        return ((x / (bias + alpha / size * total) ** beta).astype(x.dtype),)


def _directional(run: ReferenceEvaluator, x: np.ndarray, v: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """(f(x + eps v) - f(x - eps v)) / 2 eps, in float64."""
    x = x.astype(np.float64)
    hi, lo = (run.run(None, {"x": x + s * eps * v})[0] for s in (1, -1))
    return (hi - lo) / (2 * eps)


def assert_vjp_matches_finite_differences(spec: OpCase) -> None:
    """The gradient walk over ``spec``'s graph agrees with float64 central differences in 3 random directions."""
    case = spec.case()
    rng = np.random.default_rng(21)
    g = rng.standard_normal(case.values["y"].shape).astype(np.float32)
    grad = GradientPlan(case.graph, "y").run(g, case.tensors)["x"]
    assert grad.shape == case.x.shape and grad.dtype == np.float32
    run = ReferenceEvaluator(spec.double_model(), new_ops=[LRN])
    # The float64 oracle computes the same function as onnxruntime, or it proves nothing.
    np.testing.assert_allclose(run.run(None, {"x": case.x.astype(np.float64)})[0], case.values["y"], rtol=1e-4, atol=1e-5)
    for _ in range(3):
        v = rng.standard_normal(case.x.shape)
        jv = _directional(run, case.x, v)
        want, got = float((g * jv).sum()), float((grad * v).sum())
        assert abs(got - want) <= 1e-3 * np.linalg.norm(g) * np.linalg.norm(jv) + 1e-4, (got, want)


@pytest.mark.parametrize("op", GRADIENT_OPS)
def test_gradient_rule_agrees_with_finite_differences(op):
    assert_vjp_matches_finite_differences(CASES[op])


@pytest.mark.parametrize("opset", [18, 23])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceSum", "ReduceL2"])
def test_reductions_take_their_axes_as_an_input(op, opset):
    spec = OpCase(op, {"keepdims": 0}, {"a": np.array([-2, -1], np.int64)}, opset=opset)
    case = spec.case()
    ((name, fixations),) = case.backtrack("y", every(case.values, "y"))
    assert name == "x" and fixations.index.size == case.values["y"].size
    x = case.values["x"].reshape(-1)[fixations.index]
    if op == "ReduceMax":
        np.testing.assert_array_equal(x, case.values["y"].reshape(-1))
    if op == "ReduceL2":  # the largest magnitude of each channel
        np.testing.assert_array_equal(np.abs(x), np.abs(case.values["x"]).max(axis=(2, 3)).reshape(-1))
    assert_vjp_matches_finite_differences(spec)
