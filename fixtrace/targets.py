"""Which classes to explain: the asked ones checked before any photo runs, or the best ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fixtrace.errors import ModelError, OptionError, TargetError
from fixtrace.explanation import ClassScore
from fixtrace.model.outputs import ClassOutput


def check_targets(target: int | Sequence[int] | None, top_k: int | None, n: int) -> list[int]:
    """Validate the requested classes before any image is run.

    Args:
        target: class index or indices, or None.
        top_k: number of best classes, or None.
        n: number of classes.

    Returns:
        The explicit targets (empty when the best classes are wanted).

    Raises:
        TargetError: an index that is not a whole number in 0..n-1, asked twice, or none at
            all; a top_k that is not a whole number in 1..n.
        OptionError: both target and top_k.
    """
    if target is not None and top_k is not None:
        raise OptionError("give target (--class) or top_k (--top-k), not both")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= n:
            raise TargetError(f"top_k (--top-k) must be a whole number between 1 and {n} (the model's classes), not {top_k!r}")
        return []
    if target is None:
        return []
    wanted = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target]
    if not wanted:
        raise TargetError("no class asked for: target is an empty list")
    for t in wanted:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise TargetError(f"class index {t!r} is not a whole number")
        if not 0 <= t < n:
            raise TargetError(f"class index {t} is out of range: the model has {n} classes (0..{n - 1})")
    twice = next((t for k, t in enumerate(wanted) if t in wanted[:k]), None)
    if twice is not None:
        raise TargetError(f"class {twice} is asked for twice")
    return [int(t) for t in wanted]  # type: ignore[arg-type]  # each checked to be an integer above


def rank_classes(
    scores: np.ndarray,
    output: ClassOutput,
    names: list[str],
    explicit: list[int],
    top_k: int | None,
    average: bool = False,
) -> list[tuple[Callable[[int], ClassScore], list[ClassScore], list[int]]]:
    """Per photo: a class index -> ClassScore function, its five best classes, and the classes to explain.

    Args:
        scores: float64 (N, classes) raw output values.
        output: the explained output (its kind turns scores into probabilities).
        names: class names.
        explicit: the asked classes (empty: the best ``top_k``, or the best one).
        top_k: how many best classes.
        average: the rows are crops of one photo: rank its mean probabilities (and report
            its mean raw scores); one entry is returned.

    Raises:
        ModelError: a photo's scores are not finite.
    """
    broken = ~np.isfinite(scores).all(axis=1)
    if broken.any():
        which = "this photo" if len(scores) == 1 else f"photo {int(np.argmax(broken)) + 1} of the batch"
        raise ModelError(
            f"the model's scores for {which} are not finite (NaN or infinity): the model overflows float32 on this input"
        )
    ranked: list[tuple[Callable[[int], ClassScore], list[ClassScore], list[int]]] = []
    probabilities = output.probabilities(scores)
    if average:
        scores, probabilities = scores.mean(axis=0, keepdims=True), probabilities.mean(axis=0, keepdims=True)
    for logits, probability in zip(scores, probabilities):
        order = np.argsort(-probability, kind="stable")

        def score(i: int, logits: np.ndarray = logits, probability: np.ndarray = probability) -> ClassScore:
            return ClassScore(i, names[i], float(probability[i]), float(logits[i]))

        ranked.append((score, [score(int(i)) for i in order[:5]], explicit or [int(i) for i in order[: top_k or 1]]))
    return ranked
