"""Readable pictures (issue 15, item 3): percentile white points, colour maps, the legend, the map
faded beyond the centre crop, points and outliers, the signed view and gradient picture, --crop
none, and the note on deconvnet's image-blind maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import fixtrace
from conftest import MODELS, run_cli
from fixtrace import OptionError
from fixtrace.images.preset_choice import choose_preset
from fixtrace.render.colormaps import COLORMAPS, colours, luminance, table
from fixtrace.render.display import Style, gradient_picture, white_point
from fixtrace.render.legend import Legend, draw_legend, legend_height
from fixtrace.render.overlay import overlay

MODEL = MODELS / "mobilenet_v2.onnx"
CHELSEA = MODELS / "images" / "chelsea.jpg"
METHODS = ["gradcam", "guided-backprop", "saliency", "fixations"]


@pytest.fixture(scope="module")
def chelsea():
    """Chelsea explained by a few methods, one forward."""
    return fixtrace.Explainer(MODEL).explain(CHELSEA, methods=METHODS)


def _luma(picture) -> np.ndarray:
    return np.asarray(picture, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


# -- white point ---------------------------------------------------------------------------------


def test_a_hot_outlier_no_longer_hides_the_map():
    """One pixel at 1 over a map below 0.1: at the max the rest stays under a tenth of the scale;
    at the 99th percentile the 90th-percentile pixel is near the top of it."""
    heat = np.random.default_rng(0).uniform(0.0, 0.1, (100, 100)).astype(np.float32)
    heat[50, 50] = 1.0
    p90 = float(np.percentile(heat, 90))
    assert p90 / white_point(heat, 100) < 0.1
    white = white_point(heat, 99)
    assert 0.09 < white < 0.1 and p90 / white >= 0.85
    # drawn: the 90th-percentile pixels get colour at 99 and almost none at 100
    grey = np.full((100, 100, 3), 128, np.uint8)
    near = np.abs(heat - p90) < 0.002
    plain = np.abs(np.asarray(overlay(grey, heat), dtype=int) - 128)[near].mean()
    clipped = np.abs(np.asarray(overlay(grey, heat, gain=1 / white), dtype=int) - 128)[near].mean()
    assert clipped > 2 * plain


def test_white_point_edge_cases():
    assert white_point(np.zeros((5, 5), np.float32), 99) == 1.0
    sparse = np.zeros((100, 100), np.float32)
    sparse[0, :5] = [0.2, 0.4, 0.6, 0.8, 1.0]  # 99 % zeros: the percentile is 0, so the max
    assert white_point(sparse, 99) == 1.0
    signed = np.linspace(-1, 0.5, 1000, dtype=np.float32).reshape(10, 100)
    assert white_point(signed, 50) == pytest.approx(0.375, abs=0.01)  # of the magnitudes: half are under 0.375
    window = np.zeros((10, 10), np.float32)
    window[2:5, 2:5] = 0.5
    assert white_point(window, 50, (2, 2, 5, 5)) == 0.5


def test_gradient_methods_clip_at_99_and_heatmap_npy_stays_raw(chelsea, tmp_path):
    saliency, gradcam = chelsea["saliency"], chelsea["gradcam"]
    assert saliency.display.clip == 99 and gradcam.display.clip == 100
    assert saliency.display_record()["white_point"] < 0.6 and gradcam.display_record()["white_point"] == 1.0
    saliency.save(tmp_path / "s")
    raw = np.load(tmp_path / "s" / "heatmap.npy")
    assert np.array_equal(raw, saliency.heatmap) and raw.max() == pytest.approx(1.0)
    shown = np.asarray(Image.open(tmp_path / "s" / "heatmap.png"))
    assert (shown == 255).mean() >= 0.005  # the top 1 % inside the crop is white
    assert np.percentile(shown, 95) > 2 * np.percentile(raw * 255, 95)
    record = json.loads((tmp_path / "s" / "explanation.json").read_text())
    assert record["display"]["clip"] == 99 and record["display"]["view"] == "abs"
    # the user's clip wins
    assert saliency.picture_style(clip=100).clip == 100 and saliency.white_point(saliency.picture_style(clip=100)) == 1


# -- colour maps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["viridis", "inferno", "gray"])
def test_colour_maps_rise_in_luminance(name):
    lum = luminance(table(name))
    assert table(name).shape == (256, 3) and table(name).dtype == np.uint8
    assert np.diff(lum).min() > -1e-3  # monotone up to 8-bit rounding
    assert lum[-1] - lum[0] > 0.7


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("viridis", (68, 1, 84), (253, 231, 37)),  # the published ends
        ("inferno", (0, 0, 4), (252, 255, 164)),
        ("gray", (0, 0, 0), (255, 255, 255)),
        ("jet", (0, 0, 128), (128, 0, 0)),
    ],
)
def test_colour_map_ends(name, low, high):
    ends = colours(name, np.array([0.0, 1.0]))
    assert np.abs(ends[0].astype(int) - low).max() <= 5 and np.abs(ends[1].astype(int) - high).max() <= 5


def test_overlay_draws_with_the_chosen_colour_map(chelsea):
    gradcam = chelsea["gradcam"]
    pictures = {name: np.asarray(gradcam.overlay(colormap=name, legend=False)) for name in COLORMAPS}
    assert len({p.tobytes() for p in pictures.values()}) == len(COLORMAPS)
    with pytest.raises(OptionError, match="colormap"):
        gradcam.overlay(colormap="rainbow")


# -- legend --------------------------------------------------------------------------------------


def test_the_legend_is_drawn_in_its_corner_only(chelsea):
    gradcam = chelsea["gradcam"]
    plain, legend = np.asarray(gradcam.overlay(legend=False)), np.asarray(gradcam.overlay())
    assert legend.shape == plain.shape == (300, 451, 3)  # the photo's size: still pixel-aligned
    size = legend_height(451, 300)
    changed = np.argwhere(np.any(plain != legend, axis=2))
    assert len(changed) > 0.5 * size * size
    assert changed[:, 0].min() >= 300 - size - size // 4 - 1 and changed[:, 1].min() >= size // 4
    box = legend[300 - size : 300 - size // 4, : changed[:, 1].max()]
    assert (box.max(axis=2) > 240).sum() > 50  # white text on a shaded box
    # the colour bar holds the map's colours, low to high
    bar = legend[300 - size // 4 - size // 2 - 1, ::1]
    assert any(np.abs(bar.astype(int) - [0, 0, 128]).max(axis=1) < 40)


def test_the_legend_says_the_class_and_probability():
    """A longer text makes a wider box; the probability changes the drawn pixels; a name too long is cut."""
    photo = np.full((300, 451, 3), 200, np.uint8)

    def drawn(text: str) -> np.ndarray:
        image = Image.fromarray(photo.copy())
        draw_legend(image, Legend(text))
        return np.asarray(image)

    def right_end(picture: np.ndarray) -> int:
        return int(np.argwhere(np.any(picture != photo, axis=2))[:, 1].max())

    short, long = drawn("cat 70.3% (gradcam)"), drawn("Egyptian cat 70.3% (gradcam)")
    assert right_end(long) > right_end(short) + 20
    assert not np.array_equal(short, drawn("cat 10.3% (gradcam)"))
    assert right_end(drawn("a very long class name " * 10)) < 451 - 2
    # readable on a huge photo (scaled with it), left out on a tiny one
    assert legend_height(4000, 3000) == 180 and legend_height(451, 300) == 18 and legend_height(40, 40) == 0
    tiny = Image.fromarray(np.zeros((40, 40, 3), np.uint8))
    draw_legend(tiny, Legend("cat"))
    assert not np.asarray(tiny).any()


# -- the crop's edge -----------------------------------------------------------------------------


def test_no_hard_seam_at_the_centre_crop(chelsea):
    """Grad-CAM on chelsea: the map fades out beyond the crop instead of stopping at a line. The
    luminance jump across the crop's left and right edges was 5.3 times the photo's own from one
    column to the next; now 1.8 times, a third of the old jump."""
    gradcam = chelsea["gradcam"]
    x0, y0, x1, y1 = gradcam.geometry.view()
    left, right = round(x0), round(x1)
    rows = slice(round(y0) + 10, round(y1) - 30)
    old = _luma(overlay(gradcam.image, gradcam.heatmap))
    new = _luma(gradcam.overlay(legend=False, show_box=False))

    def jump(picture):
        return np.mean([np.abs(picture[rows, x] - picture[rows, x - 1]).mean() for x in (left, right)])

    typical = np.abs(np.diff(_luma(gradcam.image)[rows], axis=1)).mean()
    assert jump(old) > 4 * typical
    assert jump(new) < 2.5 * typical and jump(new) < jump(old) / 2.5
    # outside the crop the photo is grey (its luminance kept), inside it keeps its colour
    outside = np.asarray(gradcam.overlay(legend=False), dtype=int)[rows, : left - 20]
    assert np.abs(outside - outside.mean(axis=2, keepdims=True)).mean() < 8
    assert np.abs(_luma(outside) - _luma(gradcam.image)[rows, : left - 20]).mean() < 2
    # heatmap.npy is still zero where the model saw nothing
    assert not gradcam.heatmap[:, : left - 1].any()


def test_crop_none_feeds_the_whole_photo():
    preset, _ = choose_preset("imagenet", {"crop": "none"}).resolve(fixtrace.Explainer(MODEL).graph)
    assert preset.resize == "exact"
    e = fixtrace.explain(MODEL, CHELSEA, method="gradcam", preset=choose_preset("imagenet", {"crop": "NONE"}))
    assert e.geometry.view() == (0.0, 0.0, 451.0, 300.0)
    assert e.heatmap[:, :5].any() and e.heatmap[:, -5:].any()  # the map covers the whole photo
    with pytest.raises(OptionError, match="crop"):
        choose_preset("imagenet", {"crop": "none", "resize": "short"}, {"crop": "--crop", "resize": "--resize"})
    with pytest.raises(OptionError, match="or none"):
        choose_preset("imagenet", {"crop": "all"})


# -- points, signed view, gradient picture -------------------------------------------------------


def test_points_and_outliers_are_drawn_differently():
    photo = np.full((120, 120, 3), 100, np.uint8)
    heat = np.zeros((120, 120), np.float32)
    drawn = np.asarray(overlay(photo, heat, points=np.array([[30.0, 30.0]]), outliers=np.array([[90.0, 90.0]])))
    assert tuple(drawn[30, 30]) == (255, 255, 255)  # an inlier: a filled white dot
    assert tuple(drawn[90, 90]) == (100, 100, 100)  # an outlier: a hollow ring ...
    ring = drawn[86:95, 86:95].reshape(-1, 3).astype(int)
    assert ((ring[:, 0] > 200) & (ring[:, 1] < 80)).any()  # ... in red


def test_fixations_overlay_shows_inliers_and_outliers(chelsea):
    e = chelsea["fixations"]
    assert (~e.inliers).any() and e.inliers.any()
    with_points, without = np.asarray(e.overlay(show_points=True)), np.asarray(e.overlay())
    assert not np.array_equal(with_points, without)
    x, y = np.round(e.points[e.inliers][0]).astype(int)
    assert with_points[y, x].min() >= 250
    reds = [with_points[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4] for x, y in e.points[~e.inliers]]
    assert all(((r[..., 0].astype(int) > 200) & (r[..., 1] < 100)).any() for r in reds)
    assert e.picture_style(points=True).points and e.display_record()["points"] is False


def test_signed_view_and_gradient_picture(chelsea, tmp_path):
    guided, gradcam = chelsea["guided-backprop"], chelsea["gradcam"]
    assert guided.gradient is not None and guided.gradient.shape == (224, 224, 3)
    signed = guided.overlay(view="signed")
    assert not np.array_equal(np.asarray(signed), np.asarray(guided.overlay()))
    assert guided.picture_style(view="signed").view == "signed"
    assert gradcam.picture_style(view="signed").view == "abs"  # no signed map: its own view
    assert guided.signed_heatmap.min() < 0 < guided.signed_heatmap.max()
    guided.save(tmp_path / "g")
    picture = np.asarray(Image.open(tmp_path / "g" / "gradient.png"))
    # pytorch-grad-cam's deprocess_image, step by step
    g = guided.gradient.astype(np.float64)
    g = g - np.mean(g)
    g = g / (np.std(g) + 1e-5)
    g = np.clip(g * 0.1 + 0.5, 0, 1)
    np.testing.assert_array_equal(picture, np.uint8(g * 255))
    assert picture.shape == (224, 224, 3) and abs(picture.mean() - 127) < 3
    np.testing.assert_array_equal(picture, gradient_picture(guided.gradient))
    gradcam.save(tmp_path / "c")
    assert not (tmp_path / "c" / "gradient.png").exists()


def test_style_is_checked():
    assert Style.checked(colormap="Viridis", clip=99.5) == Style(colormap="viridis", clip=99.5)
    for bad in ({"clip": 0}, {"clip": 101}, {"view": "sideways"}, {"legend": "no"}, {"palette": "jet"}):
        with pytest.raises(OptionError):
            Style.checked(**bad)
    with pytest.raises(OptionError, match="view"):
        fixtrace.explain(MODEL, CHELSEA, method="gradcam", view="upside")


# -- deconvnet's note ----------------------------------------------------------------------------


def test_deconvnet_note_only_without_max_pools():
    notes = fixtrace.Explainer(MODEL, method="deconvnet").method_notes()
    assert len(notes) == 1 and notes[0].startswith("deconvnet: image-blind")
    assert fixtrace.Explainer(MODELS / "fashion" / "vgg.onnx", method="deconvnet", preset="raw").method_notes() == []
    assert fixtrace.Explainer(MODEL, method="guided-backprop").method_notes() == []


def test_cli_pictures_options_and_note(tmp_path):
    proc = run_cli(
        "explain", MODEL, CHELSEA, "--method", "fixations,deconvnet", "--points", "--colormap", "viridis",
        "--clip", "99.5", "--out", tmp_path / "out", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fixtrace: note: deconvnet: image-blind on this model" in proc.stderr
    folder = tmp_path / "out" / "chelsea"
    deconvnet = json.loads((folder / "deconvnet" / "explanation.json").read_text())
    assert deconvnet["notes"][0].startswith("image-blind") and deconvnet["display"]["clip"] == 99.5
    assert (folder / "deconvnet" / "gradient.png").is_file() and not (folder / "fixations" / "gradient.png").exists()
    fixations = json.loads((folder / "fixations" / "explanation.json").read_text())
    assert "notes" not in fixations
    assert fixations["display"] | {"white_point": 0} == {
        "colormap": "viridis", "legend": True, "points": True, "view": "abs", "clip": 99.5, "white_point": 0,
    }  # fmt: skip
    picture = np.asarray(Image.open(folder / "fixations" / "overlay.png"), dtype=int)
    outliers = [(p["x"], p["y"]) for p in fixations["points"] if not p["inlier"]]
    assert outliers and all(
        ((r[..., 0] > 200) & (r[..., 1] < 100)).any()
        for r in (picture[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4] for x, y in outliers)
    )
    bad = run_cli("explain", MODEL, CHELSEA, "--colormap", "rainbow", "--out", tmp_path / "bad", cwd=tmp_path)
    assert bad.returncode == 2 and "colormap" in bad.stderr and "Traceback" not in bad.stderr
