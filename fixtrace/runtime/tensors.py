"""The values of one model run, handed to every rule and method in the backend's memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fixtrace.errors import ModelError

if TYPE_CHECKING:
    from fixtrace.backends.base import Backend
    from fixtrace.fixations.recompute import ConvRecipe


class Tensors:
    """Values and shapes of one run, handed to the rules in their backend's memory.

    Args:
        values: tensor name -> value, as returned by the session.
        shapes: tensor name -> static shape for this input shape.
        constants: the layer graph's constant tensors.
        recipes: how rules that read a few positions of an unkept tensor recompute them.
        backend: where the kernels run (default: the CPU).
    """

    def __init__(
        self,
        values: dict[str, np.ndarray],
        shapes: dict[str, tuple[int, ...]],
        constants: dict[str, np.ndarray],
        recipes: dict[str, ConvRecipe] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.values = values
        self.shapes = shapes
        self.constants = constants
        self.recipes = recipes or {}
        if backend is None:
            from fixtrace.backends.cpu import CpuBackend

            backend = CpuBackend()
        self.backend = backend
        self._placed: dict[tuple[str, str], Any] = {}
        #: Photos (first, end) that channel-last copies are made for (None: all).
        self._items: tuple[int, int] | None = None

    def for_items(self, first: int, end: int, backend: Backend) -> Tensors:
        """The same values for a walk of photos ``first:end`` only (in a thread of its own, on a
        host backend): its channel-last copies hold those photos' rows, the rest left unwritten
        (never read, and on most systems never given memory)."""
        view = Tensors(self.values, self.shapes, self.constants, self.recipes, backend)
        view._items = (first, end)
        return view

    def value(self, name: str) -> np.ndarray:
        """The host value of a tensor (a computed one that was kept, a constant, or the input)."""
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            return self.constants[name]
        raise ModelError(f"tensor {name!r} was not kept by the session; this is a fixtrace bug")

    def flat(self, name: str) -> Any:
        """A tensor's value as flat float32 in the backend's memory (placed once per run)."""
        key = (name, "flat")
        if key not in self._placed:
            self._placed[key] = self.backend.asarray(np.asarray(self.value(name), dtype=np.float32).reshape(-1))
        return self._placed[key]

    def channels_last(self, name: str) -> Any:
        """A rank-4 NCHW tensor as flat float32 NHWC in the backend's memory (placed once per run)."""
        key = (name, "nhwc")
        if key not in self._placed:
            value = np.asarray(self.value(name), dtype=np.float32)
            if self._items is None:
                last = np.ascontiguousarray(value.transpose(0, 2, 3, 1))
            else:
                first, end = self._items
                last = np.empty((value.shape[0], *value.shape[2:], value.shape[1]), dtype=np.float32)
                last[first:end] = value[first:end].transpose(0, 2, 3, 1)
            self._placed[key] = self.backend.asarray(last.reshape(-1))
        return self._placed[key]

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of a tensor in this run."""
        if name in self.values:
            return tuple(self.values[name].shape)
        if name in self.shapes:
            return self.shapes[name]
        if name in self.constants:
            return tuple(self.constants[name].shape)
        raise ModelError(f"the shape of tensor {name!r} is unknown; this is a fixtrace bug")
