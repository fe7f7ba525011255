"""Unit tests of image loading (fixtrace.images.load) and preprocessing (preprocess, Geometry).

Expected tensors are computed independently here with PIL + numpy, from torchvision's
documented semantics (Resize(256): short side to 256, long side ``int(256 * long / short)``, no
resize when the short side already is 256; CenterCrop(224): offset ``int(round((size - 224) / 2))``;
ToTensor: /255; Normalize: (x - mean) / std).
"""

from __future__ import annotations

import io
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtrace.errors import ImageError
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import MAX_PIXELS, load_image
from fixtrace.images.preprocess import PRESETS, Preset, get_preset, input_size, preprocess
from fixtrace.model.layer_graph import ImageInput
from hostile.groups.images import encode, png_header

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
NCHW_224 = ImageInput("input", (None, 3, 224, 224), "NCHW")


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return np.asarray(Image.open(CHELSEA).convert("RGB"))


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A small random colour photo, 40 wide and 30 high."""
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# load_image: sources and modes
# --------------------------------------------------------------------------------------------


def test_sources_agree(chelsea):
    data = CHELSEA.read_bytes()
    for source in (CHELSEA, str(CHELSEA), data, bytearray(data), Image.open(CHELSEA), chelsea):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (300, 451, 3)
        np.testing.assert_array_equal(out, chelsea)


def test_rgb_and_grey_modes(rgb):
    np.testing.assert_array_equal(load_image(Image.fromarray(rgb)), rgb)
    grey = Image.fromarray(rgb).convert("L")
    g = np.asarray(grey)
    for out in (load_image(grey), load_image(encode(grey, "PNG"))):
        assert out.shape == (30, 40, 3)
        np.testing.assert_array_equal(out, np.repeat(g[:, :, None], 3, axis=2))
    one_bit = Image.fromarray(g > 127)
    assert one_bit.mode == "1"
    np.testing.assert_array_equal(load_image(one_bit)[:, :, 0], np.where(g > 127, 255, 0))


def test_transparency_is_composited_on_white(rgb):
    alpha = np.zeros((30, 40), np.uint8)
    alpha[:, 20:] = 255
    alpha[:, 10:20] = 128
    rgba = np.dstack([rgb, alpha])
    for source in (Image.fromarray(rgba, "RGBA"), encode(Image.fromarray(rgba, "RGBA"), "PNG")):
        out = load_image(source)
        assert out.shape == (30, 40, 3)
        assert (out[:, :10] == 255).all()
        np.testing.assert_array_equal(out[:, 20:], rgb[:, 20:])
        expected = rgb[:, 10:20] * (128 / 255) + 255 * (1 - 128 / 255)
        assert np.abs(out[:, 10:20].astype(float) - expected).max() <= 1
    la = Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), "LA")
    out = load_image(la)
    assert (out[:, :10] == 255).all() and (out[:, 20:, 0] == rgb[:, 20:, 0]).all()


def test_palette_modes(rgb):
    palette = Image.fromarray(rgb).convert("P")
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(load_image(palette), expected)
    np.testing.assert_array_equal(load_image(encode(palette, "GIF")), expected)
    # A palette image whose index 0 is transparent: those pixels become white.
    index = np.zeros((30, 40), np.uint8)
    index[:, 20:] = 1
    transparent = Image.fromarray(index, "P")
    transparent.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    out = load_image(encode(transparent, "PNG", transparency=0))
    assert (out[:, :20] == 255).all() and (out[:, 20:] == [200, 100, 50]).all()


def test_cmyk(rgb):
    cmyk = Image.fromarray(rgb).convert("CMYK")
    np.testing.assert_array_equal(load_image(cmyk), rgb)
    jpeg = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(jpeg)).mode == "CMYK"
    out = load_image(jpeg)
    assert out.shape == (30, 40, 3) and np.abs(out.astype(float) - rgb).mean() < 12


def test_sixteen_bit_grey(rgb):
    values = rgb[:, :, 0].astype(np.uint16) * 257
    image = Image.fromarray(values)
    png = encode(image, "PNG")
    assert Image.open(io.BytesIO(png)).mode == "I;16"
    for source in (image, png, encode(image, "TIFF")):
        out = load_image(source)
        np.testing.assert_array_equal(out, np.repeat(rgb[:, :, :1], 3, axis=2))
    # Dark 16-bit data stays dark: 16-bit is scaled by 65535, not by 255, whatever its maximum.
    dark = Image.fromarray(np.full((4, 5), 200, np.uint16))
    assert (load_image(encode(dark, "PNG")) <= 1).all()


def test_big_endian_sixteen_bit_is_scaled_like_little_endian():
    big = np.full((4, 5), 200, dtype=">u2")
    assert (load_image(big) <= 1).all()
    tiff = encode(Image.new("I;16B", (5, 4), 200), "TIFF")
    assert (load_image(tiff) <= 1).all()


def test_int32_and_float_modes():
    i = Image.fromarray(np.array([[0, 65535]], np.int32), "I")
    np.testing.assert_array_equal(load_image(i)[0, :, 0], [0, 255])
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    np.testing.assert_array_equal(load_image(f)[0, :, 0], [0, 128, 255])


def test_premultiplied_grey_alpha_mode():
    la = Image.new("LA", (5, 4), (100, 255)).convert("La")
    np.testing.assert_array_equal(load_image(la), np.full((4, 5, 3), 100, np.uint8))


def test_exif_orientation_is_applied():
    """A 30x20 photo, white top-left corner, saved with Orientation 6 (shown rotated 90 deg clockwise):
    the loaded array is 20 wide, 30 high, with the white corner top-right."""
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:5, :5] = 255
    photo = Image.fromarray(pixels)
    exif = photo.getexif()
    exif[0x0112] = 6
    for fmt in ("JPEG", "PNG"):
        out = load_image(encode(photo, fmt, exif=exif.tobytes()))
        assert out.shape == (30, 20, 3), fmt
        assert out[:5, -5:].mean() > 240 and out[:5, :5].mean() < 15 and out[-5:, -5:].mean() < 15, fmt
    exif[0x0112] = 3  # 180 degrees
    out = load_image(encode(photo, "PNG", exif=exif.tobytes()))
    assert out.shape == (20, 30, 3) and out[-5:, -5:].mean() == 255 and out[:5, :5].mean() == 0


# --------------------------------------------------------------------------------------------
# load_image: arrays
# --------------------------------------------------------------------------------------------


def test_uint8_arrays(rgb):
    np.testing.assert_array_equal(load_image(rgb), rgb)
    np.testing.assert_array_equal(load_image(rgb[:, ::-1]), rgb[:, ::-1])  # not contiguous
    grey = rgb[:, :, 0]
    expected = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(load_image(grey), expected)
    np.testing.assert_array_equal(load_image(grey[:, :, None]), expected)  # (H, W, 1)


def test_uint16_arrays():
    a = np.array([[0, 257, 32896, 65535, 200]], np.uint16)
    np.testing.assert_array_equal(load_image(a)[0, :, 0], [0, 1, 128, 255, 1])
    np.testing.assert_array_equal(load_image(a[:, :, None])[0, :, 1], [0, 1, 128, 255, 1])


def test_float_and_bool_and_int_arrays():
    unit = np.array([[0.0, 0.25, 1.0, -0.5]], np.float32)
    np.testing.assert_array_equal(load_image(unit)[0, :, 0], [0, 64, 255, 0])
    wide = np.array([[0.0, 100.0, 255.0, 300.0]])
    np.testing.assert_array_equal(load_image(wide)[0, :, 2], [0, 100, 255, 255])
    np.testing.assert_array_equal(load_image(np.array([[True, False]]))[0, :, 0], [255, 0])
    np.testing.assert_array_equal(load_image(np.array([[0, 17, 255]], np.int64))[0, :, 0], [0, 17, 255])
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.array([[0.0, np.nan]]))
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_image(np.array([[0.0, np.inf]]))


def test_rgba_array_composited_on_white(rgb):
    alpha = np.zeros((30, 40, 1), np.uint8)
    alpha[:, 20:] = 255
    out = load_image(np.concatenate([rgb, alpha], axis=2))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert (out[:, :20] == 255).all()
    np.testing.assert_array_equal(out[:, 20:], rgb[:, 20:])
    rgba16 = np.concatenate([rgb, alpha], axis=2).astype(np.uint16) * 257
    np.testing.assert_array_equal(load_image(rgba16), out)


@pytest.mark.parametrize("shape", [(5,), (4, 5, 2), (4, 5, 5), (2, 4, 5, 3), (0, 5), (4, 0, 3), ()])
def test_bad_array_shapes(shape):
    with pytest.raises(ImageError, match="image array"):
        load_image(np.zeros(shape, np.uint8))


def test_bad_dtype_and_type():
    with pytest.raises(ImageError, match="dtype"):
        load_image(np.zeros((4, 5), np.complex64))
    with pytest.raises(ImageError, match="not int"):
        load_image(42)


# --------------------------------------------------------------------------------------------
# load_image: missing, corrupt, too large
# --------------------------------------------------------------------------------------------


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nothere.jpg")
    with pytest.raises(ImageError, match="is a folder, not a file"):
        load_image(tmp_path)
    data = CHELSEA.read_bytes()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 3])
    bad = tmp_path / "random.jpg"
    bad.write_bytes(np.random.default_rng(5).bytes(3000))
    with pytest.raises(ImageError, match=f"{bad} is not an image format"):
        load_image(bad)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_size_limit_names_size_and_limit():
    with pytest.raises(ImageError, match=r"451x300 = 135,300 pixels; the limit is 100,000"):
        load_image(CHELSEA, max_pixels=100_000)
    with pytest.raises(ImageError, match=r"451x300 .*the limit is 1,000$"):
        load_image(Image.open(CHELSEA), max_pixels=1_000)
    assert load_image(CHELSEA, max_pixels=135_300).shape == (300, 451, 3)
    with pytest.raises(ImageError, match=r"empty \(0x5\)|is empty"):
        load_image(Image.new("RGB", (0, 5)))


def test_huge_image_refused_quickly_from_its_header():
    start = time.perf_counter()
    with pytest.raises(ImageError, match="100,000,000") as info:
        load_image(png_header(20000, 20000))
    assert time.perf_counter() - start < 1.0
    assert "truncated" not in str(info.value)  # refused before decoding
    assert MAX_PIXELS == 100_000_000


def test_huge_image_message_names_its_size():
    with pytest.raises(ImageError, match=r"20000x20000 = 400,000,000 pixels; the limit is 100,000,000"):
        load_image(png_header(20000, 20000))


def test_no_pillow_warning_between_the_two_limits():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="15000x10000"):
            load_image(png_header(15000, 10000))
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------------------------
# preprocess and Geometry
# --------------------------------------------------------------------------------------------


def torchvision_imagenet(photo: np.ndarray) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Resize(256) + CenterCrop(224) + ToTensor + Normalize, torchvision's PIL path, in numpy.

    Returns (tensor (3, 224, 224), resized (w, h), crop (left, top))."""
    image = Image.fromarray(photo)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short != 256:
        new_long = int(256 * long / short)
        image = image.resize((256, new_long) if w <= h else (new_long, 256), Image.Resampling.BILINEAR)
    rw, rh = image.size
    top, left = int(round((rh - 224) / 2.0)), int(round((rw - 224) / 2.0))
    x = np.asarray(image, dtype=np.float64)[top : top + 224, left : left + 224] / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1), (rw, rh), (left, top)


