"""`fixtrace audit`: peak memory against the number of images, and throughput against plain
onnxruntime batched inference of the same model on the same photos.

    python bench/bench_audit.py [--sizes 200,2000] [--throughput 1000] [--methods fixations,gradcam]

Writes photos (crops and resizes of models/images, 320-480 px JPEGs) to a temporary folder.
Memory: each size is audited (both methods) in a fresh process, whose peak RSS is read with
resource.getrusage; flat means the 2,000-image run peaks where the 200-image one does.
Throughput: in one run, per method, plain onnxruntime (the same decode and preprocessing as
fixtrace, batches of 8, CPU provider) on N photos, then `fixtrace audit` of the same photos with the method alone
(its rate from the audit's summary line: images over the run's time, start-up excluded), and
``Explainer.explain_many`` alone on them (the method's own cost, without pictures or ledger).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
PHOTOS = sorted((ROOT / "models" / "images").glob("*.jpg"))
WRAPPER = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(p.stdout + p.stderr[-2000:]); print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
)
SUMMARY = re.compile(r"this run (\d+) in ([\d.]+)s")


def make_photos(folder: Path, n: int) -> None:
    """``n`` JPEGs: varied crops of the bundled photos, resized to 320-480 px wide."""
    rng = np.random.default_rng(0)
    sources = [Image.open(p).convert("RGB") for p in PHOTOS]
    for k in range(n):
        source = sources[k % len(sources)]
        w, h = source.size
        x0, y0 = int(rng.integers(0, w // 5)), int(rng.integers(0, h // 5))
        crop = source.crop((x0, y0, x0 + int(w * 0.8), y0 + int(h * 0.8)))
        width = int(rng.integers(320, 481))
        crop.resize((width, max(1, width * crop.height // crop.width))).save(folder / f"{k:05d}.jpg", quality=88)


def audit(folder: Path, out: Path, methods: str) -> tuple[float, float, float]:
    """(peak RSS MB, wall s, images/s of the run) of one ``fixtrace audit`` in a fresh process."""
    command = [sys.executable, "-m", "fixtrace.cli", "audit", str(MODEL), str(folder), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command, "--method", methods, "--quiet"], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    peak_line = [line for line in proc.stdout.splitlines() if line.startswith("PEAK")]
    found = SUMMARY.search(proc.stdout)
    if not peak_line or not found or peak_line[0].split()[2] not in ("0", "1"):
        raise SystemExit(f"audit failed:\n{proc.stdout}\n{proc.stderr}")
    images, seconds = int(found.group(1)), float(found.group(2))
    return int(peak_line[0].split()[1]) / 1024, wall, images / seconds


def plain_rate(folder: Path, n: int, batch_size: int = 8) -> float:
    """Images per second of plain onnxruntime on the first ``n`` photos: decode, preprocess, run."""
    import onnxruntime as ort

    from fixtrace.images.load import load_photo
    from fixtrace.images.preprocess import preprocess
    from fixtrace.images.presets import get_preset
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.model.load import load_model

    spec = LayerGraph.from_model(load_model(MODEL)).image_input
    preset = get_preset("imagenet")
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    paths = sorted(folder.glob("*.jpg"))[:n]
    start = time.perf_counter()
    for k in range(0, len(paths), batch_size):
        rows = []
        for path in paths[k : k + batch_size]:
            photo = load_photo(path)
            rows.append(preprocess(photo.pixels, spec, preset, photo.size)[0])
        session.run(None, {spec.name: np.stack(rows)})
    return len(paths) / (time.perf_counter() - start)


def explain_rate(folder: Path, n: int, method: str, batch_size: int = 8) -> float:
    """Images per second of ``Explainer.explain_many`` alone (no pictures, no ledger) on ``n`` photos."""
    from fixtrace.api import Explainer

    explainer = Explainer(MODEL, method=method)
    paths = sorted(folder.glob("*.jpg"))[:n]
    start = time.perf_counter()
    for _ in explainer.explain_many(paths, batch_size=batch_size):
        pass
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000", help="image counts of the memory runs (default: %(default)s)")
    parser.add_argument("--throughput", type=int, default=1000, help="images of the throughput runs (default: %(default)s)")
    parser.add_argument("--methods", default="fixations,gradcam", help="methods of the memory runs (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        photos.mkdir()
        make_photos(photos, max([*sizes, args.throughput]))
        print(f"machine: {os.cpu_count()} cores; methods of the memory runs: {args.methods}")
        print("| images | peak RSS MB | wall s | audit images/s |\n|---|---|---|---|")
        for n in sizes:
            subset = root / f"set{n}"
            subset.mkdir()
            for path in sorted(photos.glob("*.jpg"))[:n]:
                os.link(path, subset / path.name)
            peak, wall, rate = audit(subset, root / f"audit{n}", args.methods)
            print(f"| {n} | {peak:.0f} | {wall:.1f} | {rate:.2f} |", flush=True)
        n = args.throughput
        subset = root / "throughput"
        subset.mkdir()
        for path in sorted(photos.glob("*.jpg"))[:n]:
            os.link(path, subset / path.name)
        # Plain inference is timed right before each method's runs (the machine's load drifts),
        # and each ratio is taken against the plain rate next to it.
        print(f"\n| {n} images | images/s | x plain onnxruntime (timed just before) |\n|---|---|---|")
        for method in ("fixations", "gradcam"):
            plain = plain_rate(subset, n)
            print(f"| plain onnxruntime, batches of 8 (decode + preprocess + forward) | {plain:.2f} | 1.00 |", flush=True)
            _, _, rate = audit(subset, root / f"audit_{method}", method)
            print(f"| fixtrace audit --method {method} | {rate:.2f} | {rate / plain:.2f} |", flush=True)
            alone = explain_rate(subset, n, method)
            print(f"| Explainer.explain_many, {method}, no pictures or ledger | {alone:.2f} | {alone / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()
