"""Batches: N photos through one forward and one walk give each photo exactly its own explanation,
and a whole walk (depthwise recompute, residual Add, Concat, pools, dense head, batch of 2) gives
the same sets on the CUDA backend (simulator) as on the CPU backend."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from fixtrace import Explainer, ImageError, OptionError
from fixtrace.backends import cuda_status
from fixtrace.backends.cpu import CpuBackend
from fixtrace.runtime.tensors import Tensors


def _walk_model() -> onnx.ModelProto:
    """A tiny MobileNet/ResNet/Inception hybrid with a dynamic batch: every rule kind on one path."""
    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), f"w{len(inits)}")  # noqa: E731
    inits: list = []
    nodes = []

    def conv(x, y, shape, **attrs):
        inits.append(w(*shape))
        inits.append(numpy_helper.from_array(rng.standard_normal(shape[0]).astype(np.float32), f"b{len(inits)}"))
        nodes.append(helper.make_node("Conv", [x, inits[-2].name, inits[-1].name], [y], kernel_shape=list(shape[2:]), **attrs))

    conv("x", "c1", (4, 3, 3, 3), pads=[1, 1, 1, 1])
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    conv("r1", "e", (8, 4, 1, 1))
    inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes.append(helper.make_node("Clip", ["e", "lo", "hi"], ["e6"]))
    conv("e6", "d", (8, 1, 3, 3), pads=[1, 0, 1, 2], group=8)  # depthwise, asymmetric pads
    conv("d", "p", (4, 8, 1, 1))
    nodes.append(helper.make_node("Add", ["r1", "p"], ["res"]))
    nodes.append(helper.make_node("MaxPool", ["res"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
    conv("res", "s2", (3, 4, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
    nodes.append(helper.make_node("Relu", ["s2"], ["r2"]))
    nodes.append(helper.make_node("Concat", ["mp", "r2"], ["cat"], axis=1))
    nodes.append(helper.make_node("GlobalAveragePool", ["cat"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    inits.append(numpy_helper.from_array(rng.standard_normal((5, 7)).astype(np.float32), "fc"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "walk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.skipif(not cuda_status()["available"], reason=f"CUDA cannot run here: {cuda_status().get('reason')}")
@pytest.mark.parametrize("location", ["argmax", "centre"])
def test_whole_walk_is_identical_on_cuda_and_cpu(location):
    from fixtrace.backends.cuda import CudaBackend

    explainer = Explainer(_walk_model(), preset="raw", conv_location=location, device="cpu")
    assert explainer.plan.recipes, "the depthwise input should be recomputed, not kept"
    batch = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    values = explainer.session.run(batch)
    walks = []
    for backend in (CpuBackend(), CudaBackend()):
        tensors = Tensors(
            values | {"x": batch}, explainer.graph.shapes(batch.shape), explainer.graph.constants, explainer.plan.recipes, backend
        )
        walks.append(explainer.plan.run(backend.start([0 * 5 + 1, 1 * 5 + 4]), tensors))
    cpu, gpu = walks
    assert sorted(cpu.per_tensor) == sorted(gpu.per_tensor)
    assert len(cpu.per_tensor) >= 15
    for name in cpu.per_tensor:
        a, b = cpu.per_tensor[name].host(), gpu.per_tensor[name].host()
        np.testing.assert_array_equal(b.index, a.index, err_msg=name)
        np.testing.assert_array_equal(b.count, a.count, err_msg=name)
    per_item = 3 * 8 * 8
    assert {int(i) // per_item for i in cpu.input.host().index} == {0, 1}  # both photos reach the input


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_a_walk_shared_among_threads_equals_one_walk(workers):
    """Groups of photos walked in threads (``BacktrackPlan.run(workers=...)``): the same tensors in
    the same order and the same sets, bit for bit; photo 0 starts from two classes."""
    explainer = Explainer(_walk_model(), preset="raw", device="cpu")
    batch = np.random.default_rng(2).standard_normal((5, 3, 8, 8)).astype(np.float32)
    values = explainer.session.run(batch)
    tensors = Tensors(
        values | {"x": batch}, explainer.graph.shapes(batch.shape), explainer.graph.constants, explainer.plan.recipes
    )
    start = [0 * 5 + 1, 0 * 5 + 3, 1 * 5 + 4, 2 * 5 + 0, 3 * 5 + 2, 4 * 5 + 4]
    one = explainer.plan.run(tensors.backend.start(start), tensors)
    shared = explainer.plan.run(tensors.backend.start(start), tensors, workers)
    assert list(shared.per_tensor) == list(one.per_tensor) and len(one.per_tensor) >= 15
    for name, want in one.per_tensor.items():
        got = shared.per_tensor[name]
        np.testing.assert_array_equal(got.index, want.index, err_msg=name)
        assert got.count.tobytes() == want.count.tobytes(), name
    assert shared.input is shared.per_tensor["x"]


def _same(a, b) -> None:
    assert a.target == b.target and a.top_classes == b.top_classes
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert a.box == b.box
    assert a.per_layer.keys() == b.per_layer.keys()
    for name in a.per_layer:
        np.testing.assert_array_equal(a.per_layer[name].positions, b.per_layer[name].positions)
        np.testing.assert_array_equal(a.per_layer[name].counts, b.per_layer[name].counts)


def test_batch_gives_each_photo_its_own_explanation(mobilenet, chelsea_path, coffee_path):
    from conftest import IMAGES

    images = [chelsea_path, coffee_path, IMAGES / "camera.jpg", chelsea_path]
    items = list(mobilenet.explain_many(images, top_k=2, batch_size=3))
    assert [i.index for i in items] == [0, 1, 2, 3] and all(i.error is None for i in items)
    assert [i.explanations[0].info["batch_size"] for i in items] == [3, 3, 3, 1]
    for item in items:
        alone = mobilenet.explain(item.image, top_k=2)
        assert len(item.explanations) == 2
        for got, want in zip(item.explanations, alone):
            _same(got, want)
    assert items[0].explanations[0].target.index == 285 and items[1].explanations[0].target.index == 967


def test_a_bad_photo_in_a_batch_loses_nothing(mobilenet, chelsea_path, coffee_path, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(chelsea_path.read_bytes()[:200])
    items = list(mobilenet.explain_many([chelsea_path, broken, coffee_path], target=285, batch_size=8))
    assert isinstance(items[1].error, ImageError) and items[1].explanations is None
    assert items[0].explanations[0].target.index == 285 and items[2].explanations[0].target.index == 285
    _same(items[2].explanations[0], mobilenet.explain(coffee_path, target=285))


def test_the_next_batch_is_read_while_this_one_is_explained(mobilenet, chelsea_path, coffee_path, tmp_path):
    """explain_many reads the next batch ahead (on a reader thread) before yielding this one's
    results: a generator of 5 photos in batches of 2 has been drawn from 4 times when the first
    result comes. Order and each photo's own result or error are kept, and a break stops it."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(chelsea_path.read_bytes()[:200])
    photos = [chelsea_path, coffee_path, broken, coffee_path, chelsea_path]
    drawn: list[int] = []

    def stream():
        for k, photo in enumerate(photos):
            drawn.append(k)
            yield photo

    items = mobilenet.explain_many(stream(), batch_size=2)
    first = next(items)
    assert first.index == 0 and first.error is None and drawn == [0, 1, 2, 3]
    rest = list(items)
    assert [i.index for i in rest] == [1, 2, 3, 4]
    assert isinstance(rest[1].error, ImageError) and rest[1].explanations is None
    assert [i.explanations[0].target.index for i in (first, rest[0], rest[2], rest[3])] == [285, 967, 967, 285]
    drawn.clear()
    one_by_one = mobilenet.explain_many(stream(), batch_size=1)
    assert next(one_by_one).index == 0 and drawn == [0, 1]
    one_by_one.close()
    assert drawn == [0, 1]


