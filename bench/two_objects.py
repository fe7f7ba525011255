#!/usr/bin/env python
"""Class sensitivity: two real objects of different classes pasted on one real texture; each
object's class explained in turn; counted right when each map's peak lies in that object's box.

The objects are the cat of scikit-image's ``chelsea``, the cup of ``coffee`` and the motorcycle of
``stereo_motorcycle`` (cut to their boxes), two different ones per composite, each in its half
of the centre crop of a 256x256 canvas of ``brick``, ``grass`` or ``gravel``. A composite is kept when both
objects have a class in MobileNetV2's top 5; each is explained for its best-ranked class.

Splits as in bench/localization.py: a validation set (seed 1) on which the fixations variants
are compared and one is chosen, and a test set (seed 2) on which every method is reported once.
A method "points right" on a composite when the peaks of both of its maps are inside the right
boxes; the centre baseline (a Gaussian at the photo's centre) shows what chance gives.

Usage::

    python bench/two_objects.py [--val 150] [--test 300] [--methods fixations,gradcam,...]

Prints markdown tables (validation, then test) and writes bench/out/two_objects/results.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from composites import CROP, SIDE, TEXTURES  # noqa: E402

from fixtrace import Explainer  # noqa: E402
from fixtrace.metrics.localization import centre_gaussian, pointing_hit  # noqa: E402

MODEL = ROOT / "models" / "mobilenet_v2.onnx"
OUT = ROOT / "bench" / "out" / "two_objects"
#: name -> (scikit-image photo, the object's box (x0, y0, x1, y1), the ImageNet classes that count).
OBJECTS = {
    "cat": ("chelsea", (80, 0, 370, 300), set(range(281, 286))),  # tabby .. Egyptian cat
    "cup": ("coffee", (170, 20, 420, 260), {967, 968, 504}),  # espresso, cup, coffee mug
    "motorcycle": ("stereo_motorcycle", (90, 75, 690, 455), {665, 670}),  # moped, motor scooter
}
#: A pasted object fills this fraction of the largest size that fits its half of the crop.
FILL = (0.8, 1.0)
#: The fixations variants compared on validation (rule x conv location).
VARIANTS = tuple(
    f"fixations:rule={rule}:conv_location={location}"
    for location in ("argmax", "centre", "coarse-centre")
    for rule in ("authors", "weighted", "spread")
)
#: The test table: the baseline, the authors' literal rule, the variant chosen on validation
#: (added by ``main``) and every other method with a map per class.
DEFAULT_METHODS = (
    "centre",
    "fixations",  # fixtrace's default variant and blur
    "fixations:rule=authors:conv_location=argmax",
    "cam",
    "gradcam",
    "gradcam++",
    "layercam",
    "xgradcam",
    "saliency",
    "guided-backprop",
    "guided-gradcam",
    "deconvnet",
    "integrated-gradients:steps=16",
    "smoothgrad:samples=16",
)


def composite(rng: np.random.Generator, objects: dict[str, np.ndarray], textures: list[np.ndarray], k: int):
    """One canvas with two different objects side by side (left/right or top/bottom, jittered).

    Returns:
        (uint8 RGB canvas, [(name, box), (name, box)]).
    """
    names = list(objects)
    first, second = rng.choice(len(names), size=2, replace=False)
    texture = textures[k % len(textures)]
    y, x = rng.integers(0, texture.shape[0] - SIDE + 1), rng.integers(0, texture.shape[1] - SIDE + 1)
    canvas = np.repeat(texture[y : y + SIDE, x : x + SIDE, None], 3, axis=2).copy()
    margin = (SIDE - CROP) // 2
    horizontal = bool(rng.integers(0, 2))
    placed = []
    for slot, index in enumerate((first, second)):
        name = names[index]
        crop = objects[name]
        half = CROP // 2
        slot_w, slot_h = (half, CROP) if horizontal else (CROP, half)
        scale = min(slot_w / crop.shape[1], slot_h / crop.shape[0]) * float(rng.uniform(*FILL))
        w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
        # Each object in its half of the crop, anywhere in it.
        x0 = margin + (slot * half if horizontal else 0) + int(rng.integers(0, slot_w - w + 1))
        y0 = margin + (0 if horizontal else slot * half) + int(rng.integers(0, slot_h - h + 1))
        pasted = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR))
        canvas[y0 : y0 + h, x0 : x0 + w] = pasted
        placed.append((name, (x0, y0, x0 + w, y0 + h)))
    return canvas, placed


def build(count: int, seed: int) -> list[dict]:
    """``count`` candidate composites, kept when both objects have a class in the top 5.

    Returns:
        Per kept composite: ``photo``, ``objects`` [(name, box, class)].
    """
    from skimage import data

    objects = {}
    for name, (photo, b, _) in OBJECTS.items():
        image = getattr(data, photo)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
        objects[name] = np.asarray(image)[b[1] : b[3], b[0] : b[2]]
    textures = [np.asarray(getattr(data, t)()) for t in TEXTURES]
    rng = np.random.default_rng(seed)
    explainer = Explainer(MODEL, method="gradcam")
    kept = []
    for k in range(count):
        photo, placed = composite(rng, objects, textures, k)
        top5 = [c.index for c in explainer.explain(photo).top_classes[:5]]
        chosen = []
        for name, box in placed:
            ranked = [c for c in top5 if c in OBJECTS[name][2]]
            if ranked:
                chosen.append((name, box, ranked[0]))
        if len(chosen) == 2:
            kept.append({"photo": photo, "objects": chosen})
    return kept


def peaks_right(method: str, items: list[dict], explainer: Explainer | None, **options) -> list[tuple[bool, bool]]:
    """Per composite, whether each object's map peaks in its box."""
    right = []
    for item in items:
        photo = item["photo"]
        boxes = [box for _, box, _ in item["objects"]]
        if explainer is None:  # the centre baseline: one map for both classes
            heat = centre_gaussian((photo.shape[1], photo.shape[0]))
            right.append(tuple(pointing_hit(heat, [box]) for box in boxes))
            continue
        found = explainer.explain(photo, target=[c for _, _, c in item["objects"]], **options)
        by_class = {e.target.index: e for e in found}
        right.append(tuple(pointing_hit(by_class[c].heatmap, [box]) for _, box, c in item["objects"]))
    return right


