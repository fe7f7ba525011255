"""Every fixation rule against an independent oracle.

Each test builds a small ONNX graph with ``onnx.helper``, runs it with onnxruntime exposing
every intermediate tensor, calls fixtrace's rule for one node and compares its answer with a
plain-numpy reimplementation of the rule written from docs/design ``fixations.md`` (never
with fixtrace's own kernels). Where a rule is one-to-one, every fixation gets a distinct count
so that the count identifies which output fixation an input fixation came from.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_exposing
from fixtrace import Explainer, UnsupportedOpError
from fixtrace.fixations import FixationOptions, FixationSet, supported_ops
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops import FIXATIONS
from fixtrace.runtime.tensors import Tensors

# --------------------------------------------------------------------------------------------
# Harness: build, run with every intermediate exposed, call one rule.
# --------------------------------------------------------------------------------------------


def build(nodes, x_shape, outputs, inits=None, opset=13) -> onnx.ModelProto:
    """A model with one float input ``x``; output shapes filled by onnx shape inference."""
    initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(
        nodes,
        "oracle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_all(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every node output of one onnxruntime run (no graph optimisations), plus the input."""
    return run_exposing(model, "x", x)


class Case:
    """One model and one run: the layer graph, every activation, fixtrace's Tensors."""

    def __init__(self, model: onnx.ModelProto, x: np.ndarray) -> None:
        self.model = model
        self.x = x
        self.graph = LayerGraph.from_model(model)
        self.values = run_all(model, x)
        kept = {k: v for k, v in self.values.items() if not self.graph.is_constant(k)}
        self.tensors = Tensors(kept, self.graph.shapes(x.shape), self.graph.constants)

    def rule(self, output: str, location: str = "argmax", rule: str = "authors"):
        supported_ops()  # registers the rules
        node = self.graph.producer[output]
        return FIXATIONS.rule_for(node)(node, self.graph, FixationOptions(conv_location=location, rule=rule))

    def backtrack(
        self, output: str, index, count=None, location: str = "argmax", rule: str = "authors"
    ) -> list[tuple[str, FixationSet]]:
        index = np.asarray(index, dtype=np.int64)
        count = np.ones(index.size) if count is None else np.asarray(count, dtype=np.float64)
        return list(self.rule(output, location, rule).backtrack(FixationSet(index, count), self.tensors))

    def routed(self, output: str, index) -> dict[int, tuple[str, int]]:
        """One-to-one rules: output fixation k (of ``index``) -> (input tensor, input flat index)."""
        index = np.asarray(index, dtype=np.int64)
        ids = np.arange(1, index.size + 1, dtype=np.float64)  # distinct counts name the origin
        routes: dict[int, tuple[str, int]] = {}
        for name, sent in self.backtrack(output, index, ids):
            assert sent.index.size == sent.count.size
            for i, c in zip(sent.index.tolist(), sent.count.tolist()):
                k = int(c) - 1
                assert k not in routes, f"output fixation {k} was sent twice"
                routes[k] = (name, i)
        return routes


