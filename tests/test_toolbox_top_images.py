"""Maximally activating images: the streamed top-k against a brute-force ranking (one onnxruntime
session per photo with the layer as an extra graph output, all scores sorted; ties in stream
order), patches against the receptive field, and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_layouts import small_cnn, to_channels_last

from conftest import IMAGES, MODELS, run_cli, run_exposing
from fixtrace.errors import OptionError, TargetError
from fixtrace.images.load import load_photo
from fixtrace.images.preprocess import preprocess
from fixtrace.images.presets import get_preset
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import load_model
from fixtrace.toolbox.top_images import TopImageFinder, top_images

#: A ReLU6 output after a stride-2 depthwise conv: many photos saturate at 6, so ties are real.
CLIPPED = "/features/features.2/conv/conv.1/conv.1.2/Clip_output_0"
ADD = "/features/features.6/Add_output_0"
LOGITS = "logits"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """The bundled photos, their mirrors and the 12 Fashion canvases: 18 photos of two sizes."""
    folder = tmp_path_factory.mktemp("photos")
    found = sorted(IMAGES.glob("*.jpg")) + sorted((MODELS / "fashion" / "samples").glob("*.png"))
    for path in sorted(IMAGES.glob("*.jpg")):
        mirror = folder / f"{path.stem}_mirror.png"
        ImageOps.mirror(Image.open(path).convert("RGB")).save(mirror)
        found.append(mirror)
    return found


@pytest.fixture(scope="module")
def brute_force(mobilenet_path, photos) -> dict[str, np.ndarray]:
    """Layer -> (photos, ...): the layers of each photo, one session run per photo (no batching,
    no graph optimisations), in stream order."""
    model = load_model(mobilenet_path)
    graph = LayerGraph.from_model(model)
    runs = []
    for path in photos:
        sample, _ = preprocess(load_photo(path).pixels, graph.image_input, get_preset("imagenet"))
        runs.append(run_exposing(model, graph.image_input.name, sample[None], keep=lambda name: name in (CLIPPED, ADD, LOGITS)))
    return {layer: np.concatenate([values[layer] for values in runs]) for layer in (CLIPPED, ADD, LOGITS)}


def ranking(scores: np.ndarray, k: int) -> list[int]:
    """Stream positions of the k best scores, equal scores in stream order."""
    return sorted(range(len(scores)), key=lambda n: (-scores[n], n))[:k]


def assert_same_ranking(got: list[int], want: list[int], scores: np.ndarray) -> None:
    """Equal, except that two photos whose scores differ by float32 rounding only (a batched
    forward against a single one) may swap; equal scores (a saturated ReLU6) keep stream order."""
    for g, w in zip(got, want):
        gap = abs(float(scores[g]) - float(scores[w]))
        assert g == w or 0 < gap <= 1e-5 * max(1.0, abs(float(scores[w]))), (got, want)


@pytest.mark.parametrize(("layer", "score"), [(CLIPPED, "max"), (ADD, "max"), (ADD, "mean")])
def test_streamed_top_k_equals_brute_force(mobilenet_path, photos, brute_force, layer, score):
    channels = [0, 3, 17]
    result = top_images(mobilenet_path, photos, layer, channels, k=5, score=score, batch_size=4)
    maps = brute_force[layer]
    ties = 0
    for channel in channels:
        flat = maps[:, channel].reshape(len(photos), -1)
        scores = flat.max(axis=1) if score == "max" else flat.astype(np.float64).mean(axis=1)
        want = ranking(scores, 5)
        found = result.winners[channel]
        assert [w.rank for w in found] == [1, 2, 3, 4, 5]
        assert_same_ranking([w.index for w in found], want, scores)
        np.testing.assert_allclose([w.score for w in found], scores[[w.index for w in found]], rtol=1e-5, atol=1e-5)
        assert [w.source for w in found] == [photos[w.index] for w in found]
        if score == "max":  # the cell is the map's first largest value
            for w in found:
                assert maps[w.index, channel][w.cell] >= scores[w.index] - 1e-5
        ties += len(set(scores[want])) < len(want)
    if layer == CLIPPED:
        assert ties, "the saturated layer was meant to test ties"
    assert result.seen == len(photos) and not result.failed


def test_class_top_k_equals_brute_force_on_logits(mobilenet_path, photos, brute_force):
    result = top_images(mobilenet_path, photos, classes=[281, 504], k=4, batch_size=5)
    logits = brute_force[LOGITS]
    assert result.score == "logit"
    for cls in (281, 504):
        found = result.winners[cls]
        assert_same_ranking([w.index for w in found], ranking(logits[:, cls], 4), logits[:, cls])
        exp = np.exp(logits[[w.index for w in found]] - logits[[w.index for w in found]].max(axis=1, keepdims=True))
        np.testing.assert_allclose([w.probability for w in found], (exp / exp.sum(axis=1, keepdims=True))[:, cls], rtol=1e-4)
        for w in found:  # the whole photo
            photo = load_photo(w.source)
            assert w.box == (0, 0, *photo.size) and w.patch.shape == photo.pixels.shape
    assert result.names[281].startswith("class 281 tabby")


def test_patch_holds_the_best_cell_field_centre(mobilenet_path, photos):
    result = top_images(mobilenet_path, photos, ADD, [5, 9], k=6)
    field = result.field
    assert field.size == (59, 59) and field.stride == (8, 8)
    for found in result.winners.values():
        for w in found:
            x0, y0, x1, y1 = w.box
            row, col = field.centre(*w.cell)
            ((x, y),) = w.geometry.to_original(np.array([row]), np.array([col]))
            assert x0 <= x < x1 and y0 <= y < y1
            photo = load_photo(w.source).pixels
            np.testing.assert_array_equal(w.patch, photo[y0:y1, x0:x1])
            # The box is the field mapped through the resize: its sides are the window's, scaled.
            top, left, bottom, right = field.window(*w.cell)
            scale = w.geometry.original[0] / w.geometry.resized[0]
            assert abs((x1 - x0) - (right - left) * scale) <= 2 and abs((y1 - y0) - (bottom - top) * scale) <= 2


def test_fashion_canvases_map_one_to_one(photos):
    """A 112 x 112 canvas fed as it is (preset raw): the box on the photo is the window itself."""
    canvases = [p for p in photos if p.suffix == ".png" and "mirror" not in p.name]
    result = top_images(
        MODELS / "fashion" / "vgg.onnx", canvases, "/features/features.3/MaxPool_output_0", [1], k=3, preset="raw"
    )
    for w in result.winners[1]:
        top, left, bottom, right = result.field.window(*w.cell)
        assert w.box == (left, top, right, bottom)


def test_channels_last_model_ranks_alike():
    """The same network spelled NCHW and NHWC (jax2onnx style): the same winners, cells and boxes."""
    photos = [np.random.default_rng(k).uniform(0, 255, (20, 24, 3)).astype(np.uint8) for k in range(12)]
    results = [
        top_images(model, photos, "r2", [0, 4], k=4, preset="raw", batch_size=5)
        for model in (small_cnn(), to_channels_last(small_cnn()))
    ]
    for channel in (0, 4):
        first, last = ([(w.index, w.cell, w.box) for w in r.winners[channel]] for r in results)
        assert first == last
        np.testing.assert_allclose(
            [w.score for w in results[0].winners[channel]], [w.score for w in results[1].winners[channel]], rtol=1e-5
        )
    assert results[0].field == results[1].field


def test_bad_choices_are_refused_in_one_line(mobilenet_path):
    with pytest.raises(OptionError, match=r"channel 96 \(--channel\) is out of range: layer '.*' has 96 channels \(0..95\)"):
        TopImageFinder(mobilenet_path, CLIPPED, [3, 96])
    with pytest.raises(TargetError, match=r"class 1000 \(--class\) is out of range: the model has 1000 classes"):
        TopImageFinder(mobilenet_path, classes=[1000])
    with pytest.raises(OptionError, match="give no layer or channel with them"):
        TopImageFinder(mobilenet_path, ADD, classes=[3])
    with pytest.raises(OptionError, match=r"score \(--score\) is for channels"):
        TopImageFinder(mobilenet_path, classes=[3], score="mean")
    with pytest.raises(OptionError, match="needs at least one channel"):
        TopImageFinder(mobilenet_path, CLIPPED)
    with pytest.raises(OptionError, match="not a tensor the model computes"):
        TopImageFinder(mobilenet_path, "/features/nope", [0])
    with pytest.raises(OptionError, match="not a feature map"):
        TopImageFinder(mobilenet_path, "/Flatten_output_0", [0])
    with pytest.raises(OptionError, match=r"k \(-k\) must be at least 1"):
        TopImageFinder(mobilenet_path, CLIPPED, [0], k=0)


def test_unreadable_photos_are_skipped_and_counted(mobilenet_path, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    result = top_images(mobilenet_path, [photos[0], broken, photos[1]], ADD, [0], k=3)
    assert result.seen == 2 and [Path(s) for s, _ in result.failed] == [broken]
    assert sorted(w.index for w in result.winners[0]) == [0, 2]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos) -> Path:
    folder = tmp_path_factory.mktemp("folder")
    for path in photos[:9]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_cli_happy_path(mobilenet_path, folder, tmp_path):
    out = tmp_path / "out"
    done = run_cli(
        "top-images", mobilenet_path, folder, "--layer", ADD, "--channel", 5, "--channel", 9, "-k", 4, "--out", out, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "9 of 9 photos ranked" in done.stdout
    about = json.loads((out / "winners.json").read_text())
    assert about["layer"] == ADD and about["receptive_field"]["size"] == [59, 59] and len(about["winners"]) == 8
    rows = list(csv.DictReader((out / "winners.csv").open()))
    assert [(int(r["unit"]), int(r["rank"])) for r in rows] == [(u, r) for u in (5, 9) for r in (1, 2, 3, 4)]
    assert [r["image"] for r in rows] == [w["image"] for w in about["winners"]]
    picture = Image.open(out / "top_images.jpg")
    assert picture.format == "JPEG" and picture.width > 4 * 112 and picture.height > 2 * 112


def test_cli_errors_are_one_line(mobilenet_path, folder, tmp_path):
    for args, message in [
        (("--layer", ADD, "--channel", 32), f"channel 32 (--channel) is out of range: layer '{ADD}' has 32 channels (0..31)"),
        (("--layer", "/features/nope", "--channel", 0), "layer '/features/nope' is not a tensor the model computes"),
    ]:
        done = run_cli("top-images", mobilenet_path, folder, *args, "--out", tmp_path / "x", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fixtrace: error: ") and message in lines[0], done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("top-images", mobilenet_path, empty, "--class", 3, cwd=tmp_path)
    assert done.returncode == 2 and "no images in folder" in done.stderr and "Traceback" not in done.stderr


def test_cli_corrupt_photo_skipped_rest_done(mobilenet_path, folder, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in sorted(folder.iterdir())[:3]:
        (mixed / path.name).write_bytes(path.read_bytes())
    (mixed / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    done = run_cli("top-images", mobilenet_path, mixed, "--class", 281, "-k", 5, "--out", out, "--quiet", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("fixtrace: error: ") and "bad.jpg" in line and "skipped" in line
    about = json.loads((out / "winners.json").read_text())
    assert about["images"] == 3 and len(about["winners"]) == 3 and about["failed"][0]["image"].endswith("bad.jpg")
