"""Load any image a user may hand over and turn it into 8-bit RGB, with clear errors."""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fixtrace.errors import ImageError, first_line

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Largest image accepted, in pixels (a 100-megapixel photo); larger ones are refused before decoding.
MAX_PIXELS = 100_000_000


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as an RGB uint8 array (H, W, 3).

    Grey, palette, CMYK and other modes are converted; transparency is composited on white;
    16-bit and float images are scaled to 8 bits; EXIF rotation is applied.

    Args:
        source: a path, encoded bytes, a PIL image, or an array (H, W), (H, W, 1|3|4) of
            uint8, uint16 or float in [0, 1].
        max_pixels: refuse larger images (checked from the header, before decoding).

    Returns:
        uint8 array (H, W, 3).

    Raises:
        ImageError: missing, unreadable, corrupt, empty or too large.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source, "the given image", max_pixels)
    if isinstance(source, (bytes, bytearray)):
        return _open(io.BytesIO(bytes(source)), "the given bytes", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        return _open(path, str(path), max_pixels)
    raise ImageError(f"an image must be a path, bytes, PIL image or numpy array, not {type(source).__name__}")


_PIL_LIMIT_LOCK = threading.Lock()


def _open(fp, where: str, max_pixels: int) -> np.ndarray:
    try:
        # Pillow's own decompression-bomb guard would refuse (or warn about) large images before
        # our size check can name the size; it is lifted only while the header is read.
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(fp)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with image:
            return _from_pil(image, where, max_pixels)
    except UnidentifiedImageError:
        raise ImageError(f"{where} is not an image format Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{where} is too large to decode safely (over {max_pixels:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{where} is corrupt or truncated: {first_line(exc)}") from None


def _from_pil(image: Image.Image, where: str, max_pixels: int) -> np.ndarray:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{where} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    if width == 0 or height == 0:
        raise ImageError(f"{where} is empty ({width}x{height})")
    image.load()
    image = ImageOps.exif_transpose(image)
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
