"""Multi-crop (the fixations paper's 10 test-time crops): each crop's geometry maps its pixels back
to where they came from, the label is the crops' mean, and the agreeing crops' fixations or maps
are merged on the photo as they were made crop by crop."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from conftest import run_cli
from fixtrace import Explainer
from fixtrace.errors import OptionError
from fixtrace.images.crops import CROP_COUNTS, crops_of
from fixtrace.images.load import load_photo
from fixtrace.images.presets import get_preset
from fixtrace.model.layer_graph import ImageInput
from fixtrace.render.resample import unit_scale

SPEC = ImageInput("x", (1, 3, 224, 224), "NCHW")


def ramp_photo(width: int = 451, height: int = 300) -> np.ndarray:
    """Red grows left to right, green top to bottom: a pixel's colour says where it was."""
    photo = np.zeros((height, width, 3), np.uint8)
    photo[..., 0] = np.round(np.linspace(0, 255, width))[None, :]
    photo[..., 1] = np.round(np.linspace(0, 255, height))[:, None]
    return photo


@pytest.mark.parametrize("preset", ["imagenet", "raw"])
def test_each_crop_maps_its_pixels_back_to_where_they_came_from(preset):
    photo = ramp_photo()
    height, width = photo.shape[:2]
    made = crops_of(photo, SPEC, get_preset(preset), 10)
    assert [c.name for c in made[:5]] == ["centre", "top-left", "top-right", "bottom-left", "bottom-right"]
    assert [c.name for c in made[5:]] == [f"{c.name} mirrored" for c in made[:5]]
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(224), np.arange(224), indexing="ij"))

    def red(values: np.ndarray) -> np.ndarray:
        """The red channel of a sample back in 0..255."""
        return values * 255 if preset == "raw" else (values * 0.229 + 0.485) * 255

    for crop in made:
        xy = crop.geometry.to_original(rows, cols)
        expected = np.interp(xy[:, 0], np.arange(width), np.linspace(0, 255, width))
        assert np.abs(red(crop.sample[0].ravel()) - expected).max() < 1.0, crop.name  # uint8 rounding after the resize
        # And a map on the crop's grid lands where its pixels came from on the photo.
        x0, y0, x1, y1 = (int(np.ceil(v)) for v in crop.geometry.view())
        on_photo = red(crop.geometry.to_photo(crop.sample[0]))[y0 + 1 : y1 - 2, x0 + 1 : x1 - 2]
        own = photo[y0 + 1 : y1 - 2, x0 + 1 : x1 - 2, 0]
        assert own.size and np.abs(on_photo - own).max() < 1.5, crop.name
    corners = {c.name: c.geometry.crop for c in made}
    resized = made[0].geometry.resized
    assert corners["top-left"] == (0, 0) and corners["bottom-right"] == (resized[0] - 224, resized[1] - 224)
    assert min(resized) > 224  # an exact-resize preset grows so the corners differ


def test_crop_counts_and_a_centre_crop_equal_the_preset_crop():
    photo = ramp_photo()
    from fixtrace.images.preprocess import preprocess

    sample, geometry = preprocess(photo, SPEC, get_preset("imagenet"))
    for count in CROP_COUNTS:
        made = crops_of(photo, SPEC, get_preset("imagenet"), count)
        assert len(made) == count
        np.testing.assert_array_equal(made[0].sample, sample)
        assert made[0].geometry == geometry
    mirror = crops_of(photo, SPEC, get_preset("imagenet"), 2)[1]
    np.testing.assert_array_equal(mirror.sample, sample[:, :, ::-1])


@pytest.mark.parametrize("count", [0, 3, 4, 11, True, 2.0, "10"])
def test_bad_crop_counts_are_refused(count):
    with pytest.raises(OptionError, match="crops"):
        crops_of(ramp_photo(), SPEC, get_preset("imagenet"), count)


def test_corners_of_a_letterbox_are_refused_the_mirror_is_not():
    with pytest.raises(OptionError, match="letterbox"):
        crops_of(ramp_photo(), SPEC, get_preset("letterbox"), 10)
    assert len(crops_of(ramp_photo(), SPEC, get_preset("letterbox"), 2)) == 2


@pytest.fixture(scope="module")
def explainer(mobilenet_path):
    return Explainer(mobilenet_path, device="cpu")


