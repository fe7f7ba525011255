"""Method specs for evaluation: ``name[:flag[:flag]]``, e.g. ``fixations:centre:all-points:sigma=0.06``.

Flags: ``argmax`` / ``centre`` / ``coarse-centre`` (fixations' conv location), ``all-points`` (fixations without outlier
removal), ``ge`` (Gradual Extrapolation), ``box=F`` (box threshold, fraction of the map's max),
``sigma=F`` (fixations' blur, fraction of the short side), and the method's own options as
``key=value`` (``occlusion:patch=32``, ``rise:masks=500``; see ``fixtrace info``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fixtrace.errors import OptionError
from fixtrace.fixations.options import DEFAULT_CONV_LOCATION
from fixtrace.validate import choice

#: The image-blind baseline: a Gaussian at the photo's centre, with the model's predicted class.
BASELINE = "centre-gaussian"
#: flag -> what it sets; ``conv_location`` and ``outlier_removal`` apply to fixations only.
FLAGS: dict[str, tuple[str, Any]] = {
    "argmax": ("conv_location", "argmax"),
    "centre": ("conv_location", "centre"),
    "coarse-centre": ("conv_location", "coarse-centre"),
    "all-points": ("outlier_removal", False),
    "ge": ("ge", True),
}
#: flag=value -> the setting it overrides.
VALUED = {"box": "box_threshold", "sigma": "sigma"}
FIXATION_ONLY = {"conv_location", "outlier_removal", "sigma"}
DEFAULT_METHODS = (
    "fixations",
    "fixations:centre",
    "fixations:all-points",
    "fixations:ge",
    "cam",
    "gradcam",
    "gradcam:ge",
    "guided-gradcam",
    "saliency",
    "guided-backprop",
    BASELINE,
)


@dataclass(frozen=True)
class MethodSpec:
    """One way of making a map.

    Attributes:
        label: the spec as written (the table's row name).
        method: ``fixations``, a gradient method of ``fixtrace.methods`` or ``centre-gaussian``.
        conv_location: fixations' conv location (``auto``, ``argmax``, ``centre`` or ``coarse-centre``).
        outlier_removal: fixations' outlier removal.
        ge: sharpen with Gradual Extrapolation.
        box_threshold: this method's box threshold (None: the evaluation's).
        sigma: fixations' blur (None: the evaluation's).
        params: the method's own options, as (name, value) pairs.
    """

    label: str
    method: str
    conv_location: str = DEFAULT_CONV_LOCATION
    outlier_removal: bool = True
    ge: bool = False
    box_threshold: float | None = None
    sigma: float | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE

    @property
    def method_spec(self) -> str:
        """The method with its own options, as ``Explainer(method=...)`` takes it."""
        return ":".join([self.method, *(f"{k}={v}" for k, v in self.params)])


def parse_method(text: str) -> MethodSpec:
    """Parse ``name[:flag...]`` (flags in the module's docstring).

    Raises:
        OptionError: unknown method or flag, a bad value, or a fixations flag on another method.
    """
    from fixtrace.methods import METHODS, method_names  # the registry imports every method: only here

    if not isinstance(text, str):
        raise OptionError(f"a method spec is a string like 'gradcam:box=0.3', not {type(text).__name__}")
    name, *flags = [part.strip() for part in text.strip().split(":")]
    known = [*method_names(), BASELINE]
    try:
        name = choice("method", name, known)
    except OptionError:
        raise OptionError(f"unknown method {name!r} in {text!r}; methods: {', '.join(known)}") from None
    settings: dict[str, Any] = {}
    params: list[tuple[str, Any]] = []
    for flag in flags:
        key, equals, raw = flag.partition("=")
        own = METHODS[name].parameters if name in METHODS else {}
        if equals and key in own:
            params.append((key, own[key].check(f"{name}'s {key}", raw)))
            continue
        key, value = _flag(flag, text)
        if (key in FIXATION_ONLY and name != "fixations") or (name == BASELINE and key != "box_threshold"):
            raise OptionError(f"the flag {flag!r} does not apply to {name} (in {text!r})")
        settings[key] = value
    return MethodSpec(text.strip(), name, params=tuple(params), **settings)


def _flag(flag: str, text: str) -> tuple[str, Any]:
    """(setting, value) of one flag."""
    name, _, raw = flag.partition("=")
    if name in VALUED and raw:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 < value <= 1:
            raise OptionError(f"{name}= takes a fraction in (0, 1], not {raw!r} (in {text!r})")
        return VALUED[name], value
    if flag not in FLAGS:
        raise OptionError(f"unknown flag {flag!r} in {text!r}; flags: {', '.join(FLAGS)}, box=F, sigma=F")
    return FLAGS[flag]
