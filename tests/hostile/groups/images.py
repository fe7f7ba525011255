"""Image formats and corruptions: what a folder of real-world photos holds."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from hostile.case import ITEM_FAILED, OK, Case, Context, Expect, fails, ok
from hostile.corpus import CHELSEA, MOBILENET

OUTPUTS = ("overlay.png", "heatmap.npy", "heatmap.png", "explanation.json")


def _photo() -> Image.Image:
    return Image.open(CHELSEA).convert("RGB")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    """The image encoded as ``fmt`` (Pillow's save options)."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A grey PNG that declares ``width`` x ``height`` but carries almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _with_exif_orientation(photo: Image.Image, value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return encode(photo, "JPEG", exif=exif.tobytes())


def _valid_files() -> dict[str, bytes]:
    photo = _photo()
    grey = photo.convert("L")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    rgb = np.asarray(photo)
    palette_t = photo.convert("P")
    palette_t.info["transparency"] = 0
    frames = [photo.rotate(k * 10) for k in range(6)]
    files = {
        "rgb.png": encode(photo, "PNG"),
        "grey.png": encode(grey, "PNG"),
        "grey_alpha.png": encode(photo.convert("LA"), "PNG"),
        "rgba.png": encode(rgba, "PNG"),
        "transparent.png": encode(Image.new("RGBA", photo.size, (0, 0, 0, 0)), "PNG"),
        "palette.png": encode(photo.convert("P"), "PNG"),
        "palette_transparency.png": encode(palette_t, "PNG"),
        "one_bit.png": encode(photo.convert("1"), "PNG"),
        "grey16.png": encode(Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257), "PNG"),
        "grey16_dark.png": encode(Image.fromarray(rgb[:, :, 1].astype(np.uint16)), "PNG"),
        "rgb.jpg": encode(photo, "JPEG"),
        "grey.jpg": encode(grey, "JPEG"),
        "cmyk.jpg": encode(photo.convert("CMYK"), "JPEG"),
        "progressive.jpg": encode(photo, "JPEG", progressive=True),
        "optimized.jpg": encode(photo, "JPEG", optimize=True),
        "quality_1.jpg": encode(photo, "JPEG", quality=1),
        "subsampling_444.jpg": encode(photo, "JPEG", subsampling=0),
        "icc_srgb.jpg": encode(photo, "JPEG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()),
        "trailing_garbage.jpg": encode(photo, "JPEG") + b"\x00garbage" * 100,
        "two_jpegs.jpg": encode(photo, "JPEG") + encode(grey, "JPEG"),
        "bad_orientation.jpg": _with_exif_orientation(photo, 9),
        "rgb.gif": encode(photo, "GIF"),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "rgb.bmp": encode(photo, "BMP"),
        "grey.bmp": encode(grey, "BMP"),
        "one_bit.bmp": encode(photo.convert("1"), "BMP"),
        "rgba.bmp": encode(rgba, "BMP"),
        "rgb.tif": encode(photo, "TIFF"),
        "cmyk.tif": encode(photo.convert("CMYK"), "TIFF"),
        "lzw.tif": encode(photo, "TIFF", compression="tiff_lzw"),
        "jpeg_compressed.tif": encode(photo, "TIFF", compression="jpeg"),
        "grey16.tif": encode(Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), "TIFF"),
        "float.tif": encode(Image.fromarray(rgb[:, :, 0].astype(np.float32) / 255.0), "TIFF"),
        "float_255.tif": encode(Image.fromarray(rgb[:, :, 0].astype(np.float32)), "TIFF"),
        "int32.tif": encode(Image.fromarray(rgb[:, :, 0].astype(np.int32) * 100), "TIFF"),
        "rgba.tif": encode(rgba, "TIFF"),
        "multipage.tif": encode(frames[0], "TIFF", save_all=True, append_images=frames[1:3]),
        "lossy.webp": encode(photo, "WEBP"),
        "lossless.webp": encode(photo, "WEBP", lossless=True),
        "alpha.webp": encode(rgba, "WEBP"),
        "animated.webp": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "rgb.ppm": encode(photo, "PPM"),
        "grey.pgm": encode(grey, "PPM"),
        "rgb.tga": encode(photo, "TGA"),
        "rgb.pcx": encode(photo, "PCX"),
        "rgb.ico": encode(photo.resize((64, 64)), "ICO"),
        "rgb.jp2": encode(photo, "JPEG2000"),
        "rgb.avif": encode(photo, "AVIF"),
        "lab.tif": encode(photo.convert("LAB"), "TIFF"),
        "one_pixel.png": encode(photo.resize((1, 1)), "PNG"),
        "two_pixels.jpg": encode(photo.resize((2, 2)), "JPEG"),
        "tall.png": encode(photo.resize((40, 300)), "PNG"),
        "png_named.jpg": encode(photo, "PNG"),
        "jpeg_named.png": encode(photo, "JPEG"),
        "no_extension": encode(photo, "JPEG"),
        "UPPER.JPG": encode(photo, "JPEG"),
    }
    for orientation in range(2, 9):
        files[f"exif_orientation_{orientation}.jpg"] = _with_exif_orientation(photo, orientation)
    return files


