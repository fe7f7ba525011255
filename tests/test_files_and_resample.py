"""The safety helpers (fixtrace.files, fixtrace.model.external_data) and the banded resampling
(fixtrace.render.resample), each against an independent reference."""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import map_coordinates

from fixtrace import files
from fixtrace.errors import ModelError, OutputError
from fixtrace.files import Checkpoint, UniqueNames, inside, replace_folder, safe_name, strict_json
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import load_photo
from fixtrace.images.preprocess import get_preset, preprocess
from fixtrace.model.layer_graph import ImageInput
from fixtrace.render.box import box_from_heatmap
from fixtrace.render.heatmap import heatmap
from fixtrace.render.overlay import jet, overlay
from fixtrace.render.resample import bilinear, pixel_centres, unit_scale

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"


@pytest.mark.parametrize("grid, out", [((7, 5), (37, 29)), ((600, 500), (37, 29)), ((1, 6), (5, 40)), ((1, 1), (3, 3))])
def test_bilinear_equals_scipy_map_coordinates(grid, out):
    """Up- and downsampling, coordinates inside, on the edge and outside: scipy's order-1 'constant'."""
    g = np.random.default_rng(0).normal(size=grid).astype(np.float32)
    rows = np.linspace(-1.5, grid[0] + 0.5, out[0])
    cols = np.linspace(-1.2, grid[1] + 0.3, out[1])
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    expected = map_coordinates(g, [rr, cc], order=1, mode="constant", cval=0.0)
    np.testing.assert_allclose(bilinear(g, rows, cols), expected, atol=1e-6)


@pytest.mark.parametrize(
    "grid, out, shift",
    [((7, 5), (37, 29), 0.0), ((64, 96), (300, 451), -0.3), ((600, 500), (37, 29), 0.0), ((4, 4), (9, 9), -9.0)],
)
def test_bilinear_unit_is_unit_scale_of_the_map_bit_for_bit(grid, out, shift):
    """The one-pass scaled map (upsampling: its max found without writing) is ``unit_scale`` of the
    plain one, to the bit: negatives 0, max 1; an all-negative map gives zeros."""
    g = (np.random.default_rng(3).normal(size=grid) + shift).astype(np.float32)
    rows = np.linspace(-1.5, grid[0] + 0.5, out[0])
    cols = np.linspace(-1.2, grid[1] + 0.3, out[1])
    expected = unit_scale(bilinear(g, rows, cols))
    ours = bilinear(g, rows, cols, unit=True)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.int32), expected.view(np.int32))
    assert ours.max() == (1.0 if shift > -5 else 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bilinear_unit_keeps_numpys_rules_for_nan_and_inf(bad):
    """A NaN or an infinity in the map gives what ``unit_scale`` gives (NaN propagates through
    numpy's max; nothing is scaled by a NaN top), not a map scaled by the finite values."""
    g = np.random.default_rng(5).random((8, 9)).astype(np.float32)
    g[3, 4] = bad
    rows, cols = np.linspace(0, 7, 40), np.linspace(0, 8, 45)
    with np.errstate(invalid="ignore"):
        expected = unit_scale(bilinear(g, rows, cols))
        ours = bilinear(g, rows, cols, unit=True)
    np.testing.assert_array_equal(ours, expected)


def test_heatmap_upsampling_equals_pil_bilinear():
    """The heat map's grid reaches the photo as PIL's BILINEAR resize would take it there."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, [451, 300], size=(40, 2))
    counts = rng.integers(1, 5, 40).astype(np.float64)
    ours = heatmap(xy, counts, (451, 300), 0.05)
    grid = np.asarray(Image.fromarray(ours).resize((96, 64), Image.Resampling.BOX))  # any small grid will do below
    small = grid.astype(np.float32)
    expected = np.asarray(Image.fromarray(small).resize((451, 300), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(bilinear(small, pixel_centres(300, 64), pixel_centres(451, 96)), expected, atol=1e-5)


def test_to_photo_equals_the_map_coordinates_reference():
    """Geometry.to_photo, banded, equals a whole-photo map_coordinates with the same edge rule."""
    geometry = Geometry(original=(451, 300), resized=(337, 224), crop=(56, 0), input=(224, 224))
    grid = np.random.default_rng(2).random((224, 224)).astype(np.float32)
    sx, sy = 337 / 451, 224 / 300
    rows = (np.arange(300) + 0.5) * sy - 0.5
    cols = (np.arange(451) + 0.5) * sx - 0.5 - 56
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    rr = np.where((rr > -0.5) & (rr < 0), 0.0, np.where((rr > 223) & (rr < 223.5), 223.0, rr))
    cc = np.where((cc > -0.5) & (cc < 0), 0.0, np.where((cc > 223) & (cc < 223.5), 223.0, cc))
    expected = map_coordinates(grid, [rr, cc], order=1, mode="constant", cval=0.0)
    np.testing.assert_allclose(geometry.to_photo(grid), expected, atol=1e-6)


@pytest.mark.parametrize("strength", [0.3, 0.6, 1.0])
def test_overlay_blend_tables_equal_the_float_blend(strength):
    """The fixed-point blend is the float formula (photo * (1 - a) + jet * a, a = strength *
    sqrt(heat)) within 6 of 255 per channel, white and black photos and heat 0 and 1 included."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    photo[:10], photo[10:20] = 255, 0
    heat = rng.random((97, 131)).astype(np.float32)
    heat[:, :5], heat[:, 5:10] = 1.0, 0.0
    alpha = (strength * np.sqrt(heat))[..., None]
    exact = photo.astype(np.float32) * (1 - alpha) + jet(heat).astype(np.float32) * alpha
    drawn = np.asarray(overlay(photo, heat, strength=strength)).astype(np.float32)
    assert np.abs(drawn - exact).max() <= 6
    assert np.abs(drawn - exact).mean() < 0.5


@pytest.mark.parametrize(
    "signed, gain, dtype", [(False, 1.0, np.float32), (False, 2.5, np.float32), (True, 1.0, np.float32), (False, 1.3, np.float64)]
)
def test_the_one_pass_blend_equals_the_numpy_table_blend(signed, gain, dtype):
    """The numba blend writes the bytes of the table blend in numpy (uint16 temporaries): heat
    outside the levels clipped, white pixels rounding to 256 capped at 255, a float64 map scaled
    in float64; a NaN is drawn as heat 0 (never read outside the tables)."""
    from fixtrace.kernels.cpu.blend import blend_levels
    from fixtrace.render.overlay import _FRACTION, LEVELS, _blend_tables

    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)
    photo[:5] = 255
    heat = rng.uniform(-1.2 if signed else -0.2, 1.2, (53, 71)).astype(dtype)
    keep, colour = _blend_tables(0.6, "jet", signed)
    scale = np.float32(gain * (LEVELS - 1) / (2.0 if signed else 1.0))
    offset = np.float32((LEVELS - 1) / 2.0 + 0.5 if signed else 0.5)
    level = np.clip(heat * scale + offset, 0.0, LEVELS - 1).astype(np.intp)
    mixed = photo.astype(np.uint16) * keep[level][..., None] + colour[level] + (1 << (_FRACTION - 1))
    expected = np.minimum(mixed >> _FRACTION, 255).astype(np.uint8)
    out = np.empty_like(photo)
    blend_levels(heat, photo, keep, colour, scale, offset, _FRACTION, out)
    np.testing.assert_array_equal(out, expected)
    assert (mixed >> _FRACTION).max() == 256  # the cap is exercised
    heat[7, 9] = np.nan
    blend_levels(heat, photo, keep, colour, scale, offset, _FRACTION, out)
    np.testing.assert_array_equal(out[7, 9], np.minimum((photo[7, 9].astype(np.int64) * keep[0] + colour[0] + 64) >> 7, 255))


