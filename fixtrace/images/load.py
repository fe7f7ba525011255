"""Load any image a user may hand over and turn it into 8-bit RGB, with clear errors."""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fixtrace.errors import ImageError, first_line
from fixtrace.files import check_input_file

#: Largest image accepted, in pixels (a 100-megapixel photo); larger ones are refused before decoding.
MAX_PIXELS = 100_000_000
#: Photos with more pixels are decoded reduced by a whole factor (JPEGs by the decoder itself), so
#: that memory stays bounded; their maps and points are still on the full photo (``Photo.size``).
MAX_DECODED_PIXELS = 24_000_000
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class Photo:
    """A decoded photo.

    Attributes:
        pixels: uint8 (h, w, 3) RGB; a copy reduced by a whole factor when the photo has more
            than MAX_DECODED_PIXELS pixels.
        size: the photo's own (width, height), EXIF rotation applied.
    """

    pixels: np.ndarray
    size: tuple[int, int]

    @classmethod
    def of(cls, pixels: np.ndarray) -> Photo:
        """A photo whose pixels are at full size."""
        return cls(pixels, (int(pixels.shape[1]), int(pixels.shape[0])))


#: What the loaders take: a path, encoded bytes, a PIL image, an array, or a ``Photo`` already decoded.
ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray | Photo


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as an RGB uint8 array (H, W, 3), at full size.

    Grey, palette, CMYK and other modes are converted; transparency is composited on white;
    16-bit and float images are scaled to 8 bits; EXIF rotation is applied.

    Args:
        source: a path, encoded bytes, a PIL image, or an array (H, W), (H, W, 1|3|4) of
            uint8, uint16 or float in [0, 1].
        max_pixels: refuse larger images (checked from the header, before decoding).

    Returns:
        uint8 array (H, W, 3).

    Raises:
        ImageError: missing or not a regular file, unreadable, corrupt, empty or too large.
    """
    return load_photo(source, max_pixels, max_decoded=None).pixels


def load_photo(source: ImageSource, max_pixels: int = MAX_PIXELS, max_decoded: int | None = MAX_DECODED_PIXELS) -> Photo:
    """Read an image as ``load_image`` does, decoding a very large one reduced.

    Args:
        source: as ``load_image``, or a ``Photo`` (returned as it is).
        max_pixels: refuse larger images (checked from the header, before decoding).
        max_decoded: decode photos with more pixels than this reduced by the smallest whole
            factor that brings them under it (None: never; arrays are never reduced).

    Returns:
        The pixels and the photo's own size.

    Raises:
        ImageError: as ``load_image``.
    """
    if isinstance(source, Photo):  # decoded ahead (a prefetching reader)
        return source
    if isinstance(source, np.ndarray):
        return Photo.of(_from_array(source))
    if isinstance(source, Image.Image):
        return _decode(lambda: source, "the given image", max_pixels, max_decoded, close=False)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("the given bytes are empty (0 bytes): not an image")
        return _decode(
            lambda: _open_pil(io.BytesIO(bytes(source))), "the given bytes", max_pixels, max_decoded, head=bytes(source[:16])
        )
    if isinstance(source, (str, os.PathLike)):
        path = check_input_file(source, "image file", ImageError)
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes): not an image")
        with open(path, "rb") as f:
            head = f.read(16)
        return _decode(lambda: _open_pil(path), str(path), max_pixels, max_decoded, head=head)
    raise ImageError(f"an image must be a path, bytes, PIL image or numpy array, not {type(source).__name__}")


_PIL_LIMIT_LOCK = threading.Lock()


def _open_pil(fp) -> Image.Image:
    # Pillow's own decompression-bomb guard would refuse (or warn about) large images before
    # our size check can name the size; it is lifted only while the header is read.
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(open_image, where: str, max_pixels: int, max_decoded: int | None, close: bool = True, head: bytes = b"") -> Photo:
    """Open and decode with every decoder failure turned into one ImageError line."""
    try:
        image = open_image()
        try:
            return _from_pil(image, where, max_pixels, max_decoded)
        finally:
            if close:
                image.close()
    except ImageError:
        raise
    except UnidentifiedImageError:
        kind = _signature(head)
        if kind in ("HEIC", "HEIF"):
            raise ImageError(
                f"{where} is a {kind} photo, which Pillow reads only with a plugin (pillow-heif); convert it to JPEG or PNG"
            ) from None
        if kind:
            raise ImageError(f"{where} starts like a {kind} file but is corrupt (Pillow cannot read its header)") from None
        raise ImageError(f"{where} is not an image format Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{where} is too large to decode safely (over {max_pixels:,} pixels)") from None
    except MemoryError:
        raise ImageError(f"{where} does not fit in memory once decoded") from None
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error, ...) on bad data
        raise ImageError(f"{where} is corrupt or truncated: {first_line(exc)}") from None


def _from_pil(image: Image.Image, where: str, max_pixels: int, max_decoded: int | None) -> Photo:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{where} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    if width == 0 or height == 0:
        raise ImageError(f"{where} is empty ({width}x{height})")
    factor = 1 if max_decoded is None else math.ceil(math.sqrt(width * height / max_decoded))
    if factor > 1 and image.format == "JPEG":
        image.draft(image.mode, (math.ceil(width / factor), math.ceil(height / factor)))  # decoded at 1/2, 1/4 or 1/8
    image.load()
    if factor > 1 and max_decoded is not None:
        left = math.ceil(math.sqrt(image.size[0] * image.size[1] / max_decoded))
        if left > 1:
            if image.mode not in _REDUCIBLE:
                image = image.convert("I" if image.mode.startswith("I;16") else "RGBA")
            image = image.reduce(left)
    orientation = _orientation(image)
    image = _upright(image)
    size = (height, width) if orientation in _ROTATED else (width, height)
    return Photo(_rgb(image), size)


def _signature(head: bytes) -> str:
    """The image format a file's first bytes announce ("" when none)."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}.get(brand, "")
    for magic, kind in (
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF8", "GIF"),
        (b"BM", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    ):
        if head.startswith(magic):
            return kind
    return "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else ""


#: Modes Image.reduce handles directly.
_REDUCIBLE = {"L", "LA", "La", "PA", "RGB", "RGBA", "RGBa", "I", "F", "CMYK", "YCbCr", "LAB", "HSV"}


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a corrupt EXIF block: the photo is still a photo
        return 1


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (as it is when that tag is corrupt)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a corrupt EXIF block: the photo is still a photo
        return image


def _rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _from_array(np.asarray(image))
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts these only to their plain twins
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _from_array(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == object or a.dtype.kind in "cSUVMm":
        raise ImageError(f"unsupported image dtype {a.dtype}: an image array holds numbers (uint8, uint16 or float)")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), not {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"the image array is empty: {a.shape}")
    a = _to_uint8(a)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[:, :, 3:].astype(np.float32) / 255.0
        return (a[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(a.dtype.newbyteorder("="))  # big-endian 16-bit (I;16B, TIFF) compares as uint16 below
        # 16-bit data (PNG I;16, TIFF) scaled to 8 bits; wider ints are assumed to hold 16-bit values too.
        top = 65535.0 if a.max(initial=0) > 255 or a.dtype == np.uint16 else 255.0
        return np.clip(np.round(a.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("the image holds NaN or infinite values")
        scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported image dtype {a.dtype}")
