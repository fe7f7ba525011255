"""Real photos for the backend benchmarks: the bundled ones and scikit-image's (when installed),
each as several crops and mirror images, so that a run sees many different real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_SKIMAGE = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "logo",
    "camera",
    "moon",
    "brick",
    "grass",
    "gravel",
    "horse",
    "text",
    "page",
)
_SCALES = (0.9, 0.75, 0.6, 0.5)


def sources() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 photo) for every real photo available offline."""
    from fixtrace.images.load import load_image

    photos = [(p.stem, load_image(p)) for p in sorted((ROOT / "models" / "images").glob("*.jpg"))]
    try:
        from skimage import data
    except ImportError:
        return photos
    for name in _SKIMAGE:
        photos.append((name, load_image(np.asarray(getattr(data, name)()))))
    return photos


def variants(photo: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The photo, and crops at four scales from the four corners and the centre; each also mirrored."""
    h, w = photo.shape[:2]
    out = [("full", photo)]
    for s in _SCALES:
        ch, cw = int(h * s), int(w * s)
        corners = {
            "tl": (0, 0),
            "tr": (0, w - cw),
            "bl": (h - ch, 0),
            "br": (h - ch, w - cw),
            "c": ((h - ch) // 2, (w - cw) // 2),
        }
        out += [(f"{s}{k}", photo[y : y + ch, x : x + cw]) for k, (y, x) in corners.items()]
    return out + [(f"{name}-flip", np.ascontiguousarray(p[:, ::-1])) for name, p in out]


def real_photos(limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` (name, photo) pairs, interleaving the sources so any prefix is varied."""
    per_source = [[(f"{name}-{v}", p) for v, p in variants(photo)] for name, photo in sources()]
    mixed = [item for row in zip(*per_source) for item in row]
    return mixed[:limit] if limit else mixed