def every(values: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.arange(values[name].size, dtype=np.int64)


def _w(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Conv
# --------------------------------------------------------------------------------------------


def resolve_pads(attrs: dict, kernel, in_hw) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from the ONNX spec, auto_pad included."""
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for k, s, d, n in zip(kernel, strides, dilations, in_hw):
            out = -(-n // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return begin[0], begin[1], end[0], end[1]
    if auto_pad == "VALID":
        return 0, 0, 0, 0
    p = attrs.get("pads", [0, 0, 0, 0])
    return p[0], p[1], p[2], p[3]


def centre_key(i: int, j: int, kh: int, kw: int) -> int:
    return (2 * i - (kh - 1)) ** 2 + (2 * j - (kw - 1)) ** 2


def best_cell(scores: np.ndarray, valid: np.ndarray) -> tuple[int, int]:
    """Largest score among valid cells; ties: nearest the centre, then first in raster order."""
    kh, kw = scores.shape
    cells = [(i, j) for i in range(kh) for j in range(kw) if valid[i, j]]
    return min(cells, key=lambda ij: (-scores[ij], centre_key(ij[0], ij[1], kh, kw), ij[0], ij[1]))


def conv_oracle(x, w, bias, attrs, out_shape, out_index, location, tie_tol=0.0):
    """Expected input fixation and forward value (window x weights + bias) per output fixation.

    ``tie_tol`` (relative to the largest channel |x*w| sum) treats channel sums that differ
    only by summation order as tied, which then go to the first channel.
    """
    n_batch, n_in, height, width = x.shape
    n_out, c_group, kh, kw = w.shape
    groups = attrs.get("group", 1)
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    top, left, bottom, right = resolve_pads(attrs, (kh, kw), (height, width))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    inside = np.pad(np.ones((height, width), bool), ((top, bottom), (left, right)))
    expected, forward = [], []
    for flat in out_index:
        b, m, r, q = np.unravel_index(flat, out_shape)
        g = m // (n_out // groups)
        rows = r * sh + np.arange(kh) * dh  # padded coordinates
        cols = q * sw + np.arange(kw) * dw
        win = xp[b, g * c_group : (g + 1) * c_group][:, rows][:, :, cols]
        h = win * w[m].astype(np.float64)
        forward.append(h.sum() + (bias[m] if bias is not None else 0.0))
        scores = h.sum(axis=(1, 2))
        tol = tie_tol * np.abs(h).sum(axis=(1, 2)).max()
        k = int(np.flatnonzero(scores >= scores.max() - tol)[0])  # first maximum
        if location == "centre":
            y = min(max(r * sh - top + (kh - 1) // 2 * dh, 0), height - 1)
            xx = min(max(q * sw - left + (kw - 1) // 2 * dw, 0), width - 1)
        else:
            i, j = best_cell(h[k], inside[rows][:, cols])
            y, xx = rows[i] - top, cols[j] - left
        expected.append(np.ravel_multi_index((b, g * c_group + k, y, xx), x.shape))
    return np.array(expected, dtype=np.int64), np.array(forward)


CONV_CASES = {
    # name: (in channels, out channels, kernel, input hw, attributes)
    "3x3-pad1": (3, 4, (3, 3), (6, 7), dict(pads=[1, 1, 1, 1])),
    "3x3-stride2-asym-grouped": (4, 6, (3, 3), (7, 8), dict(strides=[2, 2], pads=[0, 1, 2, 1], group=2)),
    "5x3-dilation2": (3, 4, (5, 3), (11, 9), dict(dilations=[2, 2], pads=[2, 1, 3, 2])),
    "1x1-stride2": (5, 3, (1, 1), (7, 6), dict(strides=[2, 2])),
    "1x1": (5, 4, (1, 1), (4, 5), {}),
    "depthwise-3x3-same-upper-stride2": (4, 4, (3, 3), (8, 7), dict(strides=[2, 2], auto_pad="SAME_UPPER", group=4)),
    "depthwise-3x3-dilation2": (3, 3, (3, 3), (8, 8), dict(dilations=[2, 2], pads=[2, 2, 2, 2], group=3)),
    "5x3-same-upper": (2, 3, (5, 3), (6, 7), dict(auto_pad="SAME_UPPER")),
    "3x3-same-lower-stride2": (3, 2, (3, 3), (8, 8), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    "grouped-depth-multiplier": (2, 6, (3, 3), (5, 5), dict(group=2, pads=[1, 0, 0, 1])),
    # even kernels: the "centre" is the cell just before the middle, (k - 1) // 2
    "2x4-stride2-pad": (3, 2, (2, 4), (7, 9), dict(strides=[2, 2], pads=[1, 2, 0, 1])),
}


def conv_case(name: str, seed: int = 0, x: np.ndarray | None = None, with_bias: bool = True):
    c_in, c_out, kernel, hw, attrs = CONV_CASES[name]
    rng = np.random.default_rng(seed)
    groups = attrs.get("group", 1)
    w = _w(rng, c_out, c_in // groups, *kernel)
    bias = _w(rng, c_out) if with_bias else None
    x = _w(rng, 2, c_in, *hw) if x is None else x
    inits = {"w": w} | ({"bias": bias} if with_bias else {})
    node = helper.make_node("Conv", ["x", "w"] + (["bias"] if with_bias else []), ["y"], kernel_shape=list(kernel), **attrs)
    return Case(build([node], x.shape, ["y"], inits), x), w, bias, attrs


@pytest.mark.parametrize("location", ["argmax", "centre"])
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_rule_matches_numpy_oracle(name, location):
    case, w, bias, attrs = conv_case(name, with_bias=name != "1x1")
    y = case.values["y"]
    index = every(case.values, "y")
    expected, forward = conv_oracle(case.x, w, bias, attrs, y.shape, index, location)
    # The window geometry of the oracle is the one onnxruntime computed with.
    np.testing.assert_allclose(forward, y.ravel()[index], rtol=1e-4, atol=1e-4)
    ((name_in, got),) = case.backtrack("y", index, location=location)
    assert name_in == "x"
    np.testing.assert_array_equal(got.index, expected)
    np.testing.assert_array_equal(got.count, np.ones(index.size))


def test_conv_argmax_location_ignores_padding():
    """All valid x*w are negative, so a padded cell (0) would beat them if it were considered."""
    rng = np.random.default_rng(1)
    x = -np.abs(_w(rng, 2, 3, 6, 7)) - 0.1
    w = np.abs(_w(rng, 4, 3, 3, 3)) + 0.1
    attrs = dict(pads=[0, 1, 2, 1])
    model = build([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], **attrs)], x.shape, ["y"], {"w": w})
    case = Case(model, x)
    index = every(case.values, "y")
    expected, _ = conv_oracle(x, w, None, attrs, case.values["y"].shape, index, "argmax")
    ((_, got),) = case.backtrack("y", index)
    np.testing.assert_array_equal(got.index, expected)


@pytest.mark.parametrize("location", ["argmax", "centre"])
@pytest.mark.parametrize("kernel,pads", [((3, 3), [1, 1, 1, 1]), ((5, 3), [0, 0, 0, 0]), ((3, 5), [1, 2, 1, 2])])
def test_conv_all_scores_equal_picks_the_window_centre(kernel, pads, location):
    """An all-zero input makes every channel and every cell tie: first channel, centre cell."""
    rng = np.random.default_rng(2)
    x = np.zeros((2, 3, 7, 7), np.float32)
    w = _w(rng, 4, 3, *kernel)  # mixed signs: 0 * negative is -0.0, still a tie
    model = build([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kernel), pads=pads)], x.shape, ["y"], {"w": w})
    case = Case(model, x)
    index = every(case.values, "y")
    ((_, got),) = case.backtrack("y", index, location=location)
    b, m, r, q = np.unravel_index(index, case.values["y"].shape)
    centre_r = r - pads[0] + (kernel[0] - 1) // 2
    centre_q = q - pads[1] + (kernel[1] - 1) // 2
    expected = np.ravel_multi_index((b, np.zeros_like(m), centre_r, centre_q), x.shape)
    np.testing.assert_array_equal(got.index, expected)


def test_conv_window_entirely_in_padding_stays_inside_the_input():
    """pads wider than the kernel: the corner outputs see only padding (their value is the bias).

    The argmax location never finds a valid cell, keeps y = x = -1, and the flat index it
    returns points outside the input (negative here) or into the wrong row/channel.
    """
    rng = np.random.default_rng(3)
    x = _w(rng, 1, 2, 3, 3)
    w = _w(rng, 2, 2, 1, 1)
    model = build([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], pads=[2, 2, 2, 2])], x.shape, ["y"], {"w": w})
    case = Case(model, x)
    index = every(case.values, "y")
    ((_, got),) = case.backtrack("y", index)
    assert ((got.index >= 0) & (got.index < x.size)).all()


# --------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------

POOL_CASES = {
    "max-3x3-s2-pad1": ("MaxPool", (9, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "max-3x3-s2-ceil": ("MaxPool", (8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    "max-2x2-s2": ("MaxPool", (6, 8), dict(kernel_shape=[2, 2], strides=[2, 2])),
    "max-3x3-s1-asym": ("MaxPool", (6, 7), dict(kernel_shape=[3, 3], pads=[0, 1, 2, 1])),
    "max-2x2-dilation2": ("MaxPool", (7, 7), dict(kernel_shape=[2, 2], dilations=[2, 2])),
    "max-3x2-same-upper": ("MaxPool", (7, 6), dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER")),
    "avg-3x3-s2-pad1": ("AveragePool", (9, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "avg-3x3-s2-pad1-include": (
        "AveragePool",
        (7, 9),
        dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    ),
    "avg-2x2-s2-ceil": ("AveragePool", (7, 7), dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
}


def pool_oracle(x, attrs, out_shape, out_index):
    """Expected input fixation (window argmax, ties to the centre) and the window max."""
    height, width = x.shape[2:]
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    top, left, _, _ = resolve_pads(attrs, (kh, kw), (height, width))
    expected, maxima = [], []
    for flat in out_index:
        b, c, r, q = np.unravel_index(flat, out_shape)
        rows = r * sh - top + np.arange(kh) * dh
        cols = q * sw - left + np.arange(kw) * dw
        valid = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
        scores = x[b, c][np.clip(rows, 0, height - 1)][:, np.clip(cols, 0, width - 1)].astype(np.float64)
        i, j = best_cell(scores, valid)
        expected.append(np.ravel_multi_index((b, c, rows[i], cols[j]), x.shape))
        maxima.append(scores[valid].max())
    return np.array(expected, dtype=np.int64), np.array(maxima)


@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool_fixation_holds_the_window_max(name):
    op, hw, attrs = POOL_CASES[name]
    rng = np.random.default_rng(4)
    # ReLU-like input: many exact zeros, so whole windows tie and the tie rule is exercised.
    x = np.maximum(_w(rng, 2, 3, *hw) - 0.8, 0).astype(np.float32)
    case = Case(build([helper.make_node(op, ["x"], ["y"], **attrs)], x.shape, ["y"], opset=17), x)
    y = case.values["y"]
    index = every(case.values, "y")
    expected, maxima = pool_oracle(x, attrs, y.shape, index)
    if op == "MaxPool":
        np.testing.assert_array_equal(maxima, y.ravel()[index])
    ((name_in, got),) = case.backtrack("y", index)
    assert name_in == "x"
    np.testing.assert_array_equal(x.ravel()[got.index], maxima)
    np.testing.assert_array_equal(got.index, expected)


# --------------------------------------------------------------------------------------------
# Global pooling / spatial reductions: channel k -> spatial argmax of channel k
# --------------------------------------------------------------------------------------------


def _spatial_input(seed=5) -> np.ndarray:
    x = _w(np.random.default_rng(seed), 2, 5, 4, 6)
    x[1, 2] = 0.0  # a flat channel: ties go to the map centre
    return x


def _argmax_centre(plane: np.ndarray) -> tuple[int, int]:
    return best_cell(plane.astype(np.float64), np.ones(plane.shape, bool))


GLOBAL_CASES = {
    "GlobalAveragePool": (13, False, lambda: [helper.make_node("GlobalAveragePool", ["x"], ["y"])], {}),
    "GlobalMaxPool": (13, False, lambda: [helper.make_node("GlobalMaxPool", ["x"], ["y"])], {}),
    "ReduceMean-23-keepdims": (13, False, lambda: [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3])], {}),
    "ReduceMean-23": (13, False, lambda: [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], {}),
    "ReduceMax-neg-axes": (13, False, lambda: [helper.make_node("ReduceMax", ["x"], ["y"], axes=[-1, -2], keepdims=0)], {}),
    "ReduceMean-18-axes-input": (
        18,
        False,
        lambda: [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
        {"axes": np.array([2, 3], np.int64)},
    ),
    "NHWC-ReduceMean-12": (
        13,
        True,
        lambda: [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("ReduceMean", ["t"], ["y"], axes=[1, 2], keepdims=0),
        ],
        {},
    ),
    "NHWC-ReduceMean-12-keepdims": (
        13,
        True,
        lambda: [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("ReduceMean", ["t"], ["y"], axes=[1, 2]),
        ],
        {},
    ),
}


@pytest.mark.parametrize("name", list(GLOBAL_CASES))
def test_global_reduction_sends_each_channel_to_its_spatial_argmax(name):
    opset, nhwc, nodes, inits = GLOBAL_CASES[name]
    x = _spatial_input()
    case = Case(build(nodes(), x.shape, ["y"], inits, opset=opset), x)
    n_batch, n_chan = x.shape[:2]
    assert case.values["y"].size == n_batch * n_chan
    index = np.array([0, 3, 4, 5 + 2, 5 + 4], dtype=np.int64)  # (b, c) flat; (1, 2) is the flat channel
    routes = case.routed("y", index)
    source = "t" if nhwc else "x"
    for k, flat in enumerate(index):
        b, c = divmod(int(flat), n_chan)
        i, j = _argmax_centre(x[b, c])
        target = (b, i, j, c) if nhwc else (b, c, i, j)
        assert routes[k] == (source, np.ravel_multi_index(target, case.values[source].shape)), (b, c)


# --------------------------------------------------------------------------------------------
# Fully connected
# --------------------------------------------------------------------------------------------


def _selected_outputs(n_batch, n_out):
    index = np.array([1, 3, n_out + 2, n_out + 3], dtype=np.int64)
    count = np.array([1.0, 2.0, 3.0, 5.0])
    return index, count


def fc_positive_oracle(a, w_km, bias, logits, index, count):
    """Inputs with a * w > 0 for each selected output, counts summed; and the forward check."""
    n_batch, n_in = a.shape
    n_out = w_km.shape[1]
    acc = np.zeros(n_batch * n_in)
    for flat, c in zip(index, count):
        b, i = divmod(int(flat), n_out)
        contributions = a[b].astype(np.float64) * w_km[:, i]
        np.testing.assert_allclose(
            contributions.sum() + (bias[i] if bias is not None else 0.0), logits[b, i], rtol=1e-4, atol=1e-5
        )
        acc[b * n_in + np.flatnonzero(contributions > 0)] += c
    chosen = np.flatnonzero(acc)
    return chosen, acc[chosen]


def _pooled_fc_model(head_nodes, inits, x_shape=(2, 5, 3, 4)):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["a"]),
    ] + head_nodes
    return build(nodes, x_shape, ["y"], inits)


def _fc_input(rng, n_in):
    """Pooled activations with exact zeros (a channel that ReLU zeroes): zero contributions are not positive."""
    x = np.abs(_w(rng, 2, n_in, 3, 4))
    x[:, 1] = -x[:, 1]
    return x


@pytest.mark.parametrize("form", ["gemm-transB1", "gemm-transB0", "gemm-alpha2", "matmul"])
def test_fc_selects_every_positive_contribution(form):
    rng = np.random.default_rng(6)
    n_in, n_out = 5, 7
    x = _fc_input(rng, n_in)
    bias = _w(rng, n_out)
    alpha = 1.0
    if form == "gemm-transB1":
        w = _w(rng, n_out, n_in)
        w_km = w.T
        head = [helper.make_node("Gemm", ["a", "w", "bias"], ["y"], transB=1)]
    elif form == "gemm-alpha2":
        w = _w(rng, n_in, n_out)
        w_km = w
        alpha = 2.0
        head = [helper.make_node("Gemm", ["a", "w", "bias"], ["y"], alpha=alpha)]
    elif form == "gemm-transB0":
        w = _w(rng, n_in, n_out)
        w_km = w
        head = [helper.make_node("Gemm", ["a", "w", "bias"], ["y"])]
    else:
        w = _w(rng, n_in, n_out)
        w_km = w
        head = [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["y"])]
    case = Case(_pooled_fc_model(head, {"w": w, "bias": bias}), x)
    index, count = _selected_outputs(2, n_out)
    fc_output = "mm" if form == "matmul" else "y"
    a = case.values["a"]
    assert (a == 0).any()
    expected_index, expected_count = fc_positive_oracle(a, alpha * w_km.astype(np.float64), bias, case.values["y"], index, count)
    if form == "matmul":  # the bias Add passes fixations through unchanged
        ((name, through),) = case.backtrack("y", index, count)
        assert name == "mm"
        np.testing.assert_array_equal(through.index, index)
    ((name, got),) = case.backtrack(fc_output, index, count)
    assert name == "a"
    np.testing.assert_array_equal(got.index, expected_index)
    np.testing.assert_array_equal(got.count, expected_count)


@pytest.mark.parametrize("rule", ["weighted", "spread"])
def test_fc_weighted_shares_each_count_by_contribution(rule):
    """The weighted rules: input j of selected output i gets count * (a_j w_ji) / sum of the
    positive a_k w_ki, rounded to 2**-20; the same inputs as the authors' rule."""
    rng = np.random.default_rng(6)
    n_in, n_out = 5, 7
    x = _fc_input(rng, n_in)
    w = _w(rng, n_out, n_in)
    case = Case(_pooled_fc_model([helper.make_node("Gemm", ["a", "w"], ["y"], transB=1)], {"w": w}), x)
    index, count = _selected_outputs(2, n_out)
    a = case.values["a"].astype(np.float64)
    acc = np.zeros(a.size)
    for flat, c in zip(index, count):
        b, i = divmod(int(flat), n_out)
        contributions = a[b] * w[i].astype(np.float64)
        positive = contributions > 0
        acc[b * n_in + np.flatnonzero(positive)] += c * contributions[positive] / contributions[positive].sum()
    ((name, got),) = case.backtrack("y", index, count, rule=rule)
    ((_, authors),) = case.backtrack("y", index, count)
    assert name == "a"
    np.testing.assert_array_equal(got.index, authors.index)
    np.testing.assert_array_equal(got.index, np.flatnonzero(acc))
    np.testing.assert_allclose(got.count, acc[got.index], rtol=0, atol=len(index) * 2.0**-20)
    assert np.all(got.count * 2**20 == np.floor(got.count * 2**20))  # multiples of 2**-20: sums exact in any order


@pytest.mark.parametrize("name", ["GlobalAveragePool", "ReduceMean-23", "NHWC-ReduceMean-12", "GlobalMaxPool"])
def test_global_spread_shares_each_channel_by_positive_activation(name):
    """The spread rule: a mean's channel fixation is shared among the channel's cells by their
    positive values (a channel with none: all to its argmax); a max pool keeps its argmax."""
    opset, nhwc, nodes, inits = GLOBAL_CASES[name]
    x = _spatial_input()
    x[0, 4] = -np.abs(x[0, 4])  # no positive cell
    case = Case(build(nodes(), x.shape, ["y"], inits, opset=opset), x)
    n_chan = x.shape[1]
    index = np.array([0, 3, 4, 5 + 2, 5 + 4], dtype=np.int64)
    count = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    ((source, got),) = case.backtrack("y", index, count, rule="spread")
    assert source == ("t" if nhwc else "x")
    expected = np.zeros(case.values[source].shape)
    for flat, c in zip(index, count):
        b, k = divmod(int(flat), n_chan)
        plane = x[b, k].astype(np.float64)
        cells = np.zeros(plane.shape)
        if name == "GlobalMaxPool" or not (plane > 0).any():
            cells[_argmax_centre(plane)] = c
        else:
            cells = c * np.maximum(plane, 0) / np.maximum(plane, 0).sum()
        if nhwc:
            expected[b, :, :, k] += cells
        else:
            expected[b, k] += cells
    flat_expected = expected.ravel()
    np.testing.assert_array_equal(got.index, np.flatnonzero(flat_expected))
    np.testing.assert_allclose(got.count, flat_expected[got.index], rtol=0, atol=2.0**-20)


def test_fc_gemm_negative_alpha_flips_the_selection():
    rng = np.random.default_rng(7)
    n_in, n_out = 5, 7
    x = _w(rng, 2, n_in, 3, 4)
    w = _w(rng, n_out, n_in)
    case = Case(_pooled_fc_model([helper.make_node("Gemm", ["a", "w"], ["y"], transB=1, alpha=-1.0)], {"w": w}), x)
    assert (case.values["a"] > 0).all()
    index, count = _selected_outputs(2, n_out)
    expected_index, expected_count = fc_positive_oracle(
        case.values["a"], -w.T.astype(np.float64), None, case.values["y"], index, count
    )
    ((_, got),) = case.backtrack("y", index, count)
    np.testing.assert_array_equal(got.index, expected_index)
    np.testing.assert_array_equal(got.count, expected_count)


def test_fc_on_flattened_feature_map_takes_one_argmax_per_output():
    rng = np.random.default_rng(8)
    x = _w(rng, 2, 3, 5, 5)
    conv_w = _w(rng, 4, 3, 3, 3)
    n_in, n_out = 4 * 5 * 5, 6
    w = _w(rng, n_out, n_in)
    bias = _w(rng, n_out)
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["a"]),
        helper.make_node("Gemm", ["a", "w", "bias"], ["y"], transB=1),
    ]
    case = Case(build(nodes, x.shape, ["y"], {"cw": conv_w, "w": w, "bias": bias}), x)
    index, count = _selected_outputs(2, n_out)
    a, logits = case.values["a"], case.values["y"]
    routes = case.routed("y", index)
    assert len(routes) == index.size  # exactly one input per selected output
    for k, flat in enumerate(index):
        b, i = divmod(int(flat), n_out)
        contributions = a[b].astype(np.float64) * w[i]
        np.testing.assert_allclose(contributions.sum() + bias[i], logits[b, i], rtol=1e-4, atol=1e-4)
        assert routes[k] == ("a", b * n_in + int(np.argmax(contributions)))
    # Flatten keeps the flat index, which unravels to (b, c, r, q) on the map.
    ((name, through),) = case.backtrack("a", [routes[0][1]])
    assert name == "r" and through.index.tolist() == [routes[0][1]]


