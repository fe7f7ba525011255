"""Saliency time per map on a loaded machine, with and without ``limit_threads`` (issue 12).

Usage: python bench/bench_threads.py [--model models/mobilenet_v2.onnx] [--photo models/images/chelsea.jpg]
       [--threads 1 2] [--burners 2] [--repeats 20]

``--burners`` busy processes load the CPUs throughout. For each T, ``Explainer(method="saliency",
threads=T)`` explains the photo with only onnxruntime limited (as before), then with
``limit_threads(T)`` around the call, the two alternating call by call. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def burn(stop: mp.synchronize.Event) -> None:
    """Spin until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def paired_medians(fns: list[Callable[[], object]], repeats: int, warmup: int = 3) -> list[float]:
    """Median ms of each of ``fns``, called in turn each round so load drifts hit all alike."""
    for fn in fns:
        for _ in range(warmup):  # compiles kernels, grows onnxruntime's arena
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(out) * 1e3 for out in times]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "mobilenet_v2.onnx"))
    parser.add_argument("--photo", default=str(ROOT / "models" / "images" / "chelsea.jpg"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from fixtrace import Explainer
    from fixtrace.runtime.threads import limit_threads

    stop = mp.Event()
    burners = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for p in burners:
        p.start()
    rows = []
    try:
        for t in args.threads:
            explainer = Explainer(args.model, method="saliency", threads=t)

            def plain(e: Explainer = explainer) -> object:
                return e.explain(args.photo)

            def limited(e: Explainer = explainer, n: int = t) -> object:
                with limit_threads(n):
                    return e.explain(args.photo)

            rows.append((t, *paired_medians([plain, limited], args.repeats)))
    finally:
        stop.set()
        for p in burners:
            p.join()

    print(
        f"Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}; {args.burners} busy processes; "
        f"median of {args.repeats} maps, `{Path(args.photo).name}`, {Path(args.model).name}, saliency.\n"
    )
    print("| threads T | onnxruntime only: ms/map | + limit_threads(T): ms/map |")
    print("|---|---|---|")
    for t, plain, limited_ms in rows:
        print(f"| {t} | {plain:.0f} | {limited_ms:.0f} |")


if __name__ == "__main__":
    main()