def test_readers_0_reads_each_photo_when_its_batch_is_made(mobilenet, chelsea_path, coffee_path):
    """A frame source that refills one buffer (as video readers do) is read right, one photo a
    batch, with readers=0; a bad reader count is refused."""
    from fixtrace.images.load import load_image

    frames = [load_image(chelsea_path), load_image(coffee_path), load_image(chelsea_path)]
    buffer = np.empty((300, 451, 3), np.uint8)

    def video():
        for frame in frames:
            buffer[...] = np.asarray(Image.fromarray(frame).resize((451, 300)))
            yield buffer

    got = [i.explanations[0].target.index for i in mobilenet.explain_many(video(), batch_size=1, readers=0)]
    assert got == [285, 967, 285]
    with pytest.raises(OptionError, match="readers"):
        list(mobilenet.explain_many(video(), readers=-1))


def test_fixed_batch_dim_caps_the_batch(tmp_path, chelsea_path, coffee_path, mobilenet_path):
    model = onnx.load(str(mobilenet_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    explainer = Explainer(model, device="cpu")
    items = list(explainer.explain_many([chelsea_path, coffee_path], batch_size=16))
    assert [i.explanations[0].info["batch_size"] for i in items] == [1, 1]
    assert [i.explanations[0].target.index for i in items] == [285, 967]


def test_a_fixed_batch_larger_than_the_photos_is_filled_and_the_fill_dropped(
    chelsea_path, coffee_path, mobilenet, mobilenet_path
):
    """A model whose batch dim is fixed at 4 takes 3 photos (and a photo's 2 crops) padded with
    zero rows: the maps equal the free-batch model's."""
    model = onnx.load(str(mobilenet_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = Explainer(model, device="cpu", method="fixations,gradcam")
    photos = [chelsea_path, coffee_path, chelsea_path]
    for item in fixed.explain_many(photos, batch_size=8):
        for label, found in item.by_method.items():
            _same(found[0], mobilenet.explain(photos[item.index], method=label))
    for label, found in fixed.explain(coffee_path, crops=2).items():
        _same(found, mobilenet.explain(coffee_path, method=label, crops=2))
    with pytest.raises(OptionError, match="fixed batch of 4"):
        fixed.explain(coffee_path, crops=10)