def random_photo(width: int, height: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (256, 256), (600, 400), (100, 80)])
def test_imagenet_matches_torchvision(size):
    photo = random_photo(*size)
    tensor, geometry = preprocess(photo, NCHW_224, PRESETS["imagenet"])
    expected, resized, crop = torchvision_imagenet(photo)
    assert tensor.dtype == np.float32 and tensor.shape == (3, 224, 224) and tensor.flags.c_contiguous
    assert (geometry.resized, geometry.crop) == (resized, crop)
    np.testing.assert_allclose(tensor, expected, atol=1e-5, rtol=0)


def test_imagenet_on_chelsea_geometry(chelsea):
    tensor, geometry = preprocess(chelsea, NCHW_224, PRESETS["imagenet"])
    assert tensor.shape == (3, 224, 224)
    assert geometry.original == (451, 300) and geometry.input == (224, 224)
    assert geometry.resized[1] == 256 and geometry.crop[1] == 16  # short side 256, crop 224 from its middle
    assert abs(geometry.resized[0] - 451 * 256 / 300) < 1


def test_imagenet_on_chelsea_matches_torchvision(chelsea):
    tensor, geometry = preprocess(chelsea, NCHW_224, PRESETS["imagenet"])
    expected, resized, crop = torchvision_imagenet(chelsea)
    assert (geometry.resized, geometry.crop) == (resized, crop) == ((384, 256), (80, 16))
    np.testing.assert_allclose(tensor, expected, atol=1e-5, rtol=0)