def test_box_on_a_huge_map_is_the_exact_box_within_its_stride():
    small = np.zeros((80, 120), np.float32)
    small[20:50, 30:100] = 1.0
    small[60:70, 5:15] = 1.0
    huge = bilinear(small, pixel_centres(8000, 80), pixel_centres(12000, 120))  # 96 MP: cut on a stride of 2
    x0, y0, x1, y1 = box_from_heatmap(huge, 0.5)  # the region [2000, 5000) x [3000, 10000), within 2 px
    assert abs(x0 - 3000) <= 2 and abs(y0 - 2000) <= 2 and abs(x1 - 10000) <= 2 and abs(y1 - 5000) <= 2


def test_reduced_decoding_keeps_the_photo_geometry():
    """A photo decoded reduced maps to the model input like the full one, and its tensor barely differs."""
    full = load_photo(CHELSEA, max_decoded=None)
    reduced = load_photo(CHELSEA, max_decoded=40_000)
    assert full.size == reduced.size == (451, 300)
    assert reduced.pixels.shape[0] * reduced.pixels.shape[1] <= 40_000 < 451 * 300
    spec, preset = ImageInput("input", (None, 3, 224, 224), "NCHW"), get_preset("imagenet")
    a, geometry_a = preprocess(full.pixels, spec, preset, full.size)
    b, geometry_b = preprocess(reduced.pixels, spec, preset, reduced.size)
    assert geometry_a == geometry_b
    assert float(np.abs(a - b).mean()) < 0.1  # the same photo, resampled from a quarter-size decode


