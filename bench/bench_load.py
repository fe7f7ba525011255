#!/usr/bin/env python
"""Each stage quiet and under a background load: does any stage collapse when another process
burns a core (the normal case on a shared server)?

Stages (MobileNetV2 and the Fashion VGG-style model, one photo, library defaults, ``--threads``):
a plain onnxruntime forward, fixations end to end, saliency end to end, Grad-CAM end to end, the
fixations backtrack alone, and a t-SNE of ``--codes`` random CNN codes. Each stage's median over
``--repeats`` calls, first quiet, then with ``--burners`` busy processes; the ratio is loaded /
quiet (the issue's target: at most 1.5x with one burner).

Usage: python bench/bench_load.py [--threads 0] [--burners 1] [--repeats 15] [--codes 400]
Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_threads import burn, cpu_model, paired_medians  # noqa: E402


def stages(threads: int, codes: int) -> dict[str, Callable[[], object]]:
    """Stage name -> one call of it."""
    import onnxruntime as ort

    from fixtrace import Explainer
    from fixtrace.toolbox.tsne import tsne_coords

    photo = ROOT / "models" / "images" / "chelsea.jpg"
    fashion = ROOT / "models" / "fashion"
    mobilenet = str(ROOT / "models" / "mobilenet_v2.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    plain = ort.InferenceSession(mobilenet, options, providers=["CPUExecutionProvider"])
    fix = Explainer(mobilenet, threads=threads, device="cpu")
    x = fix.runner.blank()
    run = fix.runner.run(x)
    method = fix.map_method
    vgg = Explainer(fashion / "vgg.onnx", preset="raw", threads=threads, device="cpu", conv_location="argmax")
    sal = Explainer(mobilenet, method="saliency", threads=threads, device="cpu")
    grad = Explainer(mobilenet, method="gradcam", threads=threads, device="cpu")
    rng = np.random.default_rng(0)
    vectors = np.maximum(rng.standard_normal((codes, 256)), 0).astype(np.float32)
    return {
        "plain forward (MobileNetV2)": lambda: plain.run(None, {"input": x}),
        "fixations end to end (MobileNetV2)": lambda: fix.explain(photo),
        "fixations backtrack alone (MobileNetV2)": lambda: method.explain(run, [0]),
        "fixations end to end (Fashion VGG, argmax)": lambda: vgg.explain(fashion / "samples" / "00001.png"),
        "saliency end to end (MobileNetV2)": lambda: sal.explain(photo),
        "Grad-CAM end to end (MobileNetV2)": lambda: grad.explain(photo),
        f"t-SNE of {codes} codes": lambda: tsne_coords(vectors, threads=threads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="fixtrace's --threads (0: the libraries' choice)")
    parser.add_argument("--burners", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--codes", type=int, default=400)
    args = parser.parse_args()
    calls = stages(args.threads, args.codes)
    quiet = {name: paired_medians([fn], args.repeats)[0] for name, fn in calls.items()}
    stop = mp.Event()
    burners = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    try:
        loaded = {name: paired_medians([fn], args.repeats)[0] for name, fn in calls.items()}
    finally:
        stop.set()
        for p in burners:
            p.join()
    print(
        f"{datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, "
        f"threads={args.threads}, {args.burners} burner(s), median of {args.repeats}"
    )
    print("| stage | quiet ms | loaded ms | loaded / quiet |")
    print("|---|---|---|---|")
    for name in calls:
        print(f"| {name} | {quiet[name]:.1f} | {loaded[name]:.1f} | {loaded[name] / quiet[name]:.2f}x |")


if __name__ == "__main__":
    main()
