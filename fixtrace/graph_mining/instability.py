"""The paper's location instability: how far a node's inferred position wanders, relative to
landmarks of the object (or to another node), over the photos where it fires the most.

For a node V and a landmark k, over V's ``top_images`` best photos: the standard deviation of
``|p_V - p_k| / diagonal``; averaged over landmarks, then over nodes (the authors'
``computeStability``). Lower is steadier. Without landmarks, the paper's pairwise form takes the
other node's position for the landmark."""

from __future__ import annotations

import numpy as np


def instability(positions: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, diagonal: float, top_images: int) -> float:
    """The mean location instability of the nodes against landmarks.

    Args:
        positions: (photos, V, 2) each node's inferred (row, col) on each photo.
        scores: (photos, V) its inference score (its best photos are taken).
        landmarks: (photos, L, 2) each landmark's (row, col) in the same pixels (NaN: absent).
        diagonal: the image diagonal in those pixels.
        top_images: photos per node.

    Returns:
        The instability (NaN without nodes).
    """
    per_node = node_instability(positions, scores, landmarks, diagonal, top_images)
    return float(np.nanmean(per_node)) if np.isfinite(per_node).any() else float("nan")


def node_instability(
    positions: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, diagonal: float, top_images: int
) -> np.ndarray:
    """(V,) each node's instability (see ``instability``)."""
    count = max(2, min(top_images, len(scores)))
    best = np.argsort(-scores, axis=0, kind="stable")[:count]  # (count, V)
    out = np.full(positions.shape[1], np.nan)
    for v in range(positions.shape[1]):
        photos = best[:, v]
        distance = np.linalg.norm(positions[photos, v][:, None, :] - landmarks[photos], axis=-1) / diagonal  # (count, L)
        out[v] = np.nanmean(np.nanstd(distance, axis=0, ddof=1))
    return out


def pair_instability(positions: np.ndarray, scores: np.ndarray, diagonal: float, top_images: int) -> float:
    """The pairwise form: each node against every other node as its landmark, averaged."""
    landmarks = positions  # (photos, V, 2): every node a landmark of the others
    per_node = []
    for v in range(positions.shape[1]):
        others = np.delete(landmarks, v, axis=1)
        if others.shape[1]:
            per_node.append(node_instability(positions[:, v : v + 1], scores[:, v : v + 1], others, diagonal, top_images)[0])
    return float(np.nanmean(per_node)) if per_node else float("nan")


def box_landmarks(boxes: np.ndarray) -> np.ndarray:
    """(photos, 5, 2) landmarks of item boxes (x0, y0, x1, y1): the centre and the middles of the
    four sides, as (row, col)."""
    x0, y0, x1, y1 = (boxes[:, k].astype(np.float64) for k in range(4))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    points = [(cy, cx), (y0, cx), (y1, cx), (cy, x0), (cy, x1)]
    return np.stack([np.stack(p, axis=1) for p in points], axis=1)


def raw_filter_peaks(peaks_positions: np.ndarray, peaks_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: each filter as one part detector at its map's largest peak.

    Returns:
        positions (photos, filters, 2) and scores (photos, filters).
    """
    return peaks_positions[:, :, 0], peaks_values[:, :, 0]
