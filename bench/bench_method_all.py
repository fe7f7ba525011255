"""Several methods on one photo: one call with ``methods=[...]`` (one forward) against one call per
method (a forward each), on the same prepared model, side by side in one process.

    python bench/bench_method_all.py [--repeats 5] [--heavy]

``--heavy`` adds occlusion, RISE and Score-CAM (thousands of forwards: minutes on a laptop).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from fixtrace import Explainer

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ["fixations", "saliency", "guided-backprop", "deconvnet", "cam", "gradcam", "guided-gradcam"]
HEAVY = ["scorecam", "occlusion", "rise"]


def _median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--heavy", action="store_true")
    args = parser.parse_args()
    methods = LIGHT + (HEAVY if args.heavy else [])
    photo = ROOT / "models/images/chelsea.jpg"
    explainer = Explainer(ROOT / "models/mobilenet_v2.onnx", device="cpu", method=methods)
    explainer.explain(photo)  # untimed: numba compiles, every method prepared
    for m in methods:
        explainer.explain(photo, method=m)
    together = _median_seconds(lambda: explainer.explain(photo, methods=methods), args.repeats)
    apart = _median_seconds(lambda: [explainer.explain(photo, method=m) for m in methods], args.repeats)
    forward = _median_seconds(lambda: explainer.runner.run(explainer.runner.blank()), args.repeats)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {len(methods)} methods, median of {args.repeats}")
    print(f"one call, methods=[...]: {together * 1e3:.0f} ms")
    print(f"one call per method:     {apart * 1e3:.0f} ms")
    print(
        f"saved: {(apart - together) * 1e3:.0f} ms = {(apart - together) / (len(methods) - 1) * 1e3:.0f} ms per extra "
        f"method; one forward keeping every method's tensors: {forward * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