def test_fc_after_nhwc_keepdims_reduce_is_a_pooled_vector():
    rng = np.random.default_rng(9)
    x = _w(rng, 2, 5, 4, 6)
    n_out = 7
    w = _w(rng, n_out, 5)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["t"], ["p"], axes=[1, 2], keepdims=1),
        helper.make_node("Reshape", ["p", "shape"], ["a"]),
        helper.make_node("Gemm", ["a", "w"], ["y"], transB=1),
    ]
    case = Case(build(nodes, x.shape, ["y"], {"w": w, "shape": np.array([0, -1], np.int64)}), x)
    index, count = _selected_outputs(2, n_out)
    expected_index, expected_count = fc_positive_oracle(
        case.values["a"], w.T.astype(np.float64), None, case.values["y"], index, count
    )
    ((_, got),) = case.backtrack("y", index, count)
    np.testing.assert_array_equal(got.index, expected_index)
    np.testing.assert_array_equal(got.count, expected_count)


# --------------------------------------------------------------------------------------------
# Concat: route by slice, index re-based
# --------------------------------------------------------------------------------------------


def _concat_oracle(shapes, axis, out_shape, flat):
    coords = list(np.unravel_index(flat, out_shape))
    offset = 0
    for k, shape in enumerate(shapes):
        if coords[axis] < offset + shape[axis]:
            coords[axis] -= offset
            return k, int(np.ravel_multi_index(coords, shape))
        offset += shape[axis]
    raise AssertionError("index outside the concat output")


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concat_routes_to_the_slice_with_rebased_index(axis):
    rng = np.random.default_rng(10)
    x = _w(rng, 2, 3, 6, 7)
    nodes, inits = [], {}
    for k, size in enumerate([2, 3, 4]):
        # axis 1: channel counts 2, 3, 4; other axes: kernel extents that shrink that axis differently.
        kernel = [1, 1]
        channels = size if axis == 1 else 2
        if axis != 1:
            kernel[(axis % 4) - 2] = size
        inits[f"w{k}"] = _w(rng, channels, 3, *kernel)
        nodes.append(helper.make_node("Conv", ["x", f"w{k}"], [f"c{k}"], kernel_shape=kernel))
    nodes.append(helper.make_node("Concat", ["c0", "c1", "c2"], ["y"], axis=axis))
    case = Case(build(nodes, x.shape, ["y"], inits), x)
    y = case.values["y"]
    shapes = [case.values[f"c{k}"].shape for k in range(3)]
    index = every(case.values, "y")
    routes = case.routed("y", index)
    assert len(routes) == index.size
    for k, flat in enumerate(index.tolist()):
        source, at = _concat_oracle(shapes, axis % 4, y.shape, flat)
        assert routes[k] == (f"c{source}", at)
        assert case.values[f"c{source}"].ravel()[at] == y.ravel()[flat]


