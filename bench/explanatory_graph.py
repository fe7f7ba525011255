"""The explanatory graph (``fixtrace explanatory-graph``) evaluated as in the paper: the location
instability of its nodes over the photos where each fires most, against each filter's raw peak
(the paper's baseline), on one category of Fashion-MNIST canvases (VGG-style model; landmarks:
the item box's centre and the middles of its sides) and on MobileNetV2 with the cat of
bench/composites.py pasted on textures (landmarks from its box); then the speed and peak memory of
the command on 500 composites at 224.

Usage::

    python bench/explanatory_graph.py [--fashion 150] [--composites 150] [--speed 500]
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "fashion"))
sys.path.insert(0, str(ROOT / "bench"))
import canvas  # noqa: E402
import composites  # noqa: E402

from fixtrace.graph_mining import Settings, explanatory_graph  # noqa: E402
from fixtrace.graph_mining.build import conv_layers, read_peaks  # noqa: E402
from fixtrace.graph_mining.instability import box_landmarks, instability, raw_filter_peaks  # noqa: E402
from fixtrace.graph_mining.mining import strength  # noqa: E402

OUT = ROOT / "bench" / "out" / "explanatory_graph"
FASHION_LAYERS = ["/features/features.4/features.4.2/Relu_output_0", "/features/features.6/features.6.2/Relu_output_0"]
MOBILENET_LAYERS = [
    "/features/features.6/conv/conv.2/Conv_output_0",
    "/features/features.13/conv/conv.2/Conv_output_0",
    "/features/features.17/conv/conv.2/Conv_output_0",
]
#: Nodes (and raw filters) evaluated per layer: the strongest.
EVALUATED = 40


def evaluate(model: Path, photos: list[np.ndarray], boxes: np.ndarray, layers: list[str], preset: str) -> list[dict]:
    """Per layer: the instability of the strongest graph nodes and of the strongest raw filters."""
    settings = Settings()
    graph = explanatory_graph(model, photos, layers, settings=settings, preset=preset, threads=2)
    convs = conv_layers(model, layers, preset=preset, threads=2)
    found, _, geometries = read_peaks(convs, photos, graph.peaks)
    g = geometries[0]
    scale = np.array([g.resized[1] / g.original[1], g.resized[0] / g.original[0]])
    landmarks = (box_landmarks(boxes) + 0.5) * scale - 0.5 - np.array([g.crop[1], g.crop[0]])  # photo -> input pixels
    rows, cols = g.input[1], g.input[0]
    diagonal = math.hypot(rows, cols)
    results = []
    for k, nodes in enumerate(graph.layers):
        top = slice(0, EVALUATED)
        ours = instability(nodes.positions[:, top], nodes.scores[:, top], landmarks, diagonal, settings.top_images)
        positions, scores = raw_filter_peaks(found[k].positions, found[k].values)
        best = np.argsort(-strength(scores, settings.top_images))[:EVALUATED]
        raw = instability(positions[:, best], scores[:, best], landmarks, diagonal, settings.top_images)
        results.append({"layer": nodes.layer, "nodes": len(nodes), "graph": ours, "raw_filter_peaks": raw})
    return results


def fashion(count: int, category: int) -> list[dict]:
    made = [c for c in canvas.canvases("test", count * 12, seed=3) if c.label == category][:count]
    photos = [c.pixels for c in made]
    return evaluate(ROOT / "models" / "fashion" / "vgg.onnx", photos, np.array([c.box for c in made]), FASHION_LAYERS, "raw")


def cats(count: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    made = [(photo, box) for photo, box, name in composites.candidates(np.random.default_rng(seed), 2 * count) if name == "cat"]
    return [p for p, _ in made], np.array([b for _, b in made])


def speed(count: int) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of the command on ``count`` cat composites at 224 (2 threads)."""
    folder = OUT / f"cats-{count}"
    if not folder.is_dir() or len(list(folder.glob("*.png"))) < count:
        folder.mkdir(parents=True, exist_ok=True)
        photos, _ = cats(count, seed=5)
        for k, photo in enumerate(photos):
            Image.fromarray(photo).save(folder / f"{k:04d}.png")
    command = [sys.executable, "-m", "fixtrace.cli", "explanatory-graph", str(ROOT / "models" / "mobilenet_v2.onnx"), str(folder)]
    command += ["--layers", ",".join(MOBILENET_LAYERS), "--out", str(OUT / "speed"), "--threads", "2", "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fashion", type=int, default=150, help="canvases of one category")
    parser.add_argument("--category", type=int, default=0, help="the Fashion class (0: T-shirt/top)")
    parser.add_argument("--composites", type=int, default=150, help="cat composites for MobileNetV2")
    parser.add_argument("--speed", type=int, default=500, help="composites for the speed run (0: none)")
    args = parser.parse_args()
    rows = []
    if args.fashion:
        rows += [("fashion vgg", r) for r in fashion(args.fashion, args.category)]
    if args.composites:
        photos, boxes = cats(args.composites)
        rows += [
            ("mobilenet_v2 cats", r)
            for r in evaluate(ROOT / "models" / "mobilenet_v2.onnx", photos, boxes, MOBILENET_LAYERS, "imagenet")
        ]
    print(f"{'set':20} {'layer':50} {'nodes':>5} {'graph':>7} {'raw peaks':>9}")
    for name, r in rows:
        print(f"{name:20} {r['layer']:50} {r['nodes']:5d} {r['graph']:7.4f} {r['raw_filter_peaks']:9.4f}")
    if args.speed:
        seconds, rss = speed(args.speed)
        print(f"speed: {args.speed} photos at 224, 3 MobileNetV2 layers, 2 threads: {seconds:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
