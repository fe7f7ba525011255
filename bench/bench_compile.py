"""A compiled model (``fixtrace compile``: forward and backward in one onnxruntime run) against
fixtrace's numpy walk (forward keeping tensors, then the rules in numpy) on the same batch:
seconds per batch, interleaved in one process, and the largest difference between the maps.

Usage: python bench/bench_compile.py [--methods gradcam,saliency,guided-backprop] [--batches 1,8]
       [--repeats 10] [--threads 2] [--model models/mobilenet_v2.onnx] [--preset NAME] [--cuda]
--cuda also times the compiled model on onnxruntime's CUDA provider (TF32 off, so that its maps
compare at float32 precision). Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _timed(call, repeats: int) -> float:
    """Median seconds of ``call`` after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="gradcam,saliency,guided-backprop")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(ROOT / "models" / "mobilenet_v2.onnx"))
    parser.add_argument("--preset")
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort

    from fixtrace import Explainer
    from fixtrace.compile import compile_explanation
    from fixtrace.images.load import load_image
    from fixtrace.images.preprocess import preprocess
    from fixtrace.runtime.threads import limit_threads

    photos = sorted((ROOT / "models" / "images").glob("*.jpg"))
    print(f"model {Path(args.model).name}, {args.threads} threads, median of {args.repeats}")
    print("| method | batch | numpy walk (s) | compiled, CPU (s) | compiled, CUDA (s) | max diff / max |")
    print("|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        explainer = Explainer(args.model, method=method, preset=args.preset, threads=args.threads, device="cpu")
        made = compile_explanation(args.model, method, preset=args.preset)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        sessions = {"cpu": ort.InferenceSession(made.model.SerializeToString(), options, providers=["CPUExecutionProvider"])}
        if args.cuda:
            cuda = ("CUDAExecutionProvider", {"use_tf32": 0})
            sessions["cuda"] = ort.InferenceSession(made.model.SerializeToString(), options, providers=[cuda])
        prepared = explainer.map_method
        samples = [preprocess(load_image(p), explainer.graph.image_input, explainer.preset)[0] for p in photos]
        for size in (int(b) for b in args.batches.split(",")):
            batch = np.stack([samples[k % len(samples)] for k in range(size)])
            feeds = {explainer.graph.image_input.name: batch}

            def numpy_walk(batch=batch):
                run = explainer.runner.run(batch)
                classes = list(run.scores.argmax(axis=1))
                if made.layer is not None:
                    return prepared.coarse(run.tensors, classes)
                return prepared.maps(run.tensors, classes)

            with limit_threads(args.threads):
                walk = _timed(numpy_walk, args.repeats)
                want = numpy_walk()
            seconds, diff = {}, 0.0
            for device, session in sessions.items():
                seconds[device] = _timed(lambda s=session: s.run([made.map_output], feeds), args.repeats)
                got = session.run([made.map_output], feeds)[0]
                diff = max(diff, float(np.abs(got - want).max() / np.abs(want).max()))
            cuda_time = f"{seconds['cuda']:.4f}" if "cuda" in seconds else "-"
            print(f"| {method} | {size} | {walk:.4f} | {seconds['cpu']:.4f} | {cuda_time} | {diff:.1e} |")


if __name__ == "__main__":
    main()
