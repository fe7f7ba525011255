"""Mining part patterns from per-photo peaks, top-down, as in Zhang et al., "Interpreting CNN
Knowledge via an Explanatory Graph" (AAAI 2018), kept readable rather than exhaustively faithful.

Each filter of a conv layer holds ``ceil(pattern_density * H * W)`` part patterns (nodes). A node V
of layer L has a centre ``mu_V`` (model-input pixels) and a deformation ``sigma_V``; on a photo I
its prior position is ``mu_V + shift_V^I``, where the shift is the weighted mean displacement of
its parents (``top_n`` nodes of layer L+1) from their own mean positions, each parent weighted by
its score on I over its variance (the authors' code). The top layer has no parents.

An EM loop (``iterations``) alternates:

* E: each node scores each peak of its filter ``value * exp(-|p - prior|^2 / 2 sigma^2)`` (zero
  beyond sqrt(2) ``deform_ratio`` sigmas: the search window); the node's inferred position on the photo is
  its best peak and its score is that product (the paper's part localisation). The patterns of a
  filter compete for its peaks: a peak's activation is shared in proportion to the patterns'
  scores, against a background term ``tau`` (the authors' ``validTau``).
* M: ``mu_V`` becomes the activation-weighted mean of the shared peaks' positions minus the shift,
  ``sigma_V`` their spread, clipped to ``[max / 10, max]`` with ``max = stride / sqrt(pattern_density)``
  (one pattern's share of the map), starting from ``init_delta`` of the map side.

Parents are (re)chosen every few iterations, from the ``top_m`` strongest nodes of the layer
above, as the ``top_n`` whose deviations from their mean positions move with the child's across
photos (``sum_I S_V^I exp(-|d_V^I - d_U^I|^2 / 2 m)``, the authors' rule); that sum over the child's
total score is the edge weight.

Where we chose, not the paper: peaks are the ``peaks`` largest 3x3 local maxima of each map (the
authors search a 6x6 grid around each node); ``mu`` is updated in closed form (theirs: a gradient
step); parents are rechosen every ``RESELECT`` iterations (theirs: every iteration); the authors'
parent-consistency factor and left-right flips are left out; the values of a filter are divided by
its mean per-photo maximum, so that filters compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fixtrace.graph_mining.peaks import Peaks
from fixtrace.model.receptive_field import ReceptiveField

#: The authors' defaults (``getNetParameters.m``; VGG-16 settings).
ITERATIONS = 20
TOP_N = 15
TOP_M = 600
TAU = 0.1
INIT_DELTA = 0.15
DEFORM_RATIO = 3.0
#: Patterns per map cell of each filter: 0.05 on maps of 28 rows or more, 0.1 on smaller ones.
DENSITY_LARGE, DENSITY_SMALL = 0.05, 0.1
#: Photos per node for its strength, strips and instability (the authors' ``patchNumPerPattern``).
TOP_IMAGES = 20
#: Iterations between two choices of the parents.
RESELECT = 5
#: Parents' candidates leave out nodes this close to the image border (share of its side; the authors' ``edgeCutRate``).
EDGE_CUT = 0.1
#: Photos per E-step chunk (bounds the (photos, nodes, peaks) temporaries).
_CHUNK = 32
#: Bytes for the parent choice's temporaries (``choose_parents``).
_TEMP_BYTES = 256 * 2**20


def default_density(rows: int) -> float:
    """The authors' pattern density for a map of ``rows`` rows (VGG-16: 28x28 maps 0.05, 14x14 0.1)."""
    return DENSITY_LARGE if rows >= 28 else DENSITY_SMALL


@dataclass
class LayerNodes:
    """The nodes mined from one conv layer (the ``top_m`` strongest kept).

    Attributes:
        layer: the tensor name.
        stride: (rows, cols) input pixels between map cells.
        scale: float32 (filters,) the divisor of each filter's values (its mean per-photo maximum).
        filters, patterns: (U,) each node's filter and pattern id within the filter.
        mu: (U, 2) the node's centre (row, col), input pixels, before its parents' shift.
        sigma: (U,) its deformation (pixels).
        mean_position: (U, 2) its score-weighted mean inferred position over the photos.
        support: (U,) the activation it explains, summed over photos (normalised values).
        strength: (U,) the mean of its ``top_images`` best scores (the ranking).
        positions: (photos, U, 2) its inferred position on each photo.
        scores: (photos, U) its inference score on each photo.
        parents: (U, top_n) indices into the layer above's nodes (-1: none).
        weights: (U, top_n) each parent edge's weight in [0, 1].
    """

    layer: str
    stride: tuple[float, float]
    scale: np.ndarray
    filters: np.ndarray
    patterns: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    mean_position: np.ndarray
    support: np.ndarray
    strength: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    parents: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.filters)