def _bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a fragment of the error)."""
    photo = _photo()
    jpeg, png = encode(photo, "JPEG"), encode(photo, "PNG")
    rgb = np.asarray(photo)
    nan_float = rgb[:, :, 0].astype(np.float32) / 255.0
    nan_float[5, 5] = np.nan
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside the IHDR chunk's CRC
    files = {
        "empty.jpg": (b"", "empty"),
        "text.png": (b"not a photo\n", "not an image format"),
        "page.jpg": (b"<html><body>404 Not Found</body></html>", "not an image format"),
        "archive.jpg": (b"PK\x03\x04" + bytes(200), "not an image format"),
        "vector.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image format"),
        "bad_crc.png": (bytes(bad_crc), "corrupt"),
        "huge_header.png": (png_header(20000, 20000), "100,000,000"),
        "over_pillow_limit.png": (png_header(15000, 10000), "100,000,000"),
        "sliver.png": (encode(photo.resize((3, 1000)), "PNG"), "aspect ratio"),
        "nan.tif": (encode(Image.fromarray(nan_float), "TIFF"), "NaN"),
        "photo.heic": (b"\x00\x00\x00\x18ftypheic" + bytes(500), "HEIC"),
    }
    for fraction in (0.1, 0.5, 0.9, 0.99):
        files[f"truncated_{int(fraction * 100)}.jpg"] = (jpeg[: int(len(jpeg) * fraction)], "truncated")
        files[f"truncated_{int(fraction * 100)}.png"] = (png[: int(len(png) * fraction)], "truncated")
    for fmt, suffix in (("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif")):
        data = encode(photo, fmt)
        files[f"truncated.{suffix}"] = (data[: len(data) // 2], "truncated")
    return files


FLIPPED = {"jpg": ("JPEG", 12), "png": ("PNG", 8), "gif": ("GIF", 3), "bmp": ("BMP", 3), "tif": ("TIFF", 3), "webp": ("WEBP", 3)}


def build(folder: Path) -> None:
    for name, data in _valid_files().items():
        (folder / name).write_bytes(data)
    for name, (data, _) in _bad_files().items():
        (folder / name).write_bytes(data)
    rng = np.random.default_rng(11)
    photo = _photo()
    for suffix, (fmt, count) in FLIPPED.items():
        data = encode(photo, fmt)
        for k in range(count):
            flipped = bytearray(data)
            for _ in range(1 + k % 3):
                at = int(rng.integers(0, min(len(flipped), 2048))) if k % 2 else int(rng.integers(0, len(flipped)))
                flipped[at] ^= int(rng.integers(1, 256))
            (folder / f"flipped_{k}.{suffix}").write_bytes(bytes(flipped))


def _explain(name: str, *extra: str) -> tuple[str, ...]:
    return ("explain", str(MOBILENET), f"{{in}}/images/{name}", "--out", "{out}", *extra)


def _big(name: str, size: tuple[int, int], fmt: str):
    def prepare(ctx: Context) -> None:
        photo = _photo().resize(size)
        photo.save(ctx.run / name, fmt, **({"quality": 85} if fmt == "JPEG" else {"compress_level": 1}))

    return prepare


def cases() -> list[Case]:
    fast_valid = {
        "rgba.png",
        "grey16.png",
        "cmyk.jpg",
        "exif_orientation_6.jpg",
        "animated.gif",
        "float.tif",
        "rgb.avif",
        "one_pixel.png",
        "no_extension",
        "transparent.png",
    }
    out = []
    for name in _valid_files():
        stem = name.rsplit(".", 1)[0] if "." in name else name
        out.append(Case(f"images/{name}", ok(*(f"{stem}/{f}" for f in OUTPUTS)), _explain(name), fast=name in fast_valid))
    fast_bad = {"empty.jpg", "huge_header.png", "truncated_50.jpg", "nan.tif", "sliver.png", "bad_crc.png"}
    for name, (_, fragment) in _bad_files().items():
        out.append(
            Case(
                f"images/{name}",
                fails(ITEM_FAILED, fragment, name, absent=(name.rsplit(".", 1)[0],)),
                _explain(name),
                fast=name in fast_bad,
            )
        )
    clean = Expect((OK, ITEM_FAILED))
    for suffix, (_, count) in FLIPPED.items():
        out += [
            Case(f"images/flipped_{k}.{suffix}", clean, _explain(f"flipped_{k}.{suffix}"), fast=k == 0 and suffix == "jpg")
            for k in range(count)
        ]
    out += [
        Case(
            "images/big_12000x8000.jpg",
            ok("big/overlay.png", "big/heatmap.npy"),
            ("explain", str(MOBILENET), "{run}/big.jpg", "--out", "{out}"),
            prepare=_big("big.jpg", (12000, 8000), "JPEG"),
            timeout=300,
        ),
        Case(
            "images/big_9999x10000.png",
            ok("big/overlay.png", "big/heatmap.npy"),
            ("explain", str(MOBILENET), "{run}/big.png", "--out", "{out}", "--method", "gradcam"),
            prepare=_big("big.png", (9999, 10000), "PNG"),
            timeout=300,
        ),
        Case(
            "images/medium_4000x3000.jpg",
            ok("medium/overlay.png"),
            ("explain", str(MOBILENET), "{run}/medium.jpg", "--out", "{out}", "--method", "saliency"),
            prepare=_big("medium.jpg", (4000, 3000), "JPEG"),
            timeout=300,
        ),
    ]
    return out
