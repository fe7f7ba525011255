"""``fixtrace activations``: a layer's channels as tiles, and the dead-filter report.

Oracles: a separate onnxruntime session on the same preprocessed photo with the layer added as a
graph output (``conftest.run_exposing``, graph optimisations off) for the values, the tiles'
pixels and the sort order; per-photo onnxruntime runs counted by brute force for the dead-filter
report; the label strips redrawn from the channel index with the grid's font.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image, ImageDraw
from test_layouts import PHOTO, small_cnn, to_channels_last

from conftest import MODELS, run_cli, run_exposing
from fixtrace.errors import OptionError
from fixtrace.images.load import load_photo
from fixtrace.images.preprocess import preprocess
from fixtrace.images.presets import PRESETS
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.render.legend import text_font
from fixtrace.render.tiles import FONT_SIZE, LINE
from fixtrace.toolbox.activations import activation_tiles, layer_activations, save_activations
from fixtrace.toolbox.dead import dead_filters
from fixtrace.toolbox.layer_choice import conv_maps

MID = "/features/features.6/conv/conv.1/conv.1.2/Clip_output_0"  # 192 x 28 x 28 after ReLU6
FASHION = MODELS / "fashion"
SAMPLES = sorted((FASHION / "samples").glob("*.png"))


def oracle(model_path: Path | onnx.ModelProto, photo, layer: str, preset: str) -> np.ndarray:
    """The layer's value for one photo from its own onnxruntime session (model layout, batch of one)."""
    model = model_path if isinstance(model_path, onnx.ModelProto) else onnx.load(str(model_path))
    graph = LayerGraph.from_model(model)
    sample, _ = preprocess(load_photo(photo).pixels, graph.image_input, PRESETS[preset])
    return run_exposing(model, graph.image_input.name, sample[None], keep=lambda name: name == layer)[layer][0]


@pytest.fixture(scope="module")
def mid(mobilenet_path, chelsea_path):
    return layer_activations(mobilenet_path, chelsea_path, MID), oracle(mobilenet_path, chelsea_path, MID, "imagenet")


