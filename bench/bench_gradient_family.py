"""The gradient methods of issue 15 timed per map against one plain onnxruntime forward, side by
side in one process: MobileNetV2 224, one photo, the predicted class.

Each repeat times, interleaved: one plain forward (the lean session that returns only the scores,
the median of 20), and per method one map as ``explain`` makes it: the forward keeping what the
method reads, then ``method.explain``. Grad-CAM and saliency are there for reference. With
``--captum`` (torch and captum installed, and the weights package: see tests/conftest.py) Captum's
``IntegratedGradients`` and ``NoiseTunnel(Saliency)`` with the same steps and samples are timed
too, on torch with the same thread count.

Usage: python bench/bench_gradient_family.py [--repeats 3] [--threads 2] [--captum]
Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["gradcam", "saliency", "gradcam++", "layercam", "xgradcam", "integrated-gradients", "smoothgrad"]


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def captum_runs(batch: np.ndarray, target: int, threads: int, steps: int, samples: int) -> dict:
    """Captum's IntegratedGradients and NoiseTunnel(Saliency) on the torch rebuild, as callables."""
    import torch
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT / "models"))
    import build_mobilenet_v2 as build

    model = build.MobileNetV2()
    model.load_state_dict(torch.load(build.default_weights(), map_location="cpu"), strict=True)
    model.eval()
    x = torch.tensor(batch)
    span = float(batch.max() - batch.min())
    return {
        f"Captum IntegratedGradients ({steps} steps)": lambda: IntegratedGradients(model).attribute(
            x, target=target, n_steps=steps, internal_batch_size=10
        ),
        f"Captum NoiseTunnel(Saliency) ({samples} samples)": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=10, stdevs=0.15 * span, target=target
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--captum", action="store_true", help="also time Captum's IntegratedGradients and NoiseTunnel")
    parser.add_argument("--image", default=str(ROOT / "models" / "images" / "chelsea.jpg"))
    args = parser.parse_args()

    import onnxruntime

    import fixtrace
    from fixtrace import Explainer
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess

    explainer = Explainer(ROOT / "models" / "mobilenet_v2.onnx", method=METHODS, threads=args.threads, device="cpu")
    sample, _ = preprocess(load_image(args.image), explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    runner = explainer.runner
    target = int(np.argmax(runner.run(batch).scores[0]))
    methods = {name: explainer.prepared(name) for name in METHODS}
    extra = captum_runs(batch, target, args.threads, 50, 50) if args.captum else {}

    def one_map(name: str) -> None:
        methods[name].explain(runner.run(batch), [target])

    for name in METHODS:  # untimed: numba compiles, sessions are made
        one_map(name)
    runner.forward(batch)
    rows: dict[str, list[float]] = {"plain forward": [], **{name: [] for name in METHODS}, **{k: [] for k in extra}}
    for _ in range(args.repeats):
        rows["plain forward"].append(statistics.median(seconds(lambda: runner.forward(batch)) for _ in range(20)))
        for name in METHODS:
            rows[name].append(seconds(lambda name=name: one_map(name)))
        for key, call in extra.items():
            rows[key].append(seconds(call))
    median = {k: statistics.median(v) for k, v in rows.items()}
    forward = median["plain forward"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu_name()}), {args.threads} threads, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"load average {load:.1f} at the end; fixtrace {fixtrace.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"numpy {np.__version__}; median of {args.repeats}; class {target}"
    )
    walks = {"integrated-gradients": methods["integrated-gradients"], "smoothgrad": methods["smoothgrad"]}
    run = runner.run(batch)
    print("copies walked at once: " + ", ".join(f"{k} {m.per_walk(run)}" for k, m in walks.items()))
    print("| method | ms per map (median) | x one plain forward | all runs, ms |")
    print("|---|---|---|---|")
    for key, values in rows.items():
        print(
            f"| {key} | {median[key] * 1e3:.0f} | {median[key] / forward:.1f} | {', '.join(f'{v * 1e3:.0f}' for v in values)} |"
        )


if __name__ == "__main__":
    main()
