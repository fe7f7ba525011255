"""What the methods that run the model again share (occlusion, RISE, Score-CAM): perturbed copies
of a batch, made and scored a bounded number at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fixtrace.runtime.run import Run

#: Perturbed copies made at once, every photo of the batch together: memory stays bounded
#: (64 copies of a 224x224 RGB input are 38 MB) while each onnxruntime call still gets full chunks.
COPIES = 64


def spans(count: int, photos: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges of ``count`` perturbations, at most COPIES copies per range for ``photos`` photos."""
    step = max(1, COPIES // max(photos, 1))
    for start in range(0, count, step):
        yield start, min(count, start + step)


def masked(batch: np.ndarray, keep: np.ndarray, channels_first: bool, fill: float = 0.0) -> np.ndarray:
    """Copies of each photo blended with a fill: ``batch * keep + fill * (1 - keep)``.

    Args:
        batch: (N, ...) model input, NCHW or NHWC.
        keep: (k, H, W) masks shared by the photos, or (N, k, H, W) masks per photo.
        channels_first: whether ``batch`` is NCHW.
        fill: the value where a mask is 0, in the model's input space.

    Returns:
        float32 (N * k, ...) copies, photo-major: copy j of photo n at row n * k + j.
    """
    keep = np.asarray(keep, dtype=np.float32)
    if keep.ndim == 3:
        keep = keep[None]
    keep = keep[:, :, None] if channels_first else keep[..., None]  # broadcast over colour channels
    copies = batch[:, None].astype(np.float32) * keep
    if fill:
        copies += np.float32(fill) * (1 - keep)
    return copies.reshape(-1, *batch.shape[1:])


def target_scores(run: Run, targets: list[int], copies: np.ndarray, probabilities: bool = False) -> np.ndarray:
    """Each photo's target score on its copies.

    Args:
        run: the batch's run (its batched forward scores the copies).
        targets: one class per photo.
        copies: (N * k, ...) photo-major copies (see ``masked``).
        probabilities: score with probabilities (softmax of logits) instead of raw outputs.

    Returns:
        float64 (N, k).
    """
    scores = run.forward(copies)
    if probabilities:
        scores = run.probabilities(scores)
    n = len(targets)
    return scores.reshape(n, len(copies) // n, -1)[np.arange(n), :, targets]