def test_concat_with_a_constant_input_routes_only_computed_slices():
    rng = np.random.default_rng(11)
    x = _w(rng, 1, 2, 3, 3)
    const = _w(rng, 1, 3, 3, 3)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Concat", ["const", "r"], ["y"], axis=1)]
    case = Case(build(nodes, x.shape, ["y"], {"const": const}), x)
    index = every(case.values, "y")
    routes = case.routed("y", index)
    assert sorted(routes) == list(range(const.size, index.size))
    for k, (name, at) in routes.items():
        assert name == "r" and at == index[k] - const.size


# --------------------------------------------------------------------------------------------
# Add / Sum: winner takes all; ties to the operand computed earliest; constants broadcast through
# --------------------------------------------------------------------------------------------


def _broadcast_source(out_shape, in_shape, flat):
    """Flat index of the operand element that feeds output element ``flat`` (numpy broadcasting)."""
    ids = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    return np.broadcast_to(ids, out_shape).ravel()[flat]


def test_add_follows_the_larger_summand_and_ties_go_to_the_shortcut():
    rng = np.random.default_rng(12)
    x = _w(rng, 2, 3, 5, 5)
    w = _w(rng, 3, 3, 3, 3)
    nodes = [
        helper.make_node("Relu", ["x"], ["shortcut"]),  # produced first
        helper.make_node("Conv", ["shortcut", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["branch"]),
        helper.make_node("Add", ["branch", "shortcut"], ["y"]),  # the shortcut is the second operand
    ]
    case = Case(build(nodes, x.shape, ["y"], {"w": w}), x)
    branch, shortcut = case.values["branch"].ravel(), case.values["shortcut"].ravel()
    ties = np.flatnonzero(branch == shortcut)
    assert ties.size > 10  # both ReLU outputs are zero there
    index = every(case.values, "y")
    routes = case.routed("y", index)
    for k, flat in enumerate(index):
        winner = "branch" if branch[flat] > shortcut[flat] else "shortcut"
        assert routes[k] == (winner, flat)
        assert case.values[winner].ravel()[flat] == max(branch[flat], shortcut[flat])


def test_add_with_broadcast_operands_compares_the_broadcast_values():
    rng = np.random.default_rng(13)
    x = _w(rng, 2, 3, 4, 5)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),  # (2, 3, 1, 1), produced before r
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Add", ["r", "g"], ["y"]),
    ]
    case = Case(build(nodes, x.shape, ["y"]), x)
    y_shape, g_shape = case.values["y"].shape, case.values["g"].shape
    index = every(case.values, "y")
    routes = case.routed("y", index)
    for k, flat in enumerate(index):
        at = int(_broadcast_source(y_shape, g_shape, flat))
        r_value, g_value = case.values["r"].ravel()[flat], case.values["g"].ravel()[at]
        assert routes[k] == (("r", flat) if r_value > g_value else ("g", at))