def crop_scores(mobilenet_path, made) -> np.ndarray:
    """The crops' logits from onnxruntime directly."""
    session = ort.InferenceSession(str(mobilenet_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.stack([c.sample for c in made])})[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ten_crops_rank_on_the_mean_and_merge_the_agreeing_crops_fixations(explainer, mobilenet_path, chelsea_path):
    photo = load_photo(chelsea_path)
    made = crops_of(photo.pixels, explainer.graph.image_input, explainer.preset, 10, photo.size)
    probabilities = softmax(crop_scores(mobilenet_path, made).astype(np.float64))
    mean = probabilities.mean(axis=0)
    e = explainer.explain(chelsea_path, crops=10)
    assert e.target.index == int(np.argmax(mean))
    assert e.target.probability == pytest.approx(mean[e.target.index], rel=1e-4)
    agreeing = [c.name for c, p in zip(made, probabilities) if int(np.argmax(p)) == e.target.index]
    assert e.settings["crops"] == 10 and e.settings["crops_used"] == agreeing
    # Merged = each agreeing crop explained alone, its points mapped onto the photo, pooled.
    alone = explainer.explain_batch(
        [photo.pixels] * len(made), np.stack([c.sample for c in made]), [c.geometry for c in made], target=e.target.index
    )
    pooled: dict[tuple[float, float], float] = {}
    for crop, found in zip(made, alone):
        if crop.name in agreeing:
            for (x, y), count in zip(found[0].points, found[0].counts):
                pooled[(x, y)] = pooled.get((x, y), 0.0) + count
    assert len(e.points) == len(pooled)
    for (x, y), count in zip(e.points, e.counts):
        assert pooled[(x, y)] == pytest.approx(count)
    assert e.input_map is None and e.per_layer == {}
    assert e.geometry is not None and e.geometry.view() == (0.0, 0.0, *map(float, photo.size))
    assert e.to_json()["settings"]["crops_used"] == agreeing


def test_one_crop_is_the_plain_explanation(explainer, chelsea_path):
    plain, one = explainer.explain(chelsea_path), explainer.explain(chelsea_path, crops=1)
    np.testing.assert_array_equal(plain.heatmap, one.heatmap)
    assert "crops" not in one.settings


def test_the_one_call_api_takes_crops(mobilenet_path, chelsea_path, explainer):
    import fixtrace

    e = fixtrace.explain(mobilenet_path, chelsea_path, crops=2, device="cpu")
    np.testing.assert_array_equal(e.heatmap, explainer.explain(chelsea_path, crops=2).heatmap)


def test_merged_maps_are_the_sum_of_the_agreeing_crops_maps(explainer, chelsea_path):
    photo = load_photo(chelsea_path)
    made = crops_of(photo.pixels, explainer.graph.image_input, explainer.preset, 5, photo.size)
    e = explainer.explain(chelsea_path, crops=5, method="gradcam")
    alone = explainer.explain_batch(
        [photo.pixels] * len(made),
        np.stack([c.sample for c in made]),
        [c.geometry for c in made],
        target=e.target.index,
        method="gradcam",
    )
    used = set(e.settings["crops_used"])
    expected = unit_scale(sum(found[0].heatmap for crop, found in zip(made, alone) if crop.name in used))
    np.testing.assert_allclose(e.heatmap, expected, atol=1e-5)
    assert not e.has_points


def test_a_class_no_crop_agrees_with_merges_every_crop_with_a_note(explainer, chelsea_path):
    e = explainer.explain(chelsea_path, target=728, crops=5)  # plastic bag
    assert e.target.index == 728 and len(e.settings["crops_used"]) == 5
    assert any("no crop's own top class is" in note for note in e.notes)


def test_many_photos_with_crops_equal_one_by_one(explainer, chelsea_path):
    coffee = chelsea_path.parent / "coffee.jpg"
    items = list(explainer.explain_many([chelsea_path, coffee], crops=2, batch_size=2))
    for item, path in zip(items, [chelsea_path, coffee]):
        alone = explainer.explain(path, crops=2)
        np.testing.assert_array_equal(item.explanations[0].heatmap, alone.heatmap)
        assert item.explanations[0].settings["crops_used"] == alone.settings["crops_used"]


def test_cli_crops(tmp_path, mobilenet_path, chelsea_path):
    done = run_cli("explain", mobilenet_path, chelsea_path, "--crops", "10", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"crops": 10' in (tmp_path / "out" / "chelsea" / "explanation.json").read_text()
    bad = run_cli("explain", mobilenet_path, chelsea_path, "--crops", "10", "--preset", "letterbox", cwd=tmp_path)
    assert bad.returncode == 2 and "letterbox" in bad.stderr and "Traceback" not in bad.stderr
