"""Method specs as written on the command line and in Python: ``name[:ge][:key=value...]``,
e.g. ``gradcam:ge``, ``occlusion:patch=32:stride=16``; ``all`` is every method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fixtrace import validate
from fixtrace.errors import OptionError
from fixtrace.methods.base import METHODS, Method, method_names
from fixtrace.methods.extrapolation import Extrapolated
from fixtrace.model.layer_graph import LayerGraph

#: The spec that names every registered method.
ALL = "all"


@dataclass(frozen=True)
class MethodSpec:
    """One method with its options.

    Attributes:
        name: the registered method's name.
        params: its parameters given in the spec, as (name, value) pairs.
        ge: sharpened with Gradual Extrapolation.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    ge: bool = False

    @property
    def label(self) -> str:
        """The spec written back (the folder and the key of a method's results)."""
        return ":".join([self.name, *(["ge"] if self.ge else []), *(f"{k}={v}" for k, v in self.params)])


def parse_spec(text: Any) -> MethodSpec:
    """Parse ``name[:ge][:key=value...]``.

    Raises:
        OptionError: not a string, an unknown method (with the closest name), or a parameter the
            method does not take.
    """
    if isinstance(text, MethodSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise OptionError(f"a method is a name like 'gradcam' or 'occlusion:patch=32', not {text!r}")
    name, *parts = [part.strip() for part in text.strip().split(":")]
    name = validate.choice("method", name, method_names(), "--method")
    cls = METHODS[name]
    params: list[tuple[str, Any]] = []
    ge = False
    for part in parts:
        key, equals, value = part.partition("=")
        if part.lower() == "ge":
            ge = True
        elif equals and key in cls.parameters:
            params.append((key, cls.parameters[key].check(f"{name}'s {key}", value)))
        else:
            takes = ", ".join([*(f"{k}=" for k in cls.parameters), *(["ge"] if cls.coarse_maps else [])]) or "no options"
            raise OptionError(f"method {name} takes no option {part!r} (in {text!r}); it takes {takes}")
    return MethodSpec(name, tuple(params), ge)


def parse_specs(value: Any) -> list[MethodSpec]:
    """One spec, a comma-separated list, a sequence of specs, or ``all``.

    Raises:
        OptionError: an empty list, a method asked twice, or a bad spec.
    """
    texts = value.split(",") if isinstance(value, str) else value
    if isinstance(texts, (str, MethodSpec)) or not isinstance(texts, Sequence):
        raise OptionError(f"methods must be a method name, a comma-separated list or a list of names, not {value!r}")
    specs: list[MethodSpec] = []
    for text in texts:
        if isinstance(text, str) and text.strip().lower() == ALL:
            specs += [MethodSpec(name) for name in method_names()]
        else:
            specs.append(parse_spec(text))
    if not specs:
        raise OptionError(f"no method asked for (got {value!r}); methods: {', '.join(method_names())}, or all")
    labels = [s.label for s in specs]
    twice = next((label for k, label in enumerate(labels) if label in labels[:k]), None)
    if twice:
        raise OptionError(f"method {twice} is asked for twice")
    return specs


def build(
    spec: MethodSpec, graph: LayerGraph, logits: str, shapes: dict[str, tuple[int, ...]], defaults: dict[str, Any] | None = None
) -> Method:
    """The method of a spec, prepared on a model.

    Args:
        spec: the method and its options.
        graph, logits, shapes: the model (see ``Method``).
        defaults: options that apply to every method taking them (``layer``, ``conv_location``),
            overridden by the spec's own.

    Raises:
        OptionError, ModelError, UnsupportedOpError: as the method's constructor.
    """
    cls = METHODS[spec.name]
    params = {k: v for k, v in (defaults or {}).items() if k in cls.parameters and v is not None} | dict(spec.params)
    method = cls(graph, logits, shapes=shapes, **params)
    return Extrapolated(method) if spec.ge else method
