"""The one base of every explanation method, fixations included, and the registry of methods.

A method is prepared once per model (``__init__``: what it ``needs`` kept from the forward),
then ``explain(run, targets)`` turns one forward of a batch into one map per photo. ``run``
offers the kept tensors, the backend and a batched forward, so methods that run the model again
(occlusion, RISE, Score-CAM) sit on the same base as the walks. Adding a method is one module
with a class decorated ``@register``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fixtrace import validate
from fixtrace.errors import FixtraceError, OptionError
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.render.display import Display
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors

if TYPE_CHECKING:
    from fixtrace.explanation import LayerFixations


@dataclass(frozen=True)
class Parameter:
    """One option of a method (``occlusion:patch=32`` on the command line, ``patch=32`` in Python).

    Attributes:
        default: the value when not given (None: the method chooses).
        help: what it does, in a few words.
        kind: ``int``, ``float``, ``str`` or ``bool``.
        low, high: bounds of a number (inclusive).
        choices: the values a string may take (empty: any name).
    """

    default: Any
    help: str
    kind: type = str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """``value`` validated (strings from the command line converted).

        Raises:
            OptionError: naming the option and what it takes.
        """
        if value is None:
            return None
        if isinstance(value, str) and self.kind in (int, float):
            try:
                value = self.kind(value)
            except ValueError:
                raise OptionError(f"{name} must be a {'whole ' if self.kind is int else ''}number, not {value!r}") from None
        if self.kind is int:
            return validate.integer(
                name, value, None if self.low is None else int(self.low), None if self.high is None else int(self.high)
            )
        if self.kind is float:
            return validate.number(
                name,
                value,
                self.low if self.low is not None else -np.inf,
                self.high if self.high is not None else np.inf,
                low_open=False,
            )
        if self.kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            return validate.boolean(name, value)
        if self.choices:
            return validate.choice(name, value, self.choices)
        return validate.text(name, value)


@dataclass
class Maps:
    """What a method made for a batch.

    Attributes:
        maps: float32 (N, H, W) on the model input's grid, one per photo (not normalised).
        coarse: float32 (N, h, w) non-negative maps on a layer's grid (what Gradual
            Extrapolation sharpens), when the method makes them and ``wants_coarse`` is set.
        points: fixations only: per photo, (rows, cols, counts) of the input pixels reached.
        per_layer: fixations only: per photo, the fixations on every tensor the walk reached.
        heat_from_points: the heat map on the photo is the points blurred (CNN Fixations), not
            ``maps`` resampled.
        relative: only differences within a map mean something (RISE's maps all sit near the
            class probability): the heat map spans the map's min to its max, not 0 to its max.
        gradients: methods with a signed view (``Display.signed``): float32 (N, H, W, C), the
            signed input gradient, channels last in the model's channel order.
    """

    maps: np.ndarray
    coarse: np.ndarray | None = None
    points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
    per_layer: Sequence[Mapping[str, LayerFixations]] | None = None
    heat_from_points: bool = False
    relative: bool = False
    gradients: np.ndarray | None = None


class Method:
    """Base of every explanation method.

    Subclasses set ``name``, declare their ``parameters``, add the tensors they read to
    ``needs`` in ``__init__`` and implement ``explain`` (or ``maps`` when they only read the
    kept tensors).

    Args:
        graph: the layer graph.
        logits: the class-score tensor (before any Softmax).
        shapes: tensor shapes at the model's input size.
        upsample_mode: how layer maps reach the input grid: ``"bilinear"`` or ``"nearest"``.
        **params: the method's ``parameters``.

    Raises:
        OptionError: a parameter the method does not take, or a bad value.
        ModelError, UnsupportedOpError: the method cannot run on this model.

    Attributes:
        needs: tensors the forward must keep for ``explain``.
        touched: computed tensors whose shapes the method reads (kept when shape inference
            cannot tell them).
        recipes: how unkept tensors read at a few positions are recomputed (fixations).
        params: the parameters, validated, defaults filled in.
    """

    name: ClassVar[str] = ""
    #: What the method is, in a few words (``fixtrace info``, ``--help``).
    summary: ClassVar[str] = ""
    #: Whether ``explain`` can also give layer-grid maps (what Gradual Extrapolation sharpens).
    coarse_maps: ClassVar[bool] = False
    #: The options the method takes.
    parameters: ClassVar[dict[str, Parameter]] = {}
    #: Where the method comes in listings and ``--method all`` (lower first).
    rank: ClassVar[int] = 100
    #: How its maps are shown (``render.display``): pixel-level gradient maps clip at the 99th
    #: percentile (``GRADIENT_DISPLAY``); the others show the map up to its max.
    display: ClassVar[Display] = Display()
    #: Whether onnxruntime may run its gradient walks (``GradientPlan`` attributes) instead of
    #: the numpy rules (``compile.backward``); ``keep_for_walk`` then keeps what they read.
    onnx_backward: ClassVar[bool] = False

    def __init__(
        self,
        graph: LayerGraph,
        logits: str,
        shapes: dict[str, tuple[int, ...]] | None = None,
        upsample_mode: str = "bilinear",
        **params: Any,
    ) -> None:
        validate.keywords(params, self.parameters, f"method {self.name}")
        self.graph = graph
        self.logits = logits
        self.shapes = shapes or {}
        self.upsample_mode = upsample_mode
        self.params: dict[str, Any] = {k: p.check(k, params.get(k, p.default)) for k, p in self.parameters.items()}
        self.needs: set[str] = set()
        self.touched: set[str] = set()
        self.recipes: dict[str, Any] = {}
        #: Set by Gradual Extrapolation: ``explain`` fills ``Maps.coarse``.
        self.wants_coarse = False

    def keep_for_walk(self, names: set[str]) -> None:
        """Keep ``names`` for its gradient walk (run on the batch's own forward: ``needs``)."""
        self.needs |= names

    def check(self, tensors: Tensors) -> None:
        """Refuse what only a real run's shapes reveal (called once per model, on a blank image)."""

    def explain(self, run: Run, targets: list[int]) -> Maps:
        """One map per photo of the batch for its target class.

        Args:
            run: the forward of the batch (kept tensors, scores, backend, batched forward).
            targets: one class per photo.
        """
        return Maps(self.maps(run.tensors, targets), self.coarse(run.tensors, targets) if self.wants_coarse else None)

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """float32 (N, H, W) maps on the input grid, for methods that only read the kept tensors."""
        raise NotImplementedError(f"{type(self).__name__} implements neither explain nor maps")

    def coarse(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) non-negative maps on a layer's grid, for Gradual Extrapolation.

        Raises:
            FixtraceError: the method makes input-resolution maps, which there is nothing to sharpen in.
        """
        raise FixtraceError(self.no_coarse_maps())

    def prepare_coarse(self) -> None:
        """Make ``explain`` fill ``Maps.coarse`` (Gradual Extrapolation asks)."""
        if not self.coarse_maps:
            raise OptionError(self.no_coarse_maps())
        self.wants_coarse = True

    def no_coarse_maps(self) -> str:
        """Why Gradual Extrapolation cannot sharpen this method's maps."""
        sharpened = ", ".join(sorted(name for name, cls in METHODS.items() if cls.coarse_maps))
        return f"{self.name} maps are already at the input's resolution: Gradual Extrapolation sharpens coarse maps ({sharpened})"

    def notes(self) -> list[str]:
        """What a user should know about this method's maps on this model, one line each
        (printed once by the CLI, kept in explanation.json); none by default."""
        return []

    def settings(self) -> dict[str, Any]:
        """What produced the maps, for the explanation's record."""
        return {k: v for k, v in self.params.items() if v is not None}

    def seed(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """d(score)/d(logits): one-hot at each photo's target class."""
        shape = tensors.shape(self.logits)
        seed = np.zeros((shape[0], int(np.prod(shape[1:]))), dtype=np.float32)
        seed[np.arange(shape[0]), targets] = 1.0
        return seed.reshape(shape)

    def input_grid(self, tensors: Tensors) -> tuple[int, int]:
        """(rows, cols) of the model input in this run."""
        shape = tensors.shape(self.graph.image_input.name)
        return (shape[2], shape[3]) if self.graph.image_input.layout == "NCHW" else (shape[1], shape[2])


#: Method name (as on the command line) -> class, filled by ``register`` as fixtrace.methods imports its modules.
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its ``name``.

    Raises:
        RuntimeError: two methods of one name.
    """
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise RuntimeError(f"two methods named {cls.name}: {METHODS[cls.name].__name__} and {cls.__name__}")
    METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    """Every registered method, in display order (``rank``, then name)."""
    return sorted(METHODS, key=lambda name: (METHODS[name].rank, name))
