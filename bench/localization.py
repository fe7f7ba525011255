#!/usr/bin/env python
"""Localization benchmark: every method x every model; settings chosen on validation, reported on test.

Models: the three Fashion-MNIST canvas CNNs of models/fashion (VGG-, ResNet-, Inception-style) and
the bundled MobileNetV2 on real photos pasted on real textures (bench/composites.py).

1. Validation (Fashion items 55000..59999 never trained on; composites of another seed): for
   fixations, every conv location x rule x outlier removal x blur sigma x box threshold; for every other
   method, every box threshold. The setting with the lowest top-1 localization error averaged
   over the four models is chosen, per method (so each method gets its best threshold).
2. Test (Fashion test items; composites): ``fixtrace.evaluate`` with the chosen settings, every
   metric, deletion/insertion on the first ``--perturbation`` images.
3. Sanity: cascading model randomisation on a few test images; mean rank correlation of the map
   with the original after the top layer and after all layers are re-initialised.

Usage::

    apt-get install dataset-fashion-mnist     # the Fashion-MNIST items
    pip install -e ".[test]"                  # scikit-image: the composites' photos and textures
    python bench/localization.py              # --val 500 --test 1000 --perturbation 100

Writes bench/out/localization/ (datasets, per-model tables, sweep.json, results.md). A cached
sweep.json is completed with the variants and methods it lacks; delete it to sweep afresh.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "fashion"))
sys.path.insert(0, str(ROOT / "bench"))

import canvas  # noqa: E402
import composites  # noqa: E402

from fixtrace import Explainer  # noqa: E402
from fixtrace.errors import FixtraceError  # noqa: E402
from fixtrace.evaluate import evaluate, make_maps, parse_method, read_dataset, save, to_markdown  # noqa: E402
from fixtrace.evaluate.methods import BASELINE, DEFAULT_METHODS  # noqa: E402
from fixtrace.evaluate.run import MapResult  # noqa: E402
from fixtrace.files import safe_name  # noqa: E402
from fixtrace.metrics import model_randomisation  # noqa: E402
from fixtrace.metrics.localization import box_found  # noqa: E402
from fixtrace.model.load import load_model  # noqa: E402
from fixtrace.progress import Progress  # noqa: E402
from fixtrace.render.box import BOX_REGION, BOX_REGIONS, BOX_THRESHOLDS, box_from_heatmap  # noqa: E402
from fixtrace.render.heatmap import DEFAULT_SIGMA, heatmap, inlier_mask  # noqa: E402

OUT = ROOT / "bench" / "out" / "localization"
FASHION = ("vgg", "resnet", "inception")
MODELS = {name: (ROOT / "models" / "fashion" / f"{name}.onnx", "raw") for name in FASHION}
MODELS["mobilenet_v2"] = (ROOT / "models" / "mobilenet_v2.onnx", "imagenet")
SIGMAS = (0.02, 0.03, 0.05, 20 / 256, 0.12, 0.18, 0.25)
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Methods swept for their box threshold only (fixations are swept apart). Integrated Gradients and
#: SmoothGrad walk once per step or sample: 16 here instead of their 50 keeps them near a tenth of
#: the run (at 50 they would take most of it; bench/RESULTS.md has their time per map).
OTHERS = (
    *(m for m in DEFAULT_METHODS if m not in ("fixations", "fixations:centre", "fixations:all-points", BASELINE)),
    "gradcam++",
    "layercam",
    "xgradcam",
    "integrated-gradients:steps=16",
    "smoothgrad:samples=16",
    BASELINE,
)
SANITY_METHODS = ("fixations", "gradcam", "saliency", "guided-backprop")
#: The fixations variants swept: conv location x how the dense/pool steps pass counts down.
LOCATIONS = ("argmax", "centre", "coarse-centre")
RULES = ("authors", "spread")  # "weighted" lost to "spread" in every location on bench/two_objects.py
#: The test row of fixtrace's defaults (the headline's fixations column).
LIBRARY = "fixations (library default)"


def datasets(val: int, test: int, composites_count: int) -> dict[str, dict[str, Path]]:
    """Build (once) the validation and test folders of each model."""
    folders = {}
    fashion = {"val": OUT / "data" / "fashion-val", "test": OUT / "data" / "fashion-test"}
    for split, count in (("val", val), ("test", test)):
        if not (fashion[split] / "boxes.csv").is_file() or len(read_dataset(fashion[split])) != count:
            canvas.write_dataset(fashion[split], canvas.canvases(split, count, seed=1))
    photos = {"val": OUT / "data" / "composites-val", "test": OUT / "data" / "composites-test"}
    for split, seed, count in (("val", 1, composites_count // 2), ("test", 0, composites_count)):
        if not (photos[split] / "boxes.csv").is_file():
            kept, made = composites.build(photos[split], count, MODELS["mobilenet_v2"][0], seed)
            print(f"composites {split}: kept {kept} of {made}", flush=True)
    for name in MODELS:
        folders[name] = photos if name == "mobilenet_v2" else fashion
    return folders


def loc_error(results: list[MapResult], heats: list[np.ndarray], threshold: float, region: str) -> float:
    """Top-1 localization error (%) of these maps at one box threshold, the box around ``region``."""
    right = [
        r.predicted == r.item.label and box_found(box_from_heatmap(h, threshold, region), r.item.boxes)
        for r, h in zip(results, heats)
    ]
    return 100.0 * (1.0 - float(np.mean(right)))


def box_settings():
    """(label suffix, threshold, region) of every box setting swept."""
    for threshold, region in itertools.product(THRESHOLDS, BOX_REGIONS):
        yield f"box={threshold}:region={region}", threshold, region


def variants() -> list[str]:
    """The fixations variants swept, as specs (the rule always named: the library's default changes)."""
    return [f"fixations:{location}:rule={rule}" for location, rule in itertools.product(LOCATIONS, RULES)]


def named_rules(sweeps: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """A cached sweep with the authors' rule named in its fixations settings: sweeps made while
    it was the library's default left it out (``fixations:argmax:sigma=...``)."""

    def named(label: str) -> str:
        flags = label.split(":")
        if flags[0] == "fixations" and len(flags) > 1 and flags[1] in LOCATIONS and not any(f.startswith("rule=") for f in flags):
            flags.insert(2, "rule=authors")
        return ":".join(flags)

    return {model: {named(label): error for label, error in errors.items()} for model, errors in sweeps.items()}


def missing(done: dict[str, float]) -> list[str]:
    """The fixations variants and OTHERS methods ``done`` (a cached sweep of one model) lacks."""
    return [
        m
        for m in [*variants(), *OTHERS]
        if not any(label.startswith(f"{m}:sigma=") or label.startswith(f"{m}:box=") for label in done)
    ]


def sweep_model(name: str, items, progress: Progress, todo: list[str]) -> dict[str, float]:
    """Validation top-1 localization error of the ``todo`` variants and methods on one model: label -> %."""
    path, preset = MODELS[name]
    errors: dict[str, float] = {}
    for variant in [v for v in variants() if v in todo]:
        spec = parse_method(f"{variant}:all-points")
        results = [r for r in make_maps(path, items, spec, preset=preset) if isinstance(r, MapResult)]
        progress.step(f"{name} {variant}")
        for outliers, sigma in itertools.product((True, False), SIGMAS):
            heats = []
            for r in results:
                e = r.explanation
                size = (r.photo.shape[1], r.photo.shape[0])
                keep = inlier_mask(e.points, e.counts, size) if outliers else np.ones(len(e.points), bool)
                heats.append(heatmap(e.points[keep], e.counts[keep], size, sigma))
            flags = variant + ("" if outliers else ":all-points")
            for suffix, threshold, region in box_settings():
                errors[f"{flags}:sigma={sigma:.4g}:{suffix}"] = loc_error(results, heats, threshold, region)
    for method in [m for m in OTHERS if m in todo]:
        try:
            results = [r for r in make_maps(path, items, parse_method(method), preset=preset) if isinstance(r, MapResult)]
        except FixtraceError as exc:  # a layer method without its head (CAM on an FC head) cannot run
            print(f"{name} {method}: not available: {exc}", flush=True)
            results = []
        progress.step(f"{name} {method}")
        for suffix, threshold, region in box_settings():
            if results:
                errors[f"{method}:{suffix}"] = loc_error(results, [r.heatmap for r in results], threshold, region)
    return errors


def base_method(label: str) -> str:
    """The method a swept setting belongs to (its row in the test table)."""
    flags = label.split(":")
    keep = [f for f in flags if not f.startswith(("box=", "sigma=", "rule=", "region=")) and f not in (*LOCATIONS, "all-points")]
    return ":".join(keep)


def choose(sweeps: dict[str, dict[str, float]], region: str = BOX_REGION) -> tuple[dict[str, str], dict[str, float]]:
    """Per method, the setting with the lowest mean validation error over the models it ran on,
    among the settings whose box is drawn around ``region``.

    Returns:
        (method -> its chosen setting, setting -> its mean validation error), settings without
        their ``region=`` flag (the library's default region).
    """
    suffix = f":region={region}"
    settings = sorted({label for errors in sweeps.values() for label in errors if label.endswith(suffix)})
    mean = {label.removesuffix(suffix): float(np.mean([e[label] for e in sweeps.values() if label in e])) for label in settings}
    best: dict[str, str] = {}
    for label in mean:
        key = base_method(label)
        if key == "fixations":  # the fixation variants each keep their best sigma and threshold
            key = ":".join(f for f in label.split(":") if not f.startswith(("box=", "sigma=")))
        if key not in best or mean[label] < mean[best[key]]:
            best[key] = label
    return best, mean


def region_table(sweeps: dict[str, dict[str, float]]) -> list[str]:
    """Markdown: per method, its best mean validation error with the box around each region."""
    chosen = {region: choose(sweeps, region) for region in BOX_REGIONS}
    lines = ["| method | " + " | ".join(f"box around the {r} blob: val. error %" for r in BOX_REGIONS) + " |"]
    lines.append("|---|" + "---|" * len(BOX_REGIONS))
    for key in sorted(chosen[BOX_REGIONS[0]][0]):
        cells = [f"{chosen[r][1][chosen[r][0][key]]:.1f}" if key in chosen[r][0] else "n/a" for r in BOX_REGIONS]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def sanity(name: str, items, images: int) -> dict[str, tuple[float, float]]:
    """Method -> (mean rank correlation after the top layer, after every layer) is re-initialised."""
    path, preset = MODELS[name]
    model = load_model(path)
    found = {}
    for method in SANITY_METHODS:
        top, every = [], []
        for item in items[:images]:
            target = Explainer(model, preset=preset, method=method, device="cpu").explain(item.image).target.index

            def map_of(m, method=method, item=item, target=target):
                return Explainer(m, preset=preset, method=method, device="cpu").explain(item.image, target).heatmap

            steps = model_randomisation(model, map_of, seed=0, depths=(1, -1))
            top.append(steps[1].rank_correlation)
            every.append(steps[-1].rank_correlation)
        found[method] = (float(np.nanmean(top)), float(np.nanmean(every)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=int, default=500, help="Fashion validation canvases")
    parser.add_argument("--test", type=int, default=1000, help="Fashion test canvases")
    parser.add_argument("--composites", type=int, default=200, help="composite candidates for MobileNetV2 (test)")
    parser.add_argument("--perturbation", type=int, default=100, help="Fashion images with deletion/insertion curves")
    parser.add_argument("--perturbation-composites", type=int, default=30, help="composites with deletion/insertion curves")
    parser.add_argument("--sanity", type=int, default=4, help="images for the randomisation check")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sweep-only", action="store_true", help="stop after the validation sweep (cached in sweep.json)")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="test only the chosen settings whose label holds TEXT (e.g. rule=authors); results-TEXT.md, not results.md",
    )
    args = parser.parse_args()
    t0 = time.time()
    folders = datasets(args.val, args.test, args.composites)
    sweep_file = OUT / "sweep.json"
    sweeps = named_rules(json.loads(sweep_file.read_text())) if sweep_file.is_file() else {}
    # A cached sweep is completed with what it lacks (variants or methods added since).
    todo = {m: missing(sweeps.get(m, {})) for m in args.models}
    progress = Progress(sum(len(t) for t in todo.values()))
    for name, lacking in todo.items():
        if lacking:
            found = sweep_model(name, read_dataset(folders[name]["val"]), progress, lacking)
            sweeps[name] = sweeps.get(name, {}) | found
            sweep_file.write_text(json.dumps(sweeps, indent=1))
    regions = region_table({m: sweeps[m] for m in args.models})
    print("\n".join(regions), flush=True)
    if args.sweep_only:
        return
    chosen, mean = choose({m: sweeps[m] for m in args.models})
    # The library as it ships: conv location and rule "auto" (chosen per model by its head), its sigma and box.
    chosen[LIBRARY] = f"fixations:sigma={DEFAULT_SIGMA}:box={BOX_THRESHOLDS['fixations']}"
    print("chosen on validation:", json.dumps(chosen, indent=1), flush=True)
    order = sorted(chosen, key=lambda key: (not key.startswith("fixations"), key == "centre-gaussian", key))
    suffix = f"-{safe_name(args.only)}" if args.only else ""
    if args.only:
        order = [key for key in order if args.only in chosen[key]]
    specs = [parse_method(chosen[key]) for key in order]
    default = min((k for k in chosen if k.startswith("fixations:") and k != "fixations:ge"), key=lambda k: mean[chosen[k]])
    report = [
        f"# Localization benchmark ({date.today()}, {platform.node()}, {platform.processor() or platform.machine()})",
        "",
        "Chosen on validation (lowest mean top-1 localization error over the models):",
        "",
    ]
    report += [f"- {key}: `{chosen[key]}`" for key in order]
    report += ["", f"best fixations variant on validation: `{chosen[default]}`", "", "HEADLINE"]
    report += [
        "",
        f"Boxes around the blob holding the peak or the largest one (validation; the library draws the {BOX_REGION}):",
        "",
    ]
    report += regions
    accuracy = json.loads((ROOT / "models" / "fashion" / "accuracy.json").read_text())
    headline = [
        "| model | fixations top-1 loc err % | Grad-CAM top-1 loc err % | fixations pointing % | Grad-CAM pointing % |",
        "|---|---|---|---|---|",
    ]
    for name in args.models:
        path, preset = MODELS[name]
        items = read_dataset(folders[name]["test"])
        steps = Progress(len(items) * len(specs))
        perturbation = args.perturbation_composites if name == "mobilenet_v2" else args.perturbation
        evaluation = evaluate(
            path,
            items,
            specs,
            preset=preset,
            perturbation=perturbation,
            device="cpu",
            on_step=steps.step,
            name=name,
            dataset=str(folders[name]["test"]),
        )
        save(evaluation, OUT / f"test-{name}{suffix}")
        rows = {row.label: row for row in evaluation.rows}
        if chosen[LIBRARY] in rows and chosen["gradcam"] in rows:
            fix, grad = rows[chosen[LIBRARY]], rows[chosen["gradcam"]]
            headline.append(f"| {name} | {fix.loc_error:.1f} | {grad.loc_error:.1f} | {fix.pointing:.1f} | {grad.pointing:.1f} |")
        acc = f", test accuracy {100 * accuracy[name]['test_accuracy']:.1f} % on 10,000 canvases" if name in accuracy else ""
        report += ["", f"## {name} ({len(items)} test images{acc})", "", to_markdown(evaluation)]
        if args.sanity and not args.only:
            checks = sanity(name, items, args.sanity)
            report += [
                "Model randomisation (mean Spearman correlation with the original map; lower is better):",
                "",
                "| method | top layer re-initialised | all layers re-initialised |",
                "|---|---|---|",
            ]
            report += [f"| {m} | {a:.2f} | {b:.2f} |" for m, (a, b) in checks.items()]
        text = "\n".join(report).replace("HEADLINE", "\n".join(headline))
        (OUT / f"results{suffix}.md").write_text(text + "\n")
        print(f"{name} done at {time.time() - t0:.0f}s", flush=True)
    print(f"results in {OUT / f'results{suffix}.md'} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