def test_centre_crop_offset_matches_torchvision():
    photo = random_photo(387, 256)
    tensor, geometry = preprocess(photo, NCHW_224, PRESETS["imagenet"])
    expected, resized, crop = torchvision_imagenet(photo)
    assert geometry.crop == crop == (82, 16)
    np.testing.assert_allclose(tensor, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset", ["imagenet", "tf"])
@pytest.mark.parametrize("size", [(451, 300), (300, 451), (224, 224), (1000, 300), (97, 61)])
def test_geometry_maps_input_centre_to_photo_centre(preset, size):
    _, geometry = preprocess(random_photo(*size), NCHW_224, PRESETS[preset])
    # The input's centre lies between pixels 111 and 112 of 224.
    ((x, y),) = geometry.to_original(np.array([111.5]), np.array([111.5]))
    one_pixel = (size[0] / geometry.resized[0], size[1] / geometry.resized[1])  # a resized pixel, on the photo
    assert abs(x - (size[0] - 1) / 2) <= one_pixel[0]
    assert abs(y - (size[1] - 1) / 2) <= one_pixel[1]


def test_geometry_exact_resize_corners():
    g = Geometry(original=(448, 224), resized=(224, 224), crop=(0, 0), input=(224, 224))
    np.testing.assert_allclose(g.to_original(np.array([0, 223]), np.array([0, 223])), [[0.5, 0.0], [446.5, 223.0]])
    clipped = Geometry(original=(10, 10), resized=(224, 224), crop=(0, 0), input=(224, 224))
    assert clipped.to_original(np.array([0, 223]), np.array([0, 223])).tolist() == [[0.0, 0.0], [9.0, 9.0]]


def test_geometry_follows_a_feature():
    """A white square on a black photo: where it lands in the tensor maps back onto the square."""
    photo = np.zeros((300, 451, 3), np.uint8)
    photo[100:130, 300:330] = 255
    tensor, geometry = preprocess(photo, NCHW_224, PRESETS["imagenet"])
    rows, cols = np.nonzero(tensor[0] > 0)
    xy = geometry.to_original(rows, cols)
    assert 298 <= xy[:, 0].min() and xy[:, 0].max() <= 331
    assert 98 <= xy[:, 1].min() and xy[:, 1].max() <= 131
    centre = xy.mean(axis=0)
    assert abs(centre[0] - 314.5) < 1.5 and abs(centre[1] - 114.5) < 1.5


def test_layouts_and_channels(chelsea):
    nchw, _ = preprocess(chelsea, NCHW_224, PRESETS["imagenet"])
    nhwc, g = preprocess(chelsea, ImageInput("x", (None, 224, 224, 3), "NHWC"), PRESETS["imagenet"])
    assert nhwc.shape == (224, 224, 3) and g.input == (224, 224)
    np.testing.assert_array_equal(nhwc, nchw.transpose(1, 2, 0))

    grey, _ = preprocess(chelsea, ImageInput("x", (1, 1, 64, 64), "NCHW"), PRESETS["raw"])
    assert grey.shape == (1, 64, 64)
    colour, _ = preprocess(chelsea, ImageInput("x", (1, 3, 64, 64), "NCHW"), PRESETS["raw"])
    luma = np.tensordot(np.array([0.299, 0.587, 0.114]), colour, axes=1)
    np.testing.assert_allclose(grey[0], luma, atol=1e-5)

    grey_nhwc, g = preprocess(chelsea, ImageInput("x", (None, 32, 48, 1), "NHWC"), PRESETS["imagenet"])
    assert grey_nhwc.shape == (32, 48, 1) and g.input == (48, 32)
    assert grey_nhwc.min() >= (0 - 0.485) / 0.229 - 1e-6 and grey_nhwc.max() <= (1 - 0.485) / 0.229 + 1e-6

    symbolic, g = preprocess(chelsea, ImageInput("x", (None, 3, None, None), "NCHW"), PRESETS["imagenet"])
    assert symbolic.shape == (3, 224, 224) and g.input == (224, 224)
    assert input_size(ImageInput("x", (None, 3, None, None), "NCHW"), PRESETS["imagenet"]) == (224, 224)

    wide, g = preprocess(chelsea, ImageInput("x", (1, 3, 120, 160), "NCHW"), PRESETS["tf"])
    assert wide.shape == (3, 120, 160) and g.resized == (160, 120) and g.crop == (0, 0)


def test_caffe_is_bgr_minus_mean():
    photo = random_photo(256, 256, seed=3)  # short side 256 already: no resize, crop 16..240
    tensor, geometry = preprocess(photo, NCHW_224, PRESETS["caffe"])
    assert geometry.resized == (256, 256) and geometry.crop == (16, 16)
    crop = photo[16:240, 16:240].astype(np.float64)
    expected = np.stack([crop[:, :, 2] - 104.0, crop[:, :, 1] - 117.0, crop[:, :, 0] - 123.0])
    np.testing.assert_allclose(tensor, expected, atol=1e-4, rtol=0)
    flat = np.zeros((300, 400, 3), np.uint8)
    flat[:] = (10, 20, 200)  # R, G, B
    tensor, _ = preprocess(flat, NCHW_224, PRESETS["caffe"])
    np.testing.assert_allclose(tensor[:, 100, 100], [200 - 104, 20 - 117, 10 - 123], atol=1e-4)


def test_tf_and_raw_presets():
    flat = np.zeros((50, 70, 3), np.uint8)
    flat[:, :35] = 255
    tf, g = preprocess(flat, NCHW_224, PRESETS["tf"])
    assert g.resized == (224, 224) and g.crop == (0, 0)
    assert tf[:, :, 0].min() == pytest.approx(1.0) and tf[:, :, -1].max() == pytest.approx(-1.0)
    raw, _ = preprocess(flat, NCHW_224, PRESETS["raw"])
    assert raw.min() == 0.0 and raw.max() == pytest.approx(1.0)


def test_get_preset():
    assert get_preset("caffe") is PRESETS["caffe"]
    custom = Preset("mine", "exact", 1.0, False, 1.0, (0, 0, 0), (1, 1, 1))
    assert get_preset(custom) is custom
    with pytest.raises(ValueError, match="unknown preprocessing preset 'nope'"):
        get_preset("nope")


def test_sliver_photo_does_not_blow_up_memory():
    sliver = np.full((1, 300, 3), 128, np.uint8)
    tracemalloc.start()
    try:
        try:
            tensor, _ = preprocess(sliver, NCHW_224, PRESETS["imagenet"])
            assert tensor.shape == (3, 224, 224)
        except ImageError:
            pass  # refusing an absurd aspect ratio is fine too
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak / 1e6:.0f} MB for a 0.6 MB tensor"