def tile_pixels(image: np.ndarray, box, factor: int) -> np.ndarray:
    """A tile's values, one per block of the nearest-neighbour enlargement (grey: the red channel)."""
    x0, y0, x1, y1 = box
    return image[y0 + factor // 2 : y1 : factor, x0 + factor // 2 : x1 : factor, 0].astype(np.float64)


def assert_labels(image: np.ndarray, boxes, channels) -> None:
    """The strip above each tile shows its channel index, as the grid's font draws it."""
    for box, channel in zip(boxes, channels):
        x0, y0, x1, _ = box
        want = Image.new("RGB", (x1 - x0 + 3, LINE), "white")
        ImageDraw.Draw(want).text((0, 0), str(channel), fill="black", font=text_font(FONT_SIZE))
        got = image[y0 - LINE : y0, x0 : x1 + 3]
        np.testing.assert_array_equal(got, np.asarray(want), err_msg=f"label of channel {channel}")


def test_values_are_the_onnxruntime_intermediate(mid):
    got, want = mid
    assert got.values.shape == want.shape == (192, 28, 28) and got.layout == "NCHW"
    np.testing.assert_allclose(got.values, want, rtol=1e-5, atol=1e-5)
    assert np.array_equal(got.order, np.argsort(-want.mean(axis=(1, 2)), kind="stable"))
    np.testing.assert_allclose(got.zero_fraction, (want <= 0).mean(axis=(1, 2)))


@pytest.mark.parametrize("scale", ["shared", "tile"])
def test_tiles_are_the_scaled_values_top_channel_first_labelled(mid, scale):
    got, want = mid
    grid, shown = activation_tiles(got, top=20, scale=scale)
    order = np.argsort(-want.mean(axis=(1, 2)), kind="stable")
    assert shown == order[:20].tolist() and len(grid.boxes) == 20
    image = np.asarray(grid.image)
    factor = (grid.boxes[0][2] - grid.boxes[0][0]) // 28
    assert factor >= 2
    for channel, box in zip(shown, grid.boxes):
        values = want[channel].astype(np.float64)
        low, high = (want.min(), want.max()) if scale == "shared" else (values.min(), values.max())
        expected = np.round(255 * (values - low) / (high - low))
        assert np.abs(tile_pixels(image, box, factor) - expected).max() <= 1, channel
    assert_labels(image, grid.boxes, shown)


def test_an_nhwc_layer_is_saved_channels_first(tmp_path):
    nchw, nhwc = small_cnn(), to_channels_last(small_cnn())
    got = layer_activations(nhwc, PHOTO, "r1", preset="raw")
    want = oracle(nhwc, PHOTO, "r1", "raw")
    assert got.layout == "NHWC" and want.shape == (8, 8, 6)
    np.testing.assert_allclose(got.values, want.transpose(2, 0, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.values, layer_activations(nchw, PHOTO, "r1", preset="raw").values, rtol=1e-5, atol=1e-6)
    npy = save_activations(got, tmp_path)[1]
    np.testing.assert_array_equal(np.load(npy), got.values)


def test_all_conv_reads_the_same_rectified_maps_on_nchw_and_nhwc():
    """A channels-last export puts a Transpose between each conv and its ReLU: all-conv steps through it."""
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.toolbox.layer_choice import conv_maps

    nchw, nhwc = (LayerGraph.from_model(m) for m in (small_cnn(), to_channels_last(small_cnn())))
    assert conv_maps(nhwc) == conv_maps(nchw)
    assert nhwc.producer[conv_maps(nhwc)[0]].op_type == "Relu"


def test_a_layer_that_is_not_a_feature_map_is_refused(mobilenet_path, chelsea_path):
    with pytest.raises(OptionError, match=r"'/Flatten_output_0' \(shape \(1, 1280\)\) is not a feature map"):
        layer_activations(mobilenet_path, chelsea_path, "/Flatten_output_0")
    with pytest.raises(OptionError, match="is not a tensor the model computes"):
        layer_activations(mobilenet_path, chelsea_path, "/features/features.6/nope")


# --------------------------------------------------------------------------------------------
# Dead filters
# --------------------------------------------------------------------------------------------


def channel_maxima(model: Path | onnx.ModelProto, layers: list[str]) -> dict[str, np.ndarray]:
    """Per layer: (samples, C) each channel's max over the map, one onnxruntime run per sample."""
    return {layer: np.stack([oracle(model, path, layer, "raw").max(axis=(1, 2)) for path in SAMPLES]) for layer in layers}


def with_a_dead_channel(path: Path, conv_output: str, channel: int) -> onnx.ModelProto:
    """The model with one conv channel's bias so low that the ReLU after it is 0 on any photo."""
    model = onnx.load(str(path))
    conv = next(n for n in model.graph.node if n.output[0] == conv_output)
    bias = next(i for i in model.graph.initializer if i.name == conv.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[channel] = -1e6
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    return model


def test_dead_filter_counts_equal_a_brute_force_count():
    model = FASHION / "resnet.onnx"
    graph = LayerGraph.from_model(onnx.load(str(model)))
    layers = conv_maps(graph)
    relu = "/features/features.4/body/body.0/body.0.2/Relu_output_0"
    assert relu in layers and graph.producer[relu].op_type == "Relu"
    maxima = channel_maxima(model, layers)
    report = dead_filters(model, SAMPLES, preset="raw", batch_size=5)
    assert report.images == len(SAMPLES) == 12 and [c.layer for c in report.layers] == layers
    for counts in report.layers:
        np.testing.assert_array_equal(counts.zero_images, (maxima[counts.layer] <= 0).sum(axis=0), err_msg=counts.layer)
        np.testing.assert_allclose(counts.peak, maxima[counts.layer].max(axis=0), rtol=1e-5)
    # Nearly dead: zero below the upper quartile of channel maxima of the ReLU layer, so that counts spread over 0..12.
    zero_at = float(np.quantile(maxima[relu], 0.75))
    want = (maxima[relu] <= zero_at).sum(axis=0)
    assert 0 < (want == 12).sum() and 0 < ((want > 0) & (want < 12)).sum()
    (near,) = dead_filters(model, SAMPLES, relu, preset="raw", zero_at=zero_at, threshold=0.5).layers
    np.testing.assert_array_equal(near.zero_images, want)
    assert near.dead(12, 0.99).tolist() == np.flatnonzero(want == 12).tolist()
    assert near.dead(12, 0.5).tolist() == np.flatnonzero(want > 6).tolist()


def test_a_channel_made_dead_is_found_after_its_relu():
    conv = "/features/features.4/features.4.0/Conv_output_0"
    relu = "/features/features.4/features.4.2/Relu_output_0"
    model = with_a_dead_channel(FASHION / "vgg.onnx", conv, 7)
    assert relu in conv_maps(LayerGraph.from_model(model))
    (counts,) = dead_filters(model, SAMPLES, relu, preset="raw").layers
    want = (channel_maxima(model, [relu])[relu] <= 0).sum(axis=0)
    np.testing.assert_array_equal(counts.zero_images, want)
    assert counts.dead(12, 0.99).tolist() == [7] and counts.peak[7] == 0


def test_dead_report_cli_skips_a_corrupt_image(tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(FASHION / "samples", folder, ignore=shutil.ignore_patterns("*.csv", "*.md"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    layer = "/features/features.4/features.4.2/Relu_output_0"
    proc = run_cli(
        "activations", FASHION / "vgg.onnx", folder, "--dead-report", "--layer", layer, "--preset", "raw",
        "--out", tmp_path / "out", "--dead-threshold", "0.5", "--zero-at", "1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "broken.png" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("fixtrace: error:")] == [
        line for line in proc.stderr.splitlines() if "broken.png" in line and "skipped" in line
    ]
    summary = [line for line in proc.stdout.splitlines() if line.startswith(layer)]
    assert len(summary) == 1 and "of 48 channels dead (zero on > 50% of 12 images)" in summary[0]
    report = json.loads((tmp_path / "out" / "dead_filters.json").read_text())
    want = (channel_maxima(FASHION / "vgg.onnx", [layer])[layer] <= 1.0).sum(axis=0)
    assert want.any()
    assert report["images"] == 12 and len(report["failed"]) == 1
    assert report["layers"][0]["zero_images"] == want.tolist()
    assert report["layers"][0]["dead"] == np.flatnonzero(want > 6).tolist()
    rows = list(csv.DictReader((tmp_path / "out" / "dead_filters.csv").open()))
    assert [int(r["zero_images"]) for r in rows] == want.tolist() and {r["layer"] for r in rows} == {layer}


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def test_cli_writes_the_grid_values_and_statistics(tmp_path, mobilenet_path, chelsea_path, mid):
    _, want = mid
    proc = run_cli("activations", mobilenet_path, chelsea_path, "--layer", MID, "--top", "12", "--out", tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stem = tmp_path / "chelsea" / "features_features.6_conv_conv.1_conv.1.2_Clip_output_0"
    np.testing.assert_allclose(np.load(f"{stem}.npy"), want, rtol=1e-5, atol=1e-5)
    info = json.loads(Path(f"{stem}.json").read_text())
    order = np.argsort(-want.mean(axis=(1, 2)), kind="stable")
    assert info["layer"] == MID and info["shape"] == [192, 28, 28] and info["layout"] == "NCHW"
    assert info["order"] == order.tolist() and [t["channel"] for t in info["tiles"]] == order[:12].tolist()
    top = info["channels"][order[0]]
    assert top["mean"] == pytest.approx(want[order[0]].mean(), rel=1e-5)
    assert top["max"] == pytest.approx(want[order[0]].max(), rel=1e-5)
    assert info["scale"]["low"] == pytest.approx(want.min(), abs=1e-6) and info["scale"]["high"] == pytest.approx(want.max())
    image = np.asarray(Image.open(f"{stem}.png").convert("RGB"))
    box = info["tiles"][0]["box"]
    factor = (box[2] - box[0]) // 28
    expected = np.round(255 * (want[order[0]] - want.min()) / (want.max() - want.min()))
    assert np.abs(tile_pixels(image, box, factor) - expected).max() <= 1


def test_cli_bad_layers_are_one_line_errors(tmp_path, mobilenet_path, chelsea_path):
    for layer, message in [
        ("/features/features.6/nope", "is not a tensor the model computes"),
        ("/Flatten_output_0", "is not a feature map whose layout the graph establishes"),
    ]:
        proc = run_cli("activations", mobilenet_path, chelsea_path, "--layer", layer, "--out", tmp_path, cwd=tmp_path)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("fixtrace: error:")]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_cli("activations", mobilenet_path, chelsea_path, "--out", tmp_path, cwd=tmp_path)
    assert proc.returncode == 2 and "fixtrace: error: --layer is required" in proc.stderr


def test_cli_grids_over_a_folder_skip_a_corrupt_image(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in SAMPLES[:2]:
        shutil.copy(path, folder)
    (folder / "00001b.png").write_bytes(b"not an image")
    layer = "/features/features.0/features.0.2/Relu_output_0"
    proc = run_cli(
        "activations", FASHION / "vgg.onnx", folder, "--layer", layer, "--preset", "raw", "--out", tmp_path / "out", cwd=tmp_path
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fixtrace: error:")]
    assert len(errors) == 1 and "00001b.png" in errors[0]
    for path in SAMPLES[:2]:
        npy = tmp_path / "out" / path.stem / "features_features.0_features.0.2_Relu_output_0.npy"
        np.testing.assert_allclose(np.load(npy), oracle(FASHION / "vgg.onnx", path, layer, "raw"), rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "out" / "00001b").exists()
