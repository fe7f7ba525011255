"""A set of fixations on one tensor: flat indices (batch included) with a count each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fixtrace.kernels.cpu.sets import DENSE_RATIO, merge_dense, merge_duplicates


@dataclass(frozen=True)
class FixationSet:
    """Fixations on one tensor.

    The arrays live where the backend computes: numpy arrays on the CPU, device arrays on a
    GPU (where duplicates are not merged between layers; ``host`` merges them).

    Attributes:
        index: int64 flat indices into the tensor, batch included.
        count: float64 per index: how many fixations above merged into it.
        unique: True when ``index`` is known to be sorted and free of duplicates.
    """

    index: Any
    count: Any
    unique: bool = False

    @classmethod
    def single(cls, index: list[int] | np.ndarray) -> FixationSet:
        """Fixations with count 1 at the given flat indices (on the host)."""
        idx = np.asarray(index, dtype=np.int64).ravel()
        return cls(idx, np.ones(idx.size, dtype=np.float64)).merged()

    def __len__(self) -> int:
        return int(self.index.size)

    def with_index(self, index: Any) -> FixationSet:
        """The same counts moved to new indices (which may now collide)."""
        return FixationSet(index, self.count)

    def merged(self, size: int | None = None) -> FixationSet:
        """This set (host arrays) with duplicates merged (counts summed), indices sorted.

        Args:
            size: elements in the tensor (batch included), when known: a set with many
                fixations per element is merged by marking instead of sorting.
        """
        if self.unique:
            return self
        if size is not None and size <= DENSE_RATIO * self.index.size:
            index, count = merge_dense(self.index, self.count, size)
        else:
            index, count = merge_duplicates(self.index, self.count)
        return FixationSet(index, count, unique=True)

    def host(self) -> FixationSet:
        """This set merged, as numpy arrays (copied from the device if need be)."""
        if isinstance(self.index, np.ndarray):
            return self.merged()
        return FixationSet(self.index.copy_to_host(), self.count.copy_to_host()).merged()

    def item(self, b: int, per_item: int) -> FixationSet:
        """The fixations of batch item ``b`` (host arrays), re-based to a batch of one.

        Args:
            b: the batch index.
            per_item: elements per batch item of the tensor.
        """
        own = self.host()
        lo, hi = np.searchsorted(own.index, [b * per_item, (b + 1) * per_item])
        return FixationSet(own.index[lo:hi] - b * per_item, own.count[lo:hi], unique=True)

    def positions(self, shape: tuple[int, ...]) -> np.ndarray:
        """Multi-indices of the fixations (host) in a tensor of ``shape``: int64 (n, rank)."""
        return np.stack(np.unravel_index(self.host().index, shape), axis=1).astype(np.int64)
