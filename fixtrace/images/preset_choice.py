"""Which preset a run uses: the one asked for (a name, a Preset, a JSON file), else the one in the
model's metadata, else ``imagenet``; field overrides on top; and where it came from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fixtrace.errors import ModelError, OptionError
from fixtrace.images.presets import PRESETS, Preset, check_field, get_preset, preset_from_model

if TYPE_CHECKING:  # onnx: not needed to name a preset
    from fixtrace.model.layer_graph import LayerGraph

#: Where a run's preset came from: asked for by name or as a Preset, a JSON file, the model's
#: metadata, or the default (``imagenet``) for a model without preprocessing metadata.
SOURCES = ("given", "file", "metadata", "default")
#: The fields ``choose_preset`` overrides: the Preset's own, and ``crop`` (timm's crop_pct).
OVERRIDABLE = ("resize", "resize_ratio", "bgr", "scale", "mean", "std", "default_size", "crop")


@dataclass(frozen=True)
class PresetChoice:
    """A preset to settle once the model is read (see ``choose_preset``).

    Attributes:
        base: the preset asked for; None: the model's metadata preset, else ``imagenet``.
        source: ``"given"`` or ``"file"`` for a base, ``""`` without one.
        file: the JSON file the base came from ("" otherwise).
        overrides: checked fields set on top of the base, as (field, value) pairs.
    """

    base: Preset | None = None
    source: str = ""
    file: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()

    def resolve(self, graph: LayerGraph) -> tuple[Preset, str]:
        """The preset for a model and its source (one of ``SOURCES``).

        Args:
            graph: the model's layer graph (its metadata is read when no base was asked for).

        Raises:
            ModelError: the metadata preset is invalid, or the chosen preset declares another layout.
        """
        preset, source = self.base, self.source
        if preset is None:
            preset, source = preset_from_model(graph.model), "metadata"
        if preset is None:
            preset, source = PRESETS["imagenet"], "default"
        spec = graph.image_input
        if preset.layout is not None and preset.layout != spec.layout:
            where = {"metadata": "the model's metadata", "file": f"preset file {self.file}"}.get(source, "the preset")
            raise ModelError(
                f"{where} declares input layout {preset.layout}, but fixtrace reads the model's input "
                f"{spec.name!r} {spec.shape} as {spec.layout} from its graph"
            )
        if self.overrides:
            preset = replace(preset, **dict(self.overrides), name=f"{preset.name}+custom", description="")
        return preset, source


#: What ``preset=`` takes.
PresetArg = str | os.PathLike | Preset | PresetChoice | None


def choose_preset(
    preset: PresetArg = None, fields: Mapping[str, Any] | None = None, flags: Mapping[str, str] | None = None
) -> PresetChoice:
    """What to preprocess with; a name or a file is checked (and the file read) now.

    Args:
        preset: a preset name (any case), a Preset, a JSON file (a path, a string ending in
            ``.json`` or naming a file), a PresetChoice, or None: the model's metadata preset,
            else ``imagenet``.
        fields: Preset fields to set on top (``resize``, ``resize_ratio``, ``bgr``, ``scale``,
            ``mean``, ``std``, ``default_size``), and ``crop``: the crop fraction of timm's
            ``crop_pct`` in (0, 1], which means ``resize="short"``, ``resize_ratio=1/crop``, or
            ``"none"``: no crop, ``resize="exact"`` (the whole photo, its aspect ratio not kept).
        flags: the command-line flag of each field, for error messages.

    Raises:
        OptionError: an unknown preset name, an unreadable or invalid file, a bad field.
    """
    if isinstance(preset, PresetChoice):
        choice = preset
    elif preset is None:
        choice = PresetChoice()
    elif isinstance(preset, Preset):
        choice = PresetChoice(preset, "given")
    elif isinstance(preset, os.PathLike) or (isinstance(preset, str) and _is_file_name(preset)):
        choice = PresetChoice(Preset.from_file(Path(preset)), "file", str(preset))
    elif isinstance(preset, str):
        choice = PresetChoice(get_preset(preset), "given")
    else:
        raise OptionError(f"preset (--preset) must be a preset name, a Preset or a JSON file, not {type(preset).__name__}")
    overrides = _overrides(dict(fields or {}), dict(flags or {}))
    return replace(choice, overrides=choice.overrides + overrides) if overrides else choice


def parse_number(text: str, flag: str) -> float:
    """A number written on the command line, fractions such as ``1/255`` included.

    Raises:
        OptionError: not a number, naming the flag.
    """
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise OptionError(f"{flag} must be a number (a fraction such as 1/255 too), not {text!r}") from None


def parse_crop(text: str, flag: str) -> float | str:
    """``--crop``: a fraction, or ``none`` (no crop: the whole photo resized to the input).

    Raises:
        OptionError: neither, naming the flag.
    """
    return "none" if text.strip().lower() == "none" else parse_number(text, flag)


def parse_numbers(text: str, flag: str) -> list[float]:
    """One number, or three comma-separated ones (``0.485,0.456,0.406``), from the command line.

    Raises:
        OptionError: anything else, naming the flag.
    """
    parts = text.split(",")
    if len(parts) not in (1, 3):
        raise OptionError(f"{flag} must be one number or three comma-separated numbers, not {text!r}")
    return [parse_number(part, flag) for part in parts]


def _is_file_name(text: str) -> bool:
    return text.strip().lower() not in PRESETS and (text.lower().endswith(".json") or Path(text).is_file())


def _overrides(fields: dict[str, Any], flags: dict[str, str]) -> tuple[tuple[str, Any], ...]:
    """The fields checked (crop turned into resize and resize_ratio), in ``OVERRIDABLE``'s order."""
    unknown = sorted(set(fields) - set(OVERRIDABLE))
    if unknown:
        raise OptionError(f"unknown preprocessing field {unknown[0]!r}; fields: {', '.join(OVERRIDABLE)}")

    def where(key: str) -> str:
        return flags.get(key, "preset override")

    checked = {key: check_field(key, value, where(key)) for key, value in fields.items() if key != "crop"}
    if "crop" in fields:
        crop = fields["crop"]
        none = isinstance(crop, str) and crop.strip().lower() == "none"
        if not none and (isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1):
            raise OptionError(f"{where('crop')}: the crop fraction must be in (0, 1], e.g. 0.875, or none, not {crop!r}")
        resize = "exact" if none else "short"
        clash = "resize_ratio" if "resize_ratio" in checked else "resize" if checked.get("resize", resize) != resize else ""
        if clash:
            sets = "resize 'exact' (no crop)" if none else "resize 'short' with ratio 1/crop"
            raise OptionError(
                f"{flags.get('crop', 'crop')} sets {sets}; it cannot go with {flags.get(clash, clash)} {fields[clash]!r}"
            )
        checked |= {"resize": resize, "resize_ratio": 1.0 if none else 1 / crop}
    return tuple((key, checked[key]) for key in OVERRIDABLE if key in checked)