@pytest.mark.parametrize(
    "text, name",
    [
        ("..", "image"),
        (".", "image"),
        ("...", "image"),
        (".hidden", "hidden"),
        ("a/../b", "a_.._b"),
        ("new\nline", "new_line"),
        ("\x1b[31mred", "31mred"),
        ("cat 😺", "cat"),
        ("x" * 300, "x" * 60),
        ("summary.json", "summary.json"),
        ("ünï", "ünï"),
    ],
)
def test_safe_name(text, name):
    assert safe_name(text) == name
    assert "/" not in safe_name(text) and not safe_name(text).startswith(".")


def test_safe_name_is_nfc_and_unique_names_ignore_case():
    assert safe_name(unicodedata.normalize("NFD", "é")) == "é"
    names = UniqueNames()
    assert [names.take(t) for t in ("Cat", "cat", "CAT", "summary.json", "cat_2")] == [
        "Cat",
        "cat_2",
        "CAT_3",
        "summary.json_2",
        "cat_2_2",
    ]


def test_inside_refuses_every_way_out(tmp_path):
    folder, outside = tmp_path / "model", tmp_path / "secret"
    folder.mkdir()
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"x")
    os.symlink(outside / "w.bin", folder / "link.bin")
    os.symlink(outside, folder / "dirlink")
    assert inside(folder, "sub/../w.bin", "w", ModelError) == Path(os.path.realpath(folder / "w.bin"))
    for location, fragment in [
        ("../secret/w.bin", "leads outside"),
        ("/etc/passwd", "absolute"),
        ("C:\\x.bin", "absolute"),
        ("..\\secret\\w.bin", "leads outside"),
        ("link.bin", "symbolic link"),
        ("dirlink/w.bin", "symbolic link"),
        ("", "no location"),
        ("a\0b", "NUL"),
    ]:
        with pytest.raises(ModelError, match=fragment):
            inside(folder, location, "w", ModelError)
    assert inside(folder, "link.bin", "w", ModelError, also_inside=[outside]).name == "w.bin"


def test_strict_json_is_standard():
    text = strict_json(
        {"a": float("nan"), "b": [float("inf"), np.float32(0.5), np.int64(3)], "c": "bad\udcff", Path("p"): Path("q")}
    )

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [None, 0.5, 3], "c": "bad\\udcff", "p": "q"}


def test_replace_folder_is_all_or_nothing(tmp_path):
    target = tmp_path / "photo"
    replace_folder(target, lambda f: (f / "a.txt").write_text("old"))

    def fail(folder):
        (folder / "a.txt").write_text("new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="the disk is full") as info:
        replace_folder(target, fail)
    assert info.value.fatal
    assert (target / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["photo"]
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="a file is in the way"):
        replace_folder(tmp_path / "file", lambda f: None)


@pytest.mark.parametrize(
    "error, fatal",
    [
        (OSError("50176 requested and 6112 written"), True),  # numpy's short write: no errno
        (OSError(28, "No space left on device"), True),
        (OSError(13, "Permission denied"), False),
        (OSError("the 3 requested and 3 written were refused by the server"), False),
    ],
)
def test_a_short_write_counts_as_a_full_disk(tmp_path, error, fatal):
    """With writer threads, the free space a failed write needed may be back by the time it is
    checked: numpy's short write is itself the sign of a full disk."""
    assert files.output_error(error, tmp_path / "x").fatal is fatal


def test_checkpoint_rewrites_rarely_and_keeps_the_last_change(monkeypatch):
    """10,000 items 10 ms apart, each rewrite taking 1 ms per 100 items written: the first item is
    written at once, then at most once a second and never more than 5% of the time; the final
    flush writes the last item and a second flush writes nothing."""
    clock = [0.0]
    monkeypatch.setattr(files.time, "monotonic", lambda: clock[0])
    written: list[int] = []
    items: list[int] = []

    def write() -> None:
        written.append(len(items))
        clock[0] += len(items) * 1e-5

    checkpoint = Checkpoint(write)
    for k in range(10_000):
        items.append(k)
        checkpoint.changed()
        clock[0] += 0.01
    assert written[0] == 1
    spent = sum(n * 1e-5 for n in written)
    assert spent <= 0.05 * clock[0] + 0.1
    assert len(written) <= clock[0] + 1
    checkpoint.flush()
    checkpoint.flush()
    assert written[-1] == 10_000 and written.count(10_000) == 1


def test_written_files_and_folders_get_the_usual_permissions(tmp_path):
    """Outputs are readable as a plain open() or mkdir() would have made them, not tempfile's 0600 / 0700."""
    umask = os.umask(0)
    os.umask(umask)
    files.write_text_atomic(tmp_path / "summary.json", "{}")
    replace_folder(tmp_path / "out", lambda folder: (folder / "a.txt").write_text("x"))
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask
