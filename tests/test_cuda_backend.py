"""The CUDA backend gives exactly the CPU backend's fixation sets.

Runs under numba's CUDA simulator (conftest sets NUMBA_ENABLE_CUDASIM=1; a GPU machine runs the
same file with NUMBA_ENABLE_CUDASIM=0). Shapes stay tiny (at most 6 channels, 11x9 maps, batch 2)
because every simulated thread is a Python thread. Each case sends every output position, with
a distinct count each, through one rule on both backends and compares the merged sets.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_rules_oracle import CONV_CASES, GLOBAL_CASES, POOL_CASES, SHAPE_CASES, Case, _w, build, conv_case, every

from fixtrace.backends import cuda_status
from fixtrace.backends.cpu import CpuBackend
from fixtrace.fixations import FixationSet
from fixtrace.runtime.tensors import Tensors

pytestmark = pytest.mark.skipif(not cuda_status()["available"], reason=f"CUDA cannot run here: {cuda_status().get('reason')}")


def _backends():
    from fixtrace.backends.cuda import CudaBackend

    return CpuBackend(), CudaBackend()


def on_both(
    case: Case, output: str, location: str = "argmax", index: np.ndarray | None = None, rule_name: str = "authors"
) -> dict[str, FixationSet]:
    """One rule on both backends; asserts the sets are identical and returns the CPU's."""
    index = every(case.values, output) if index is None else index
    counts = np.arange(1, index.size + 1, dtype=np.float64)
    rule = case.rule(output, location, rule_name)
    results = []
    for backend in _backends():
        tensors = Tensors(case.tensors.values, case.tensors.shapes, case.tensors.constants, backend=backend)
        start = FixationSet(backend.asarray(index), backend.asarray(counts), unique=True)
        results.append({name: sent.host() for name, sent in rule.backtrack(start, tensors)})
    cpu, gpu = results
    assert sorted(cpu) == sorted(gpu)
    for name in cpu:
        np.testing.assert_array_equal(gpu[name].index, cpu[name].index, err_msg=name)
        np.testing.assert_array_equal(gpu[name].count, cpu[name].count, err_msg=name)
    assert sum(len(s) for s in cpu.values()) > 0
    return cpu


def _tied(rng, shape) -> np.ndarray:
    """Small whole numbers with ReLU zeros: many exactly equal sums and products."""
    return np.maximum(rng.integers(-2, 3, size=shape), 0).astype(np.float32)


@pytest.mark.parametrize("location", ["argmax", "centre"])
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv(name, location):
    case, *_ = conv_case(name)
    on_both(case, "y", location)


@pytest.mark.parametrize("location", ["argmax", "centre"])
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_with_ties(name, location):
    c_in, c_out, kernel, hw, attrs = CONV_CASES[name]
    rng = np.random.default_rng(3)
    groups = attrs.get("group", 1)
    w = rng.integers(-1, 2, size=(c_out, c_in // groups, *kernel)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kernel), **attrs)
    x = _tied(rng, (2, c_in, *hw))
    on_both(Case(build([node], x.shape, ["y"], {"w": w}), x), "y", location)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pools(name, tied):
    op, hw, attrs = POOL_CASES[name]
    rng = np.random.default_rng(4)
    x = _tied(rng, (2, 3, *hw)) if tied else _w(rng, 2, 3, *hw)
    on_both(Case(build([helper.make_node(op, ["x"], ["y"], **attrs)], x.shape, ["y"]), x), "y")


@pytest.mark.parametrize("rule", ["authors", "spread"])
@pytest.mark.parametrize("name", list(GLOBAL_CASES))
def test_global_reductions(name, rule):
    opset, _, nodes, inits = GLOBAL_CASES[name]
    x = _tied(np.random.default_rng(5), (2, 5, 4, 6))
    if rule == "spread":  # shares of uneven values, and a channel without a positive cell
        x = x + np.random.default_rng(8).random(x.shape).astype(np.float32)
        x[0, 1] = -1.0
    on_both(Case(build(nodes(), x.shape, ["y"], inits, opset), x), "y", rule_name=rule)


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_index_maps(name):
    opset, nodes, inits = SHAPE_CASES[name]
    x = _w(np.random.default_rng(6), 2, 3, 4, 5)
    relu = helper.make_node("Relu", ["x"], ["r"])
    on_both(Case(build([relu, *nodes()], x.shape, ["y"], inits, opset), x), "y")


@pytest.mark.parametrize(("form", "rule"), [("positive", "authors"), ("positive", "weighted"), ("argmax", "authors")])
def test_dense(form, rule):
    rng = np.random.default_rng(7)
    x = _w(rng, 2, 4, 3, 3)
    if form == "positive":  # pooled vector: every positive contribution
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"])]
        n_in = 4
    else:  # flattened map: one argmax per output
        nodes = [helper.make_node("Flatten", ["x"], ["f"])]
        n_in = 36
    nodes.append(helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1))
    inits = {"w": _w(rng, 5, n_in), "b": _w(rng, 5)}
    on_both(Case(build(nodes, x.shape, ["y"], inits), x), "y", rule_name=rule)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concat(axis):
    rng = np.random.default_rng(8)
    x = _w(rng, 2, 3, 4, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Neg", ["x"], ["n"]),
        helper.make_node("Relu", ["n"], ["b"]),
        helper.make_node("Concat", ["a", "k", "b"], ["y"], axis=axis),
    ]
    shape = [2, 3, 4, 5]
    shape[axis] = 2
    on_both(Case(build(nodes, x.shape, ["y"], {"k": _w(rng, *shape)}), x), "y")


@pytest.mark.parametrize("operands", [("a", "b"), ("a", "b", "c")])
def test_add_and_sum_with_ties(operands):
    x = _tied(np.random.default_rng(9), (2, 3, 4, 5))
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Abs", ["x"], ["b"]),
        helper.make_node("Relu", ["b"], ["c"]),
    ]
    nodes.append(helper.make_node("Add" if len(operands) == 2 else "Sum", list(operands), ["y"]))
    sent = on_both(Case(build(nodes, x.shape, ["y"]), x), "y")
    assert len(sent) >= 1


def test_add_with_broadcast_operands():
    rng = np.random.default_rng(10)
    x = _w(rng, 2, 3, 4, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("ReduceMax", ["x"], ["m"], axes=[2]),
        helper.make_node("Add", ["a", "m"], ["y"]),
    ]
    on_both(Case(build(nodes, x.shape, ["y"]), x), "y")


def test_empty_fixation_sets_stay_empty():
    case, *_ = conv_case("3x3-pad1")
    for backend in _backends():
        tensors = Tensors(case.tensors.values, case.tensors.shapes, case.tensors.constants, backend=backend)
        ((_, sent),) = case.rule("y").backtrack(backend.start([]), tensors)
        assert len(sent.host()) == 0


def test_device_choice():
    from fixtrace import FixtraceError
    from fixtrace.backends import get_backend

    status = cuda_status()
    assert status["gpu"] != status["simulator"]  # the simulator is never taken for a GPU
    assert get_backend("auto").name == ("cuda" if status["gpu"] else "cpu")
    assert get_backend("cpu").name == "cpu"
    assert get_backend("cuda").name == "cuda"  # asked for explicitly, the simulator runs the kernels too
    with pytest.raises(FixtraceError, match="device must be one of auto, cpu, cuda"):
        get_backend("gpu")


@pytest.mark.slow
def test_mobilenet_walk_is_identical_on_the_cuda_code_path():
    """The real model through every CUDA kernel (simulated: about a minute per photo)."""
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "check_cuda_identity.py"),
            "--images",
            "1",
            "--batch",
            "1",
            "--models",
            "mobilenet",
            "--rules",
            "authors",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "mobilenet, rule authors: 1 photos, 101 tensor sets compared on the numba CUDA simulator against the CPU backend; 0 different"
        in proc.stdout
    )
