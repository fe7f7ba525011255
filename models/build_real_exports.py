#!/usr/bin/env python
"""Build the real-model ONNX exports of models/real/ into a cache folder and compare each with its
own framework: the ops, the top-1 on the model's photo and models/images/*.jpg, Grad-CAM's Pearson r
against the framework's on the same layer, and which fixtrace methods run.

Usage (the exporters' frameworks and the models' packages installed; see models/LICENSES.md)::

    python models/build_real_exports.py CACHE_DIR [--only fer efficientnet-lite0-legacy ...]

Nothing is downloaded: every model comes from an installed package (or is trained here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # fixtrace and exporters/, then models/real/

from real import compare, efficientnet_lite, fer, flax_cnn, nsfwjs  # noqa: E402
from real.common import MissingPackage, RealModel  # noqa: E402

BUILDS: dict[str, Callable[[Path], RealModel]] = {
    "fer": fer.build,
    "efficientnet-lite0-legacy": lambda cache: efficientnet_lite.build(cache, dynamo=False),
    "efficientnet-lite0-dynamo": lambda cache: efficientnet_lite.build(cache, dynamo=True),
    "flax-shapes": flax_cnn.build,
    "nsfwjs-mobilenetv2": nsfwjs.build,
}


def report(model: RealModel) -> list[str]:
    """Lines describing one built model against its framework."""
    from fixtrace import Explainer
    from fixtrace.errors import FixtraceError
    from fixtrace.images.load import load_image

    explainer = Explainer(model.path, preset=model.preset, method="all")
    lines = [f"{model.name}: {model.exporter}, {model.path.stat().st_size / 1e6:.2f} MB", f"  ops {model.ops}"]
    photos = {"own photo": model.photo} | {p.name: load_image(p) for p in sorted((HERE / "images").glob("*.jpg"))}
    for name, pixels in photos.items():
        ours, theirs = compare.scores(model, explainer, compare.sample(explainer, pixels))
        top, their_top = int(ours.argmax()), int(theirs.argmax())
        lines.append(
            f"  {name}: fixtrace top-1 {top} {model.labels[top]!r}, framework {their_top}; "
            f"max |score diff| {abs(ours - theirs).max():.2e}"
        )
    try:
        found = compare.gradcam_agreement(model, explainer, model.photo)
        lines.append(
            f"  Grad-CAM r = {found.r:.9f}, 1 - r = {1 - found.r:.1e} (classes {found.targets}) on {found.layer} = framework {found.framework_layer} "
            f"(layer max diff {found.layer_diff:.1e})"
        )
    except FixtraceError as exc:
        lines.append(f"  Grad-CAM: fixtrace cannot: {exc}")
    lines.append(f"  runnable: {', '.join(s.label for s in explainer.specs)}")
    lines += [f"  not runnable: {label}: {why}" for label, why in explainer.skipped.items()]
    lines += [f"  {key}: {value}" for key, value in model.notes.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="folder for the .onnx files (created)")
    parser.add_argument("--only", nargs="+", choices=list(BUILDS), default=list(BUILDS))
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        try:
            model = BUILDS[name](args.cache)
        except MissingPackage as exc:
            print(f"{name}: skipped: {exc}")
            continue
        print("\n".join(report(model)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
