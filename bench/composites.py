"""Real photos of objects pasted at known boxes on real textures: localization ground truth for an
ImageNet model (models-and-data.md, "Localization ground truth").

The objects are the cat of scikit-image's ``chelsea`` and the cup of ``coffee`` (CC0), cut to
their boxes; the textures are scikit-image's ``brick``, ``grass`` and ``gravel``. Each composite is
256x256 (the ImageNet preset resizes nothing and centre-crops 224), the object placed inside the
crop at a random scale and position. Only composites whose top-1 class is one of the object's
classes are kept, labelled with that class, as in the design notes.

Usage::

    python bench/composites.py --out bench/out/composites --count 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "fashion"))
from canvas import Canvas, write_dataset  # noqa: E402

SIDE, CROP = 256, 224
#: name -> (scikit-image photo, its object's box (x0, y0, x1, y1), the ImageNet classes that count).
OBJECTS = {
    "cat": ("chelsea", (80, 0, 370, 300), set(range(281, 286))),  # tabby .. Egyptian cat
    "cup": ("coffee", (170, 20, 420, 260), {967, 968}),  # espresso, cup
}
TEXTURES = ("brick", "grass", "gravel")
OBJECT_SIDES = (100, 170)


def candidates(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, tuple[int, int, int, int], str]]:
    """``count`` composites as (uint8 RGB photo, box, object name), objects and textures alternating."""
    from skimage import data

    textures = [getattr(data, t)() for t in TEXTURES]
    objects = {
        name: np.asarray(getattr(data, photo)())[box[1] : box[3], box[0] : box[2]] for name, (photo, box, _) in OBJECTS.items()
    }
    made = []
    for k in range(count):
        name = list(OBJECTS)[k % len(OBJECTS)]
        texture = textures[(k // len(OBJECTS)) % len(textures)]
        y, x = rng.integers(0, texture.shape[0] - SIDE + 1), rng.integers(0, texture.shape[1] - SIDE + 1)
        canvas = np.repeat(texture[y : y + SIDE, x : x + SIDE, None], 3, axis=2).copy()
        crop = objects[name]
        long_side = int(rng.integers(OBJECT_SIDES[0], OBJECT_SIDES[1] + 1))
        scale = long_side / max(crop.shape[:2])
        w, h = round(crop.shape[1] * scale), round(crop.shape[0] * scale)
        pasted = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))
        margin = (SIDE - CROP) // 2
        x0 = int(rng.integers(margin, SIDE - margin - w + 1))
        y0 = int(rng.integers(margin, SIDE - margin - h + 1))
        canvas[y0 : y0 + h, x0 : x0 + w] = pasted
        made.append((canvas, (x0, y0, x0 + w, y0 + h), name))
    return made


def build(out: Path, count: int, model: Path, seed: int = 0) -> tuple[int, int]:
    """Write the kept composites as a ``fixtrace evaluate`` dataset.

    Returns:
        (kept, made).
    """
    from fixtrace.metrics import Classifier
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.model.load import load_model

    graph = LayerGraph.from_model(load_model(model))
    classifier = Classifier(graph, None, "imagenet")
    made = candidates(np.random.default_rng(seed), count)
    top1 = classifier.probabilities(np.stack([photo for photo, _, _ in made])).argmax(axis=1)
    kept = [Canvas(photo, int(c), box) for (photo, box, name), c in zip(made, top1) if int(c) in OBJECTS[name][2]]
    write_dataset(out, kept)
    return len(kept), len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "composites")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mobilenet_v2.onnx")
    args = parser.parse_args()
    kept, made = build(args.out, args.count, args.model)
    print(f"kept {kept} of {made} composites (top-1 is the object's class) in {args.out}")


if __name__ == "__main__":
    main()
