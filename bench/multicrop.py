#!/usr/bin/env python
"""Multi-crop on the localization benchmark: does the fixations paper's 10-crop option (the label
averaged over the four corners, the centre and their mirrors; the agreeing crops' fixations merged
on the photo) localize better than one centre crop?

Runs on the test split that ``bench/localization.py`` builds (run that first, or at least its
dataset step), with each method's library defaults (nothing tuned here): fixations and Grad-CAM,
each with 1, 2 and 10 crops, on the three Fashion-MNIST canvas models and MobileNetV2 on the
composites.

Usage::

    python bench/localization.py --sweep-only     # builds bench/out/localization/data
    python bench/multicrop.py                     # --images 1000

Writes bench/out/multicrop/results.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from localization import MODELS, OUT  # noqa: E402

from fixtrace import Explainer  # noqa: E402
from fixtrace.evaluate import read_dataset  # noqa: E402
from fixtrace.metrics.localization import box_found, pointing_hit  # noqa: E402
from fixtrace.progress import Progress  # noqa: E402

METHODS = ("fixations", "gradcam")
CROPS = (1, 2, 10)


def measure(explainer: Explainer, items, method: str, crops: int, progress: Progress) -> dict[str, float]:
    """Top-1 classification and localization error, pointing game and ms per image."""
    right_class, located, pointed = [], [], []
    t0 = time.perf_counter()
    for item in items:
        e = explainer.explain(item.image, method=method, crops=crops)
        correct = e.target.index == item.label
        right_class.append(correct)
        located.append(correct and box_found(e.box, item.boxes))
        pointed.append(pointing_hit(e.heatmap, item.boxes))
        progress.step(f"{method} crops={crops}")
    seconds = time.perf_counter() - t0
    return {
        "cls_error": 100 * (1 - float(np.mean(right_class))),
        "loc_error": 100 * (1 - float(np.mean(located))),
        "pointing": 100 * float(np.mean(pointed)),
        "ms": 1e3 * seconds / len(items),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="test images per model (at most)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    lines = [
        f"# Multi-crop on the localization test split ({date.today()}, {platform.node()}, "
        f"{platform.processor() or platform.machine()})",
        "",
        "| model | method | crops | top-1 cls err % | top-1 loc err % | pointing % | ms / image |",
        "|---|---|---|---|---|---|---|",
    ]
    out = ROOT / "bench" / "out" / "multicrop"
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        path, preset = MODELS[name]
        split = "composites-test" if name == "mobilenet_v2" else "fashion-test"
        items = read_dataset(OUT / "data" / split)[: args.images]
        explainer = Explainer(path, preset=preset, device="cpu", method=",".join(METHODS))
        explainer.explain(items[0].image)  # compile the kernels before timing
        progress = Progress(len(items) * len(METHODS) * len(CROPS))
        for method in METHODS:
            for crops in CROPS:
                found = measure(explainer, items, method, crops, progress)
                lines.append(
                    f"| {name} | {method} | {crops} | {found['cls_error']:.1f} | {found['loc_error']:.1f} | "
                    f"{found['pointing']:.1f} | {found['ms']:.1f} |"
                )
                (out / "results.md").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(items)} images", flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
