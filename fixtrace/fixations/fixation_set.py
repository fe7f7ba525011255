"""A set of fixations on one tensor: flat indices (batch included) with a count each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace.kernels.cpu.sets import merge_duplicates


@dataclass(frozen=True)
class FixationSet:
    """Fixations on one tensor.

    Attributes:
        index: int64 flat indices into the tensor, batch included.
        count: float64 per index: how many fixations above merged into it.
        unique: True when ``index`` is known to be sorted and free of duplicates.
    """

    index: np.ndarray
    count: np.ndarray
    unique: bool = False

    @classmethod
    def single(cls, index: list[int] | np.ndarray) -> "FixationSet":
        """Fixations with count 1 at the given flat indices."""
        idx = np.asarray(index, dtype=np.int64).ravel()
        return cls(idx, np.ones(idx.size, dtype=np.float64)).merged()

    def __len__(self) -> int:
        return int(self.index.size)

    def with_index(self, index: np.ndarray) -> "FixationSet":
        """The same counts moved to new indices (which may now collide)."""
        return FixationSet(np.asarray(index, dtype=np.int64), self.count)

    def merged(self) -> "FixationSet":
        """This set with duplicates merged (counts summed), indices sorted."""
        if self.unique:
            return self
        index, count = merge_duplicates(self.index, self.count)
        return FixationSet(index, count, unique=True)

    def positions(self, shape: tuple[int, ...]) -> np.ndarray:
        """Multi-indices of the fixations in a tensor of ``shape``: int64 (n, rank)."""
        return np.stack(np.unravel_index(self.index, shape), axis=1).astype(np.int64)


def union(sets: list[FixationSet]) -> FixationSet:
    """All fixations of several sets on the same tensor, counts summed where they meet."""
    if len(sets) == 1:
        return sets[0].merged()
    return FixationSet(np.concatenate([s.index for s in sets]), np.concatenate([s.count for s in sets])).merged()
