"""Memory and speed of `top-images` on a long stream: peak RSS must stay flat as photos go by.

    python bench/bench_top_images.py [--count 5000] [--photos DIR] [--threads 2] [--batch-size 32]

Writes ``--count`` photos to ``--photos`` (default: a temporary folder, removed afterwards): random
crops, mirrors and colour shifts of the bundled photos (chelsea, coffee, camera) and, when
scikit-image is installed, of its sample photos, each at most 480 pixels wide, as JPEG. Then
ranks them in this process with ``fixtrace.toolbox.top_images.top_images`` (MobileNetV2, four
channels of /features/features.6/Add_output_0, k = 9) and prints the peak RSS and the rate at
500, 2,000 and 5,000 photos (or the counts reached).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
LAYER = "/features/features.6/Add_output_0"
CHANNELS = [5, 9, 17, 28]
CHECKPOINTS = (500, 2000, 5000)
#: scikit-image's colour sample photos (read from the installed package, no download).
SKIMAGE_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel")


def sources() -> list[Image.Image]:
    """The photos the stream is made from."""
    found = [Image.open(ROOT / "models" / "images" / f"{name}.jpg").convert("RGB") for name in ("chelsea", "coffee", "camera")]
    try:
        import skimage.data
    except ImportError:
        return found
    for name in SKIMAGE_PHOTOS:
        pixels = getattr(skimage.data, name)()
        if pixels.ndim == 3:
            found.append(Image.fromarray(pixels[..., :3]).convert("RGB"))
    return found


def write_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` augmented photos in ``folder``: a random crop (30 to 100 % of each side), a
    mirror half the time, a colour shift, at most 480 pixels wide."""
    rng = np.random.default_rng(seed)
    base = sources()
    paths = []
    for k in range(count):
        photo = base[k % len(base)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.3, 1.0)), int(h * rng.uniform(0.3, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        if crop.width > 480:
            crop = crop.resize((480, max(1, round(crop.height * 480 / crop.width))), Image.Resampling.BILINEAR)
        pixels = np.asarray(crop, dtype=np.float32) * rng.uniform(0.8, 1.2, 3)
        path = folder / f"{k:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=88)
        paths.append(path)
    return paths


def peak_mb() -> float:
    """Peak RSS of this process so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--photos", help="folder to write the photos to (kept); default: a temporary one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    folder = Path(args.photos) if args.photos else Path(tempfile.mkdtemp(prefix="bench-top-images-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        paths = write_photos(folder, args.count)
        print(f"wrote {len(paths)} photos to {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        from fixtrace.toolbox.top_images import top_images

        rows: list[tuple[int, float, float]] = []
        done = 0
        start = time.perf_counter()

        def step(_: str) -> None:
            nonlocal done
            done += 1
            if done in CHECKPOINTS or done == len(paths):
                rows.append((done, peak_mb(), done / (time.perf_counter() - start)))

        before = peak_mb()
        result = top_images(MODEL, paths, LAYER, CHANNELS, k=9, batch_size=args.batch_size, threads=args.threads, on_step=step)
        print(f"peak RSS before the stream: {before:.0f} MB (model loaded lazily inside)")
        print("| photos | peak RSS MB | photos / s |")
        print("|---:|---:|---:|")
        for count, mb, rate in dict.fromkeys(rows):
            print(f"| {count} | {mb:.0f} | {rate:.1f} |")
        best = {c: f"{found[0].name} {found[0].score:.3g}" for c, found in result.winners.items()}
        print(f"ranked {result.seen}, failed {len(result.failed)}; best per channel: {best}")
    finally:
        if not args.photos:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
