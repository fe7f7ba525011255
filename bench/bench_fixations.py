"""Fixations end to end vs one plain onnxruntime forward of the same model, interleaved.

Usage: python bench/bench_fixations.py [--model models/mobilenet_v2.onnx] [--image models/images/chelsea.jpg]
       [--repeats 30] [--threads 2]

Prints a markdown table for bench/RESULTS.md: medians of every stage, the ratio to the plain
forward, and the first-call cost (numba compile, cold and from the on-disk cache) measured
in fresh subprocesses.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def first_call_seconds(model: str, image: str, cache_dir: str) -> float:
    """Seconds from a fresh interpreter to the first explanation, numba cache in ``cache_dir``."""
    code = (
        "import time; t = time.perf_counter(); import fixtrace; "
        f"fixtrace.explain({model!r}, {image!r}); print(time.perf_counter() - t)"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "mobilenet_v2.onnx"))
    parser.add_argument("--image", default=str(ROOT / "models" / "images" / "chelsea.jpg"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from fixtrace import Explainer
    from fixtrace.fixations import FixationSet
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess
    from fixtrace.runtime.session import Session

    explainer = Explainer(args.model, threads=args.threads)
    plain = Session(explainer.graph, keep=[], threads=args.threads)
    photo = load_image(args.image)
    sample, geometry = preprocess(photo, explainer.graph.image_input, explainer.preset)
    batch = sample[None]
    target = explainer.explain_batch([photo], batch, [geometry])[0][0].target.index
    values = explainer.session.run(batch)
    tensors = explainer.tensors(values, batch)

    stages: dict[str, list[float]] = {
        "plain forward": [],
        "fixations end to end": [],
        "forward with intermediates": [],
        "backtrack alone": [],
    }
    for _ in range(3):  # warm-up
        plain.run(batch)
        explainer.explain_batch([photo], batch, [geometry], target)
    for _ in range(args.repeats):
        t = time.perf_counter()
        plain.run(batch)
        stages["plain forward"].append(time.perf_counter() - t)
        t = time.perf_counter()
        explainer.explain_batch([photo], batch, [geometry], target)
        stages["fixations end to end"].append(time.perf_counter() - t)
        t = time.perf_counter()
        explainer.session.run(batch)
        stages["forward with intermediates"].append(time.perf_counter() - t)
        t = time.perf_counter()
        explainer.plan.run(FixationSet.single([target]), tensors)
        stages["backtrack alone"].append(time.perf_counter() - t)

    base = statistics.median(stages["plain forward"])
    with tempfile.TemporaryDirectory() as cache:
        cold = first_call_seconds(args.model, args.image, cache)
        warm = first_call_seconds(args.model, args.image, cache)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
        f"date {time.strftime('%Y-%m-%d')}; model {Path(args.model).name}; image {Path(args.image).name}; "
        f"{args.threads} onnxruntime threads; median of {args.repeats}, interleaved\n"
    )
    print("| stage | median ms | x plain forward |")
    print("|---|---|---|")
    for name, times in stages.items():
        med = statistics.median(times)
        print(f"| {name} | {med * 1e3:.2f} | {med / base:.2f} |")
    print(f"| first call, cold numba cache (s) | {cold:.2f} | |")
    print(f"| first call, numba cache on disk (s) | {warm:.2f} | |")
    print(f"\nkept intermediates: {len(explainer.session.kept)}; nodes on the backward path: {len(explainer.plan.rules)}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
