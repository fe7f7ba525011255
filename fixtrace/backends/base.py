"""The interface every backend implements: array placement, fixation-set bookkeeping and the kernels.

Kernels take flat arrays in the backend's memory and geometry tuples (see kernels/shared);
they return index arrays in the same memory. Rules call only these methods, so a rule is
one op, one body in kernels/shared, and a CPU and a CUDA driver of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from fixtrace.fixations.fixation_set import FixationSet


class Backend(ABC):
    """One place where fixation kernels run.

    The kernel packages ``kernels.cpu`` and ``kernels.cuda`` export the same launcher names, so
    the launches that need nothing backend-specific are written once here, on the backend's
    kernel modules.

    Attributes:
        name: ``"cpu"`` or ``"cuda"``.
        conv, pool, dense, index: this backend's kernel modules.
    """

    name: str = ""
    #: Whether 1x1 convs are faster read channels last (``pointwise_backtrack``), a copy included.
    pointwise_channels_last: bool = False
    #: Whether the kernels release the GIL: ``BacktrackPlan.run`` may then walk groups of a batch's
    #: photos in threads (``serial`` gives the backend to use inside them).
    splits_items: bool = False
    conv: ModuleType
    pool: ModuleType
    dense: ModuleType
    index: ModuleType

    def __init__(self) -> None:
        self._constants: dict[int, tuple[np.ndarray, Any]] = {}

    # -- memory -------------------------------------------------------------------------------
    @abstractmethod
    def asarray(self, array: np.ndarray) -> Any:
        """``array`` (contiguous) in this backend's memory."""

    def constant(self, array: np.ndarray) -> Any:
        """A constant (weights) in this backend's memory, placed once per array object."""
        held = self._constants.get(id(array))
        if held is None or held[0] is not array:
            held = (array, self.asarray(np.ascontiguousarray(array)))
            self._constants[id(array)] = held
        return held[1]

    def serial(self) -> Backend:
        """This backend with no kernel that starts threads of its own (to run inside threads)."""
        return self

    def describe(self) -> dict[str, Any]:
        """What runs the kernels, for reports."""
        return {"backend": self.name}

    # -- fixation sets ------------------------------------------------------------------------
    @abstractmethod
    def start(self, index: Sequence[int] | np.ndarray) -> FixationSet:
        """Fixations with count 1 at the given flat indices, in this backend's memory."""

    @abstractmethod
    def union(self, sets: list[FixationSet], size: int | None = None) -> FixationSet:
        """All fixations of several sets on the same tensor (of ``size`` elements, when known)."""

    @abstractmethod
    def compact(self, fixations: FixationSet) -> FixationSet:
        """The set without its dropped entries (index -1)."""

    # -- kernels ------------------------------------------------------------------------------
    @abstractmethod
    def conv_backtrack(self, xf: Any, wf: Any, index: Any, g: tuple[int, ...], location: int) -> Any:
        """See ``kernels.shared.conv.conv_one``."""

    def depthwise_backtrack_recomputed(
        self,
        src: Any,
        src_w: Any,
        src_bias: Any,
        sg: tuple[int, ...],
        low: float,
        high: float,
        wf: Any,
        index: Any,
        g: tuple[int, ...],
        location: int,
    ) -> Any:
        """See ``kernels.shared.conv.depthwise_recomputed_one``."""
        return self.conv.depthwise_backtrack_recomputed(src, src_w, src_bias, sg, low, high, wf, index, g, location)

    def pointwise_backtrack(self, xl: Any, wf: Any, index: Any, g: tuple[int, ...]) -> Any:
        """See ``kernels.cpu.conv.pointwise_backtrack`` (only where ``pointwise_channels_last``)."""
        return self.conv.pointwise_backtrack(xl, wf, index, g)

    def pool_argmax(self, xf: Any, index: Any, g: tuple[int, ...]) -> Any:
        """See ``kernels.shared.pool.pool_one``."""
        return self.pool.pool_argmax(xf, index, g)

    def global_argmax(self, xf: Any, index: Any, g: tuple[int, ...]) -> Any:
        """See ``kernels.shared.pool.global_one``."""
        return self.pool.global_argmax(xf, index, g)

    @abstractmethod
    def dense_positive(
        self, af: Any, wf: Any, fixations: FixationSet, n_batch: int, n_in: int, n_out: int, weighted: bool = False
    ) -> FixationSet:
        """Inputs with a positive contribution to a selected output, counts summed over the
        outputs (each input the whole count, or, ``weighted``, its share by contribution)."""

    @abstractmethod
    def global_spread(self, xf: Any, fixations: FixationSet, g: tuple[int, ...]) -> FixationSet:
        """Channel fixations of a global average pool shared among their cells by positive value
        (see ``kernels.cpu.pool.global_spread``)."""

    def dense_argmax(self, af: Any, wf: Any, index: Any, n_in: int, n_out: int) -> Any:
        """See ``kernels.shared.dense.dense_argmax_one``."""
        return self.dense.dense_argmax(af, wf, index, n_in, n_out)

    def remap(self, index: Any, table: np.ndarray) -> Any:
        """See ``kernels.shared.index.remap_one`` (-1: dropped)."""
        return self.index.remap(index, table)

    def route(self, index: Any, inner: int, along: int, offset: int, size: int) -> Any:
        """See ``kernels.shared.index.route_one`` (-1: held by another input)."""
        return self.index.route(index, inner, along, offset, size)

    @abstractmethod
    def winner(self, candidates: list[tuple[Any, Any]]) -> Any:
        """Per fixation, which candidate holds the largest value (the first on ties).

        Args:
            candidates: (flat values, index into them) per operand, in priority order.

        Returns:
            int64 operand number per fixation.
        """

    @abstractmethod
    def select(self, index: Any, chosen: Any, k: int) -> Any:
        """``index`` where ``chosen == k``, else -1."""