@pytest.mark.parametrize("bias_shape", [(3, 1, 1), (1, 3, 4, 5), (5,), ()])
def test_add_with_a_constant_passes_through_with_broadcasting(bias_shape):
    rng = np.random.default_rng(14)
    x = _w(rng, 2, 3, 4, 5)
    bias = _w(rng, *bias_shape)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["bias", "r"], ["y"])]
    case = Case(build(nodes, x.shape, ["y"], {"bias": bias}), x)
    index = every(case.values, "y")
    routes = case.routed("y", index)
    assert routes == {k: ("r", int(flat)) for k, flat in enumerate(index)}


def test_add_with_a_constant_broadcasts_down_to_a_smaller_computed_operand():
    rng = np.random.default_rng(15)
    x = _w(rng, 2, 3, 4, 5)
    const = _w(rng, 1, 3, 4, 5)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Add", ["g", "const"], ["y"])]
    case = Case(build(nodes, x.shape, ["y"], {"const": const}), x)
    index = every(case.values, "y")
    routes = case.routed("y", index)
    for k, flat in enumerate(index):
        assert routes[k] == ("g", int(_broadcast_source(case.values["y"].shape, case.values["g"].shape, flat)))


def test_sum_of_three_follows_the_largest_with_ties_to_the_earliest():
    rng = np.random.default_rng(16)
    x = _w(rng, 2, 3, 5, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Conv", ["a", "w1"], ["c1"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c1"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["c"]),
        helper.make_node("Sum", ["c", "b", "a"], ["y"]),
    ]
    case = Case(build(nodes, x.shape, ["y"], {"w1": _w(rng, 3, 3, 1, 1), "w2": _w(rng, 3, 3, 3, 3)}), x)
    stack = np.stack([case.values[n].ravel() for n in ("a", "b", "c")])  # in production order
    assert (stack.max(axis=0) == 0).sum() > 5  # three-way ties at zero
    index = every(case.values, "y")
    routes = case.routed("y", index)
    for k, flat in enumerate(index):
        winner = "abc"[int(np.argmax(stack[:, flat]))]  # first maximum in production order
        assert routes[k] == (winner, flat)


