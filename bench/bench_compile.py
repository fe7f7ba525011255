"""The map in one onnxruntime run against fixtrace's walks, on the same batch: a plain forward (the
unit), fixtrace with the numpy walk (forward keeping tensors, then the rules in numpy), fixtrace
with the onnxruntime walk (``Explainer(backward="onnx")``: the same forward, the rules' ONNX form
run on its kept tensors) and the compiled model (``fixtrace compile``: forward and backward in one
run). Each way takes turns call by call with a plain forward of its own in one process (medians);
the unit is the fastest of those plain forwards (a forward right after a heavy numpy walk ran up to
40 % slower). Also the largest difference between the maps."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, the calls taking turns round by round (after one warm-up each),
    so that a machine's load drifts over all of them alike."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


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
    print(f"model {Path(args.model).name}, {args.threads} threads, median of {args.repeats}; ms (x a plain forward)")
    print("| method | batch | plain forward | numpy walk | onnxruntime walk | compiled, CPU | compiled, CUDA | max diff / max |")
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        walkers = {
            backward: Explainer(
                args.model, method=method, preset=args.preset, threads=args.threads, device="cpu", backward=backward
            )
            for backward in ("numpy", "onnx")
        }
        explainer = walkers["numpy"]
        made = compile_explanation(args.model, method, preset=args.preset)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        plain = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        sessions = {"cpu": ort.InferenceSession(made.model.SerializeToString(), options, providers=["CPUExecutionProvider"])}
        if args.cuda:
            cuda = ("CUDAExecutionProvider", {"use_tf32": 0})
            sessions["cuda"] = ort.InferenceSession(made.model.SerializeToString(), options, providers=[cuda])
        samples = [preprocess(load_image(p), explainer.graph.image_input, explainer.preset)[0] for p in photos]
        for size in (int(b) for b in args.batches.split(",")):
            batch = np.stack([samples[k % len(samples)] for k in range(size)])
            feeds = {explainer.graph.image_input.name: batch}

            def walk(which: str, batch=batch):
                chosen = walkers[which]
                run = chosen.runner.run(batch)
                classes = list(run.scores.argmax(axis=1))
                prepared = chosen.map_method
                return prepared.coarse(run.tensors, classes) if made.layer is not None else prepared.maps(run.tensors, classes)

            calls: dict[str, Callable[[], object]] = {
                "plain": lambda: plain.run(None, feeds),
                "numpy": lambda: walk("numpy"),
                "onnx": lambda: walk("onnx"),
            }
            calls |= {device: (lambda s=session: s.run([made.map_output], feeds)) for device, session in sessions.items()}
            # Each way takes turns with a plain forward of its own: a heavy call just before it (a numpy
            # walk touching far more memory) slowed a forward by up to 40 %. The unit is the fastest
            # pair's plain forward.
            seconds: dict[str, float] = {}
            with limit_threads(args.threads):
                for name in [n for n in calls if n != "plain"]:
                    pair = _interleaved({"plain": calls["plain"], name: calls[name]}, args.repeats)
                    seconds[name] = pair[name]
                    seconds["plain"] = min(seconds.get("plain", pair["plain"]), pair["plain"])
                ratios = {name: seconds[name] / seconds["plain"] for name in seconds if name != "plain"}
                want = walk("numpy")
            diff = 0.0
            for got in [walk("onnx"), *(session.run([made.map_output], feeds)[0] for session in sessions.values())]:
                diff = max(diff, float(np.abs(got - want).max() / np.abs(want).max()))

            def cell(name: str) -> str:
                if name not in seconds:
                    return "-"
                return f"{1e3 * seconds[name]:.1f}" + (f" ({ratios[name]:.2f}x)" if name in ratios else "")

            cells = " | ".join(cell(n) for n in ("plain", "numpy", "onnx", "cpu", "cuda"))
            print(f"| {method} | {size} | {cells} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
