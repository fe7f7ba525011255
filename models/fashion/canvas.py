"""Fashion-MNIST items on cluttered 112x112 canvases, with their exact boxes.

Each canvas holds one whole item (the label) at a random position and scale, on a background of
smooth noise and small crops of *other* items (clutter a classifier must learn to ignore). The
box is the tight box of the pasted item's visible pixels, so localization ground truth is exact.

The items come from Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``:
/usr/share/datasets/fashion-mnist/, MIT licence). Splits: ``train`` uses training items 0..54999,
``val`` items 55000..59999 (never trained on), ``test`` the 10,000 test items.

Usage (writes a dataset folder in the format ``fixtrace evaluate`` reads)::

    python models/fashion/canvas.py --split test --count 1000 --out bench/out/fashion-test
"""

from __future__ import annotations

import argparse
import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path("/usr/share/datasets/fashion-mnist")
SIDE = 112
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLITS = {"train": ("train", 0, 55000), "val": ("train", 55000, 60000), "test": ("t10k", 0, 10000)}
#: Item side on the canvas, in pixels (the 28 px item is resized to this).
ITEM_SIDES = (30, 64)
#: A pixel of the resized item counts as visible above this grey level (box extent).
VISIBLE = 32


@dataclass(frozen=True)
class Canvas:
    """One generated image.

    Attributes:
        pixels: uint8 image, (H, W) grey or (H, W, 3) RGB.
        label: the item's class.
        box: (x0, y0, x1, y1) of the item's visible pixels, x1 and y1 exclusive.
    """

    pixels: np.ndarray
    label: int
    box: tuple[int, int, int, int]


def load_items(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 28, 28) items and int64 (n,) labels of a split.

    Raises:
        FileNotFoundError: the Debian package is not installed.
    """
    prefix, first, last = SPLITS[split]
    images_path, labels_path = DATA / f"{prefix}-images-idx3-ubyte.gz", DATA / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.is_file():
        raise FileNotFoundError(f"{images_path} is missing: apt-get install dataset-fashion-mnist")
    with gzip.open(images_path) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels_path) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images[first:last], labels[first:last]


def make_canvas(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, index: int) -> Canvas:
    """Place item ``index`` on a fresh cluttered canvas.

    Args:
        rng: the random source (the whole dataset is reproducible from its seed).
        items, labels: the split's items (clutter is cut from other items of the same split).
        index: the item to place.

    Returns:
        The canvas, the item's label and box.
    """
    noise = rng.normal(0.0, 1.0, (SIDE // 8, SIDE // 8)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(noise).resize((SIDE, SIDE), Image.Resampling.BICUBIC))
    canvas = np.clip(28.0 + 14.0 * smooth, 0, 255)
    for _ in range(rng.integers(5, 10)):
        other = items[rng.integers(len(items))]
        h, w = rng.integers(8, 15, size=2)
        y, x = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
        crop = other[y : y + h, x : x + w].astype(np.float32) * rng.uniform(0.5, 1.0)
        scale = rng.uniform(1.0, 1.8)
        crop = np.asarray(
            Image.fromarray(crop).resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.Resampling.BILINEAR)
        )
        cy, cx = rng.integers(0, SIDE - crop.shape[0]), rng.integers(0, SIDE - crop.shape[1])
        canvas[cy : cy + crop.shape[0], cx : cx + crop.shape[1]] = np.maximum(
            canvas[cy : cy + crop.shape[0], cx : cx + crop.shape[1]], crop
        )
    side = int(rng.integers(ITEM_SIDES[0], ITEM_SIDES[1] + 1))
    item = np.asarray(Image.fromarray(items[index]).resize((side, side), Image.Resampling.BILINEAR)).astype(np.float32)
    y, x = rng.integers(0, SIDE - side + 1, size=2)
    visible = item >= VISIBLE
    region = canvas[y : y + side, x : x + side]
    region[visible] = item[visible]  # the item is opaque where it is visible
    rows, cols = np.nonzero(visible)
    box = (int(x + cols.min()), int(y + rows.min()), int(x + cols.max() + 1), int(y + rows.max() + 1))
    return Canvas(np.clip(canvas, 0, 255).astype(np.uint8), int(labels[index]), box)


def canvases(split: str, count: int, seed: int = 0) -> list[Canvas]:
    """``count`` canvases of a split, items taken in a seeded random order."""
    items, labels = load_items(split)
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    order = rng.permutation(len(items))[:count] if count <= len(items) else rng.integers(0, len(items), count)
    return [make_canvas(rng, items, labels, int(i)) for i in order]


def write_dataset(folder: Path, made: list[Canvas]) -> Path:
    """Write PNGs and ``boxes.csv`` (image,label,x0,y0,x1,y1), the layout ``fixtrace evaluate`` reads.

    Returns:
        The boxes file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    boxes = folder / "boxes.csv"
    with boxes.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "x0", "y0", "x1", "y1"])
        for k, canvas in enumerate(made):
            name = f"{k:05d}.png"
            Image.fromarray(canvas.pixels).save(folder / name)
            writer.writerow([name, canvas.label, *canvas.box])
    return boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=list(SPLITS), default="test")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    boxes = write_dataset(args.out, canvases(args.split, args.count, args.seed))
    print(f"wrote {args.count} canvases and {boxes}")


if __name__ == "__main__":
    main()