# --------------------------------------------------------------------------------------------
# Pure index maps: the value at the mapped input index equals the value at the output index
# --------------------------------------------------------------------------------------------

SHAPE_CASES = {
    "Transpose-0231": (13, lambda: [helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])], {}),
    "Transpose-default": (13, lambda: [helper.make_node("Transpose", ["r"], ["y"])], {}),
    "Reshape": (13, lambda: [helper.make_node("Reshape", ["r", "s"], ["y"])], {"s": np.array([2, -1, 5], np.int64)}),
    "Flatten-1": (13, lambda: [helper.make_node("Flatten", ["r"], ["y"], axis=1)], {}),
    "Flatten-2": (13, lambda: [helper.make_node("Flatten", ["r"], ["y"], axis=2)], {}),
    "Unsqueeze": (13, lambda: [helper.make_node("Unsqueeze", ["r", "ax"], ["y"])], {"ax": np.array([2, 0], np.int64)}),
    "Squeeze": (
        13,
        lambda: [helper.make_node("ReduceMax", ["r"], ["m"], axes=[2]), helper.make_node("Squeeze", ["m", "ax"], ["y"])],
        {"ax": np.array([2], np.int64)},
    ),
    "Pad-constant": (
        13,
        lambda: [helper.make_node("Pad", ["r", "p"], ["y"], mode="constant")],
        {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)},
    ),
    "Pad-reflect": (
        13,
        lambda: [helper.make_node("Pad", ["r", "p"], ["y"], mode="reflect")],
        {"p": np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64)},
    ),
    "Pad-edge": (
        13,
        lambda: [helper.make_node("Pad", ["r", "p"], ["y"], mode="edge")],
        {"p": np.array([0, 1, 2, 0, 0, 0, 1, 3], np.int64)},
    ),
    "Pad-18-axes": (
        18,
        lambda: [helper.make_node("Pad", ["r", "p", "", "ax"], ["y"], mode="reflect")],
        {"p": np.array([1, 2, 2, 0], np.int64), "ax": np.array([2, -1], np.int64)},
    ),
}


