"""Backtrack time per image on the CPU and CUDA backends, batch 1 and 64, and end-to-end throughput
against plain batched inference (a session keeping nothing, the same batch, interleaved).

Usage: python bench/bench_backends.py [--model models/mobilenet_v2.onnx] [--repeats 20] [--threads 0]
       [--batches 1 64]

One command on any machine: the CUDA rows run where numba sees a real GPU and are reported as
absent (with the reason) elsewhere. The forward uses onnxruntime's CUDA provider when the
installed onnxruntime has it (onnxruntime-gpu), else its CPU provider, and says which.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import real_photos

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: compiles kernels, fills caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def interleaved_ms(first, second, repeats: int) -> tuple[float, float]:
    """Median ms of two functions timed alternately (one warm-up each), so that both see the
    same machine load."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, kept in zip((first, second), times):
            t = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - t)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "mobilenet_v2.onnx"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()

    from fixtrace import Explainer
    from fixtrace.backends import cuda_status
    from fixtrace.backends.cpu import CpuBackend
    from fixtrace.images.preprocess import preprocess
    from fixtrace.runtime.session import Session
    from fixtrace.runtime.threads import limit_threads, thread_budget

    status = cuda_status()
    backends = [CpuBackend()]
    if status["gpu"]:
        from fixtrace.backends.cuda import CudaBackend

        backends.append(CudaBackend())
    explainers = {b.name: Explainer(args.model, device=b.name, threads=args.threads) for b in backends}
    plains = {
        name: Session(e.graph, keep=[], providers=e.runner.providers, threads=args.threads) for name, e in explainers.items()
    }
    photos = real_photos(max(args.batches))
    prepared = [preprocess(p, explainers["cpu"].graph.image_input, explainers["cpu"].preset) for _, p in photos]

    rows = []
    for backend in backends:
        explainer = explainers[backend.name]
        for n in args.batches:
            batch = np.stack([s for s, _ in prepared[:n]])
            values = explainer.session.run(batch)
            n_classes = values[explainer.plan.logits].reshape(n, -1).shape[1]
            targets = values[explainer.plan.logits].reshape(n, -1).argmax(axis=1)

            def backtrack():
                # Fresh Tensors: the intermediates' copy to the device is part of the cost. The
                # photos are shared among threads as fixtrace does (``thread_budget``).
                tensors = explainer.runner.tensors(values, batch, backend)
                with limit_threads(args.threads):
                    start = backend.start([b * n_classes + int(t) for b, t in enumerate(targets)])
                    walk = explainer.plan.run(start, tensors, thread_budget())
                walk.input.host()

            def forward_and_backtrack():
                nonlocal values
                values = explainer.session.run(batch)
                backtrack()

            def end_to_end():
                explainer.explain_batch([p for _, p in photos[:n]], batch, [g for _, g in prepared[:n]])

            def plain_forward():
                plains[backend.name].run(batch)

            walk_ms = median_ms(backtrack, args.repeats)
            both_ms = median_ms(forward_and_backtrack, max(3, args.repeats // 2))
            full_ms, plain_ms = interleaved_ms(end_to_end, plain_forward, args.repeats)
            rows.append(
                (
                    backend.name,
                    n,
                    walk_ms / n,
                    n * 1e3 / both_ms,
                    n * 1e3 / full_ms,
                    n * 1e3 / plain_ms,
                    ", ".join(explainer.session.providers_in_use),
                )
            )

    gpu = f"GPU {status['name']} (cc {status['compute_capability']})" if status["gpu"] else f"no GPU: {status.get('reason')}"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {gpu}; CPython {platform.python_version()}; "
        f"date {time.strftime('%Y-%m-%d')}; model {Path(args.model).name}; {len(photos)} real photos (crops/flips); "
        f"median of {args.repeats}\n"
    )
    print(
        "| backend | batch | backtrack ms / image | forward + backtrack images/s | end to end (with render) images/s "
        "| plain inference images/s | end to end / plain | forward on |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, n, per_image, both, full, plain, providers in rows:
        print(f"| {name} | {n} | {per_image:.3f} | {both:.1f} | {full:.1f} | {plain:.1f} | {full / plain:.2f} | {providers} |")
    if not status["gpu"]:
        print(f"\nCUDA rows absent: {status.get('reason')}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
