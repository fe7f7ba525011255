"""``fixtrace explain`` on a folder of real photos: photos per second with every picture written,
against the explanations alone (``explain_many``, nothing written), and the CLI's wall time and
peak memory as a user runs it (a fresh process: imports and the numba cache included).

Usage: python bench/bench_explain_folder.py [--model models/mobilenet_v2.onnx] [--photos 96]
       [--batch-size 8] [--threads 2] [--repeats 3] [--image-format png|jpg]

The photos are bench/real_photos.py's crops and flips of the bundled photos (451x300 to
1411x1411), saved as JPEG (quality 92). Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import real_photos

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "mobilenet_v2.onnx"))
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png")
    args = parser.parse_args()

    from fixtrace import Explainer
    from fixtrace.cli import main as cli

    work = Path(tempfile.mkdtemp(prefix="fixtrace-bench-folder-"))
    try:
        folder = work / "photos"
        folder.mkdir()
        for k, (_, pixels) in enumerate(real_photos(args.photos)):
            Image.fromarray(pixels).save(folder / f"{k:04d}.jpg", quality=92)
        paths = sorted(folder.glob("*.jpg"))
        flags = [
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--image-format",
            args.image_format,
            "--quiet",
        ]

        def command() -> None:
            shutil.rmtree(work / "out", ignore_errors=True)
            assert cli(["explain", args.model, str(folder), "--out", str(work / "out"), *flags]) == 0

        explainer = Explainer(args.model, threads=args.threads)

        def explanations() -> None:
            for item in explainer.explain_many(paths, batch_size=args.batch_size):
                assert item.error is None

        list(explainer.explain_many(paths[:2], batch_size=2))  # numba kernels loaded
        times: dict[str, list[float]] = {"fixtrace explain (pictures written)": [], "explain_many (nothing written)": []}
        for _ in range(args.repeats):
            for name, run in zip(times, (command, explanations)):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
        written = sum(f.stat().st_size for f in (work / "out").rglob("*") if f.is_file())

        shutil.rmtree(work / "out", ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fixtrace.cli", "explain", args.model, str(folder), "--out", str(work / "out"), *flags],
            check=True,
        )
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}; "
        f"date {time.strftime('%Y-%m-%d')}; model {Path(args.model).name}; {args.photos} real photos (JPEG); "
        f"batch {args.batch_size}; {args.threads} threads; {args.image_format} pictures; median of {args.repeats}, interleaved\n"
    )
    print("| run | s | photos/s | ms/photo |")
    print("|---|---|---|---|")
    for name, found in times.items():
        s = statistics.median(found)
        print(f"| {name} | {s:.2f} | {args.photos / s:.1f} | {s * 1e3 / args.photos:.1f} |")
    print(f"| the CLI in a fresh process (imports, numba cache) | {wall:.2f} | {args.photos / wall:.1f} | |")
    print(f"\npeak memory of the fresh process: {peak:.0f} MiB; written: {written / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