def _index_map(name: str, in_shape, inits) -> np.ndarray:
    """numpy's own version of the op applied to an array of flat input indices (-1: no source)."""
    ids = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    if name.startswith("Transpose"):
        return ids.transpose((0, 2, 3, 1) if name.endswith("0231") else None)
    if name.startswith("Pad"):
        pads = inits["p"]
        rank = len(in_shape)
        axes = [a % rank for a in inits["ax"]] if "ax" in inits else list(range(rank))
        width = [(0, 0)] * rank
        for k, axis in enumerate(axes):
            width[axis] = (int(pads[k]), int(pads[k + len(axes)]))
        mode = name.split("-")[1]
        mode = "reflect" if mode == "18" else mode
        return np.pad(ids, width, mode=mode, constant_values=-1) if mode == "constant" else np.pad(ids, width, mode=mode)
    return None  # reshapes keep the flat order


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_index_maps_keep_values(name):
    opset, nodes, inits = SHAPE_CASES[name]
    rng = np.random.default_rng(17)
    x = _w(rng, 2, 3, 4, 5)
    case = Case(build([helper.make_node("Identity", ["x"], ["r"])] + nodes(), x.shape, ["y"], inits, opset=opset), x)
    y = case.values["y"]
    source = "m" if name == "Squeeze" else "r"
    index = every(case.values, "y")
    routes = case.routed("y", index)
    oracle = _index_map(name, case.values[source].shape, inits)
    oracle = np.arange(y.size) if oracle is None else oracle.ravel()
    assert oracle.size == y.size
    for k, flat in enumerate(index):
        if oracle[flat] < 0:  # constant padding: nothing produced it
            assert k not in routes
            continue
        assert routes[k] == (source, int(oracle[flat]))
        assert case.values[source].ravel()[routes[k][1]] == y.ravel()[flat]
    if name == "Pad-constant":
        assert len(routes) == x.size


