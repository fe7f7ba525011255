"""t-SNE of CNN codes on Fashion canvases: does the 2-D map keep the neighbourhoods, and what does it cost?

    python bench/bench_tsne.py [--count 2000] [--sizes 500,2000,5000] [--models resnet,vgg,inception] [--threads 1]

(--models "" skips the k-NN table.)

Writes test-split Fashion canvases (models/fashion/canvas.py; needs /usr/share/datasets/fashion-mnist)
to bench/out/tsne-canvases, then:

1. Neighbourhoods: for each model, the codes of the first --count canvases (the default layer: the input
   of the final dense layer) and their t-SNE embedding (seed 0, perplexity 30). k-NN accuracy
   (k = 10, leave-one-out, majority vote, ties to the nearest) against each canvas's TRUE label
   (boxes.csv), on the raw codes and on the 2-D positions; the model's own top-1 accuracy beside.
2. Cost: ``fixtrace tsne`` on the first 500 / 2,000 / 5,000 canvases (resnet), each in a fresh
   process: peak RSS after reading the codes and after t-SNE, and the time of each phase.
   The codes take D x 4 bytes per image; everything else read is one batch at a time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "fashion"))
import canvas  # noqa: E402

FASHION = ROOT / "models" / "fashion"
WORK = ROOT / "bench" / "out" / "tsne-canvases"
K = 10


def make_canvases(count: int) -> list[Path]:
    """The first ``count`` test-split canvases (seed 0), written once and reused."""
    boxes = WORK / "boxes.csv"
    if not boxes.is_file() or len(boxes.read_text().splitlines()) - 1 < count:
        canvas.write_dataset(WORK, canvas.canvases("test", count, seed=0))
    return sorted(WORK.glob("*.png"))[:count]


def true_labels(paths: list[Path]) -> np.ndarray:
    rows = dict(line.split(",")[:2] for line in (WORK / "boxes.csv").read_text().splitlines()[1:])
    return np.array([int(rows[p.name]) for p in paths])


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = K) -> float:
    """Leave-one-out k-NN accuracy: each point's label voted by its k nearest other points
    (a tie goes to the tied label with the nearest member)."""
    from sklearn.neighbors import NearestNeighbors

    _, near = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    right = 0
    for i, row in enumerate(near):
        others = [j for j in row if j != i][:k]
        votes = np.bincount(labels[others], minlength=labels.max() + 1)
        best = np.flatnonzero(votes == votes.max())
        guess = next(labels[j] for j in others if labels[j] in best)
        right += int(guess == labels[i])
    return right / len(labels)


def neighbourhoods(models: list[str], paths: list[Path], threads: int) -> None:
    from fixtrace.toolbox.codes import read_codes
    from fixtrace.toolbox.tsne import tsne_coords

    labels = true_labels(paths)
    print(f"\n{len(paths)} test canvases, k-NN (k={K}, leave-one-out) vs the true label; seed 0, perplexity 30")
    print("| model | codes | D | model top-1 | k-NN raw codes | k-NN 2-D t-SNE | difference | codes s | t-SNE s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in models:
        start = time.perf_counter()
        codes = read_codes(FASHION / f"{name}.onnx", paths, preset="raw", threads=threads, batch_size=64)
        read = time.perf_counter() - start
        start = time.perf_counter()
        coords, _, _ = tsne_coords(codes.values, 30.0, 0, threads)
        embedded = time.perf_counter() - start
        raw, flat = knn_accuracy(codes.values, labels), knn_accuracy(coords, labels)
        top1 = float((codes.predicted == labels).mean())
        print(
            f"| {name} | `{codes.layer.name}` | {codes.values.shape[1]} | {top1:.1%} | {raw:.1%} | {flat:.1%} | "
            f"{100 * (flat - raw):+.1f} pts | {read:.1f} | {embedded:.1f} |"
        )


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM where Linux has it (ru_maxrss of a child started by
    vfork + exec can carry the parent's peak), else ``resource.getrusage``."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(model: str, count: int, threads: int) -> None:
    """One measured run in this (fresh) process: prints a JSON line."""
    from fixtrace.toolbox.codes import read_codes
    from fixtrace.toolbox.tsne import tsne_coords

    paths = sorted(WORK.glob("*.png"))[:count]
    start = time.perf_counter()
    codes = read_codes(FASHION / f"{model}.onnx", paths, preset="raw", threads=threads, batch_size=64)
    read = time.perf_counter() - start
    after_codes = peak_rss_mb()
    start = time.perf_counter()
    tsne_coords(codes.values, 30.0, 0, threads)
    embedded = time.perf_counter() - start
    after_tsne = peak_rss_mb()
    report = {"n": len(codes), "d": codes.values.shape[1], "codes_s": read, "tsne_s": embedded}
    print(json.dumps(report | {"rss_codes_mb": after_codes, "rss_tsne_mb": after_tsne}))


def costs(sizes: list[int], threads: int) -> None:
    print("\nresnet codes, one fresh process per size: peak RSS (MB) after the codes and after t-SNE")
    print("| images | codes MB (N x D x 4) | peak RSS after codes | codes s | peak RSS after t-SNE | t-SNE s |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--threads", str(threads)], capture_output=True, text=True, check=True
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {r['n']} | {r['n'] * r['d'] * 4 / 1e6:.2f} (D={r['d']}: {r['d'] * 4} B/image) | {r['rss_codes_mb']:.0f} | "
            f"{r['codes_s']:.1f} | {r['rss_tsne_mb']:.0f} | {r['tsne_s']:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="canvases for the k-NN table (default: 2000)")
    parser.add_argument("--sizes", default="500,2000,5000", help="canvas counts of the cost table")
    parser.add_argument("--models", default="resnet,vgg,inception")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime/BLAS/OpenMP threads (default: 1)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child("resnet", args.child, args.threads)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    paths = make_canvases(max([args.count, *sizes]))
    models = [m for m in args.models.split(",") if m]
    if models:
        neighbourhoods(models, paths[: args.count], args.threads)
    costs(sizes, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