@dataclass(frozen=True)
class Settings:
    """The mining parameters, named as in the paper and the authors' code (see the module)."""

    pattern_density: float | None = None
    iterations: int = ITERATIONS
    top_n: int = TOP_N
    top_m: int = TOP_M
    tau: float = TAU
    init_delta: float = INIT_DELTA
    deform_ratio: float = DEFORM_RATIO
    top_images: int = TOP_IMAGES
    seed: int = 0


def normalise(peaks: Peaks) -> tuple[np.ndarray, np.ndarray]:
    """Peak values over each filter's mean per-photo maximum, and those divisors (dead filters: 1)."""
    scale = peaks.values.max(axis=2).mean(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return peaks.values / scale[None, :, None], scale


def fit_layer(
    layer: str,
    peaks: Peaks,
    field: ReceptiveField,
    grid: tuple[int, int],
    upper: LayerNodes | None,
    settings: Settings,
    on_iteration: Callable[[int], None] | None = None,
) -> LayerNodes:
    """Fit the part patterns of one layer, given the layer above's nodes (None at the top).

    Args:
        layer: the tensor name.
        peaks: the layer's peaks on every photo.
        field: its receptive field (cell centres in input pixels).
        grid: (rows, cols) of its maps.
        upper: the nodes of the layer above, or None.
        settings: the parameters.
        on_iteration: called with each finished iteration's number.

    Returns:
        The layer's ``top_m`` strongest nodes.
    """
    values, scale = normalise(peaks)
    filters = peaks.filters
    density = settings.pattern_density or default_density(grid[0])
    k = max(1, math.ceil(density * grid[0] * grid[1]))
    rng = np.random.default_rng(settings.seed)
    cells = np.stack([rng.choice(grid[0] * grid[1], size=min(k, grid[0] * grid[1]), replace=False) for _ in range(filters)])
    if cells.shape[1] < k:
        cells = np.concatenate([cells, cells[:, : k - cells.shape[1]]], axis=1)
    step = np.array(field.stride, dtype=np.float32)
    mu = (np.stack([cells // grid[1], cells % grid[1]], axis=-1) * step + np.array(field.offset)).astype(np.float32)
    stride = (float(step[0]), float(step[1]))
    largest = float(np.mean(step)) / math.sqrt(density)
    sigma = np.full((filters, k), min(settings.init_delta * grid[0] * float(np.mean(step)), largest), np.float32)
    parents = np.full((filters * k, 0), -1, np.int64)
    weights = np.zeros((filters * k, 0), np.float32)
    state = _Inference(peaks.positions, values, mu, sigma, settings)
    for iteration in range(settings.iterations):
        if upper is not None and len(upper) and iteration >= 1 and (iteration - 1) % RESELECT == 0:
            parents, weights = choose_parents(state.positions, state.scores, upper, settings.top_n, field.image)
        state.run(upper, parents)
        mu, sigma = state.maximise(largest)
        if on_iteration is not None:
            on_iteration(iteration + 1)
    if upper is not None and len(upper) and parents.shape[1] == 0:  # a single iteration: parents still to choose
        parents, weights = choose_parents(state.positions, state.scores, upper, settings.top_n, field.image)
    return _keep(layer, stride, scale, state, parents, weights, settings)


class _Inference:
    """The E and M steps over every photo, in chunks of photos."""

    def __init__(self, positions: np.ndarray, values: np.ndarray, mu: np.ndarray, sigma: np.ndarray, settings: Settings) -> None:
        self.peaks, self.values, self.mu, self.sigma, self.settings = positions, values, mu, sigma, settings
        photos, filters, k = len(values), mu.shape[0], mu.shape[1]
        self.positions = np.zeros((photos, filters * k, 2), np.float32)
        self.scores = np.zeros((photos, filters * k), np.float32)
        self.mass = np.zeros((filters, k), np.float64)
        self.sums = np.zeros((filters, k, 2), np.float64)
        self.squares = np.zeros((filters, k), np.float64)

    def run(self, upper: LayerNodes | None, parents: np.ndarray) -> None:
        """The E step on every photo: inferred positions and scores, and the M step's sums."""
        self.mass[:], self.sums[:], self.squares[:] = 0, 0, 0
        for first in range(0, len(self.values), _CHUNK):
            chunk = slice(first, first + _CHUNK)
            shift = parent_shift(upper, parents, chunk, self.mu.shape) if parents.shape[1] else 0.0
            prior = self.mu[None] + shift
            found = infer(self.peaks[chunk], self.values[chunk], prior, self.sigma, self.settings)
            self.positions[chunk] = found.positions.reshape(len(found.scores), -1, 2)
            self.scores[chunk] = found.scores.reshape(len(found.scores), -1)
            mass = found.shares * self.values[chunk][:, :, None, :]  # (n, C, K, P) activation each node explains
            self.mass += mass.sum(axis=(0, 3))
            self.sums += np.einsum("nckp,ncpd->ckd", mass, self.peaks[chunk]) - (mass.sum(axis=3)[..., None] * shift).sum(0)
            offsets = self.peaks[chunk][:, :, None, :, :] - prior[:, :, :, None, :]
            self.squares += (mass * (offsets**2).sum(axis=-1)).sum(axis=(0, 3))

    def maximise(self, largest: float) -> tuple[np.ndarray, np.ndarray]:
        """The M step: centres and deformations from the explained activation."""
        seen = self.mass > 0
        mu = np.where(seen[..., None], self.sums / np.maximum(self.mass, 1e-12)[..., None], self.mu)
        sigma = np.where(seen, np.sqrt(self.squares / (2 * np.maximum(self.mass, 1e-12))), self.sigma)
        self.mu = mu.astype(np.float32)
        self.sigma = np.clip(sigma, largest / 10, largest).astype(np.float32)
        return self.mu, self.sigma


@dataclass
class Found:
    """One E step: ``positions`` (n, C, K, 2) and ``scores`` (n, C, K) of each node on each photo,
    ``shares`` (n, C, K, P) of each peak's activation each node takes."""

    positions: np.ndarray
    scores: np.ndarray
    shares: np.ndarray


def infer(peaks: np.ndarray, values: np.ndarray, prior: np.ndarray, sigma: np.ndarray, settings: Settings) -> Found:
    """Score every peak of a filter for each of its patterns and take each pattern's best.

    Args:
        peaks: (n, C, P, 2) peak positions; values: (n, C, P) their normalised values.
        prior: (n, C, K, 2) or (1, C, K, 2) each pattern's prior position on each photo.
        sigma: (C, K) deformations.
        settings: ``tau`` and ``deform_ratio``.
    """
    offsets = peaks[:, :, None, :, :] - prior[:, :, :, None, :]
    d2 = (offsets**2).sum(axis=-1)  # (n, C, K, P)
    s2 = (sigma**2)[None, :, :, None]
    score = values[:, :, None, :] * np.exp(-d2 / (2 * s2))
    score[d2 > 2 * settings.deform_ratio**2 * s2] = 0  # outside the search window: sqrt(2) deform_ratio sigmas
    best = score.argmax(axis=3)
    n, c, k = best.shape
    positions = np.take_along_axis(np.broadcast_to(peaks[:, :, None], (n, c, k, *peaks.shape[2:])), best[..., None, None], 3)
    scores = np.take_along_axis(score, best[..., None], 3)[..., 0]
    background = settings.tau * score.sum(axis=3).mean(axis=(1, 2))[:, None, None, None]
    shares = score / np.maximum(score.sum(axis=2, keepdims=True) + background, 1e-12)
    return Found(positions[:, :, :, 0], scores, shares)


def parent_shift(upper: LayerNodes | None, parents: np.ndarray, photos: slice, shape: tuple[int, ...]) -> np.ndarray:
    """Each node's prior shift on the photos: its parents' deviations from their mean positions,
    each weighted by the parent's score over its variance; 0 without scoring parents.

    Returns:
        float32 (n, C, K, 2).
    """
    assert upper is not None
    deviation = upper.positions[photos] - upper.mean_position[None]  # (n, U, 2)
    weight = upper.scores[photos] / (upper.sigma[None] ** 2)  # (n, U)
    valid = parents >= 0
    index = np.where(valid, parents, 0)
    w = weight[:, index] * valid[None]  # (n, V, N)
    total = w.sum(axis=2)
    shift = np.einsum("nvk,nvkd->nvd", w, deviation[:, index]) / np.maximum(total, 1e-12)[..., None]
    shift[total <= 0] = 0
    return shift.reshape(len(shift), shape[0], shape[1], 2).astype(np.float32)


def choose_parents(
    positions: np.ndarray, scores: np.ndarray, upper: LayerNodes, top_n: int, image: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_n`` nodes of the layer above whose displacement to each node is the most stable.

    As the authors' code, the candidates leave out the upper nodes that barely move (the half of
    least position variance: stuck on the border's padding, they would agree with any still node)
    and those whose mean lies within ``EDGE_CUT`` of the image border.

    Args:
        positions: (photos, V, 2) the nodes' inferred positions; scores: (photos, V).
        upper: the layer above's nodes (already cut to its ``top_m``).
        top_n: parents per node.
        image: (rows, cols) of the model input.

    Returns:
        (V, N) parent indices (-1 where the layer above has fewer) and (V, N) edge weights.
    """
    deviation_up = upper.positions - upper.mean_position[None]  # (I, U, 2)
    variance = upper.positions.var(axis=0).sum(axis=1)
    margin = np.minimum(upper.mean_position, np.array(image, np.float32) - 1 - upper.mean_position).min(axis=1)
    candidate = (variance >= np.median(variance)) & (margin >= EDGE_CUT * min(image))
    if not candidate.any():
        candidate[:] = True
    mean = _weighted_mean(positions, scores)
    deviation = positions - mean[None]
    total = np.maximum(scores.sum(axis=0), 1e-12)
    count = min(top_n, int(candidate.sum()))
    parents = np.full((positions.shape[1], top_n), -1, np.int64)
    weights = np.zeros((positions.shape[1], top_n), np.float32)
    # Children at a time: the (photos, children, U, 2) temporaries stay near _TEMP_BYTES.
    step = int(np.clip(_TEMP_BYTES // (12 * len(positions) * max(len(upper), 1)), 1, 64))
    for first in range(0, positions.shape[1], step):
        v = slice(first, first + step)
        d2 = ((deviation[:, v, None, :] - deviation_up[:, None, :, :]) ** 2).sum(axis=-1)  # (I, v, U)
        spread = np.maximum(d2.mean(axis=(0, 2)), 1e-6)[None, :, None]
        agreement = (np.exp(-d2 / (2 * spread)) * scores[:, v, None]).sum(axis=0) * candidate[None]  # (v, U)
        best = np.argsort(-agreement, axis=1, kind="stable")[:, :count]
        parents[v, :count] = best
        weights[v, :count] = np.take_along_axis(agreement, best, axis=1) / total[v, None]
    return parents, weights


def _weighted_mean(positions: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(V, 2) score-weighted mean positions over the photos (the plain mean where no score)."""
    total = scores.sum(axis=0)
    weighted = np.einsum("iv,ivd->vd", scores, positions) / np.maximum(total, 1e-12)[:, None]
    return np.where((total > 0)[:, None], weighted, positions.mean(axis=0)).astype(np.float32)


def strength(scores: np.ndarray, top_images: int) -> np.ndarray:
    """(V,) the mean of each node's ``top_images`` best scores over the photos."""
    count = max(1, min(top_images, len(scores)))
    return np.sort(scores, axis=0)[-count:].mean(axis=0)


def _keep(
    layer: str,
    stride: tuple[float, float],
    scale: np.ndarray,
    state: _Inference,
    parents: np.ndarray,
    weights: np.ndarray,
    settings: Settings,
) -> LayerNodes:
    """The ``top_m`` strongest nodes of the fitted layer, strongest first."""
    filters, k = state.mu.shape[:2]
    rank = strength(state.scores, settings.top_images)
    keep = np.argsort(-rank, kind="stable")[: settings.top_m]
    return LayerNodes(
        layer=layer,
        stride=stride,
        scale=scale,
        filters=(keep // k).astype(np.int64),
        patterns=(keep % k).astype(np.int64),
        mu=state.mu.reshape(-1, 2)[keep],
        sigma=state.sigma.reshape(-1)[keep],
        mean_position=_weighted_mean(state.positions[:, keep], state.scores[:, keep]),
        support=state.mass.reshape(-1)[keep].astype(np.float32),
        strength=rank[keep].astype(np.float32),
        positions=state.positions[:, keep],
        scores=state.scores[:, keep],
        parents=parents[keep] if parents.shape[1] else np.full((len(keep), 0), -1, np.int64),
        weights=weights[keep] if weights.shape[1] else np.zeros((len(keep), 0), np.float32),
    )


def edge_priors(child: LayerNodes, parent: LayerNodes) -> list[tuple[int, int, float, np.ndarray, float]]:
    """Each edge's displacement prior, from the training photos.

    Returns:
        (child index, parent index, weight, displacement (row, col) of the child from the parent in
        input pixels, its standard deviation), weighted by both nodes' scores on each photo.
    """
    edges = []
    for v in range(len(child)):
        for slot, u in enumerate(child.parents[v]):
            if u < 0:
                continue
            w = child.scores[:, v] * parent.scores[:, u]
            offset = child.positions[:, v] - parent.positions[:, u]
            total = float(w.sum())
            if total <= 0:
                continue
            mean = (w[:, None] * offset).sum(axis=0) / total
            spread = math.sqrt(float((w * ((offset - mean) ** 2).sum(axis=1)).sum()) / (2 * total))
            edges.append((v, int(u), float(child.weights[v, slot]), mean.astype(np.float64), spread))
    return edges