# --------------------------------------------------------------------------------------------
# Whole-walk errors
# --------------------------------------------------------------------------------------------


def _head(feature: str, channels: int, rng) -> tuple[list, dict]:
    nodes = [
        helper.make_node("GlobalAveragePool", [feature], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    return nodes, {"fc": _w(rng, 4, channels)}


@pytest.mark.parametrize("op,attrs", [("Sin", {}), ("Hardmax", {"axis": 1})])
def test_unsupported_op_names_op_node_and_supported_ops(op, attrs):
    rng = np.random.default_rng(18)
    head, inits = _head("odd", 3, rng)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["c"], ["odd"], name="the_odd_node", **attrs),
    ] + head
    model = build(nodes, (1, 3, 8, 8), ["logits"], {"w": _w(rng, 3, 3, 3, 3)} | inits)
    with pytest.raises(UnsupportedOpError) as info:
        Explainer(model)
    message = str(info.value)
    assert repr(op) in message and "the_odd_node" in message
    assert "supported ops:" in message
    for known in ("Conv", "Gemm", "GlobalAveragePool", "MaxPool", "Concat", "Add"):
        assert known in message
    assert info.value.op_type == op and info.value.node_name == "the_odd_node"
    assert op not in info.value.supported and "Conv" in info.value.supported


def test_reshape_with_a_computed_target_shape_is_explainable():
    rng = np.random.default_rng(19)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Shape", ["r"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    inits = {
        "w": _w(rng, 3, 3, 3, 3),
        "zero": np.array(0, np.int64),
        "axis0": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
        "fc": _w(rng, 4, 3 * 8 * 8),
    }
    model = build(nodes, (1, 3, 8, 8), ["logits"], inits)
    explanation = Explainer(model, preset="raw").explain(np.zeros((8, 8, 3), np.uint8) + 128)
    assert len(explanation.points) > 0


def test_explain_model_with_softmax_output():
    rng = np.random.default_rng(20)
    head, inits = _head("r", 4, rng)
    nodes = (
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
        ]
        + head
        + [helper.make_node("Softmax", ["logits"], ["prob"], axis=1)]
    )
    model = build(nodes, (1, 3, 8, 8), ["prob"], {"w": _w(rng, 4, 3, 3, 3)} | inits)
    image = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    explanation = Explainer(model, preset="raw").explain(image)
    assert 0 <= explanation.target.index < 4 and len(explanation.points) > 0
