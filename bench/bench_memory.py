"""Peak memory (RSS) of `fixtrace explain` on big photos and big batches, each in a fresh process.

    python bench/bench_memory.py [--before DIR] [--skip-batch]

Writes a 12000x8000 JPEG, a 9999x10000 PNG and 64 real photos to a temporary folder, runs the
CLI on each (MobileNetV2, 2 threads), and prints the peak RSS and wall time of every run. With
--before, the same runs are made with another fixtrace checkout (e.g. a worktree of an older
commit) first, side by side in the table. The outputs are checked: a heat map of the photo's
size, a box inside it, the same top class as on a small copy of the photo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
PHOTOS = [ROOT / "models" / "images" / name for name in ("chelsea.jpg", "coffee.jpg", "camera.jpg")]
WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def peak(args: list[str], checkout: str | None, cwd: Path) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, exit code) of ``fixtrace ARGS`` in a fresh process (run in ``cwd``,
    so that no checkout in the working directory shadows ``checkout``)."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    if checkout:
        env["PYTHONPATH"] = checkout
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-m", "fixtrace.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    seconds = time.perf_counter() - start
    kb, code = proc.stdout.strip().splitlines()[-1].split()
    return int(kb) / 1024, seconds, int(code)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="another fixtrace checkout to measure first")
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        photo = Image.open(PHOTOS[0]).convert("RGB")
        photo.resize((12000, 8000)).save(work / "big.jpg", quality=85)
        photo.resize((9999, 10000)).save(work / "big.png", compress_level=1)
        batch = work / "batch"
        batch.mkdir()
        for k in range(64):
            shutil.copy(PHOTOS[k % len(PHOTOS)], batch / f"photo_{k:02d}.jpg")
        runs = {
            "chelsea 451x300": [str(MODEL), str(PHOTOS[0])],
            "JPEG 12000x8000, fixations": [str(MODEL), str(work / "big.jpg")],
            "JPEG 12000x8000, gradcam": [str(MODEL), str(work / "big.jpg"), "--method", "gradcam"],
            "PNG 9999x10000, fixations": [str(MODEL), str(work / "big.png")],
        }
        if not args.skip_batch:
            runs["64 photos, --batch-size 64"] = [str(MODEL), str(batch), "--batch-size", "64", "--quiet"]
            runs["64 photos, --batch-size 8"] = [str(MODEL), str(batch), "--batch-size", "8", "--quiet"]
        checkouts = ([("before", args.before)] if args.before else []) + [("now", None)]
        print(f"| run | {' | '.join(f'{name} peak RSS MB | {name} s' for name, _ in checkouts)} |")
        print("|---|" + "---|---|" * len(checkouts))
        for label, run in runs.items():
            cells = []
            for name, checkout in checkouts:
                out = work / f"out-{name}-{len(cells)}"
                mb, seconds, code = peak(["explain", *run, "--threads", "2", "--out", str(out)], checkout, work)
                cells.append(f"{mb:.0f}" + ("" if code == 0 else f" (exit {code})") + f" | {seconds:.1f}")
                if name == "now" and "12000" in label:
                    _check(out / "big", (12000, 8000))
            print(f"| {label} | {' | '.join(cells)} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _check(folder: Path, size: tuple[int, int]) -> None:
    """The outputs of a big photo: a heat map of its size, a box inside, a cat."""
    heat = np.load(folder / "heatmap.npy", mmap_mode="r")
    record = json.loads((folder / "explanation.json").read_text())
    assert heat.shape == (size[1], size[0]) and heat.dtype == np.float32, heat.shape
    x0, y0, x1, y1 = record["box"]
    assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1], record["box"]
    assert record["image_size"] == list(size)
    assert record["target"]["index"] in (281, 282, 285), record["target"]


if __name__ == "__main__":
    sys.exit(main())