def score(method: str, items: list[dict], sigma: float | None = None) -> dict:
    """Counts and time of one method on one split (``sigma``: fixations' blur, None: the default)."""
    explainer = None if method == "centre" else Explainer(MODEL, method=method)
    start = time.perf_counter()
    right = peaks_right(method, items, explainer, **({"sigma": sigma} if sigma else {}))
    both = sum(a and b for a, b in right)
    either = sum(a or b for a, b in right)
    return {
        "method": method + (f" sigma={sigma:g}" if sigma else ""),
        "spec": method,
        "sigma": sigma,
        "images": len(items),
        "both": both,
        "one_or_both": either,
        "maps_right": sum(a + b for a, b in right),
        "seconds": time.perf_counter() - start,
    }


def table(rows: list[dict]) -> str:
    lines = ["| method | both objects right | at least one | maps right |", "|---|---|---|---|"]
    for r in rows:
        n = r["images"]
        lines.append(
            f"| {r['method']} | {r['both']} / {n} ({100 * r['both'] / n:.0f}%) | {r['one_or_both']} / {n} | "
            f"{r['maps_right']} / {2 * n} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=int, default=150, help="candidate composites of the validation split")
    parser.add_argument("--test", type=int, default=300, help="candidate composites of the test split")
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="methods of the test table (besides the chosen variant)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="fixations variants compared on validation")
    parser.add_argument("--sigmas", default="", help="fixations blurs also compared on validation (fractions of the short side)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    splits = {"val": build(args.val, seed=1), "test": build(args.test, seed=2)}
    print(f"kept: validation {len(splits['val'])} of {args.val}, test {len(splits['test'])} of {args.test}", flush=True)
    results: dict[str, list[dict]] = {"val": [], "test": []}
    variants = [v for v in args.variants.split(",") if v]
    sigmas = [float(x) for x in args.sigmas.split(",") if x]
    for variant in variants:
        for sigma in [None, *sigmas]:
            results["val"].append(score(variant, splits["val"], sigma))
    for method in ("gradcam", "centre"):
        results["val"].append(score(method, splits["val"]))
    print("\nvalidation\n" + table(results["val"]), flush=True)
    ranked = sorted(results["val"][: len(variants) * (1 + len(sigmas))], key=lambda r: (-r["both"], -r["maps_right"]))
    chosen = (ranked[0]["spec"], ranked[0]["sigma"]) if ranked else None
    if chosen:
        print(f"chosen on validation: {ranked[0]['method']}", flush=True)
    methods = [(m, None) for m in args.methods.split(",") if m]
    for method, sigma in ([chosen] if chosen and chosen not in methods else []) + methods:
        results["test"].append(score(method, splits["test"], sigma))
        print(f"  {results['test'][-1]['method']}: {results['test'][-1]['both']} of {len(splits['test'])}", flush=True)
    print("\ntest\n" + table(results["test"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
