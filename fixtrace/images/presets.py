"""Preprocessing presets: how a model family expects its input, by name, from a JSON file or from
the model's own metadata (the key ``fixtrace.preprocessing`` that ``exporters/`` writes)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fixtrace.errors import ModelError, OptionError
from fixtrace.validate import choice

if TYPE_CHECKING:  # the presets' names and fields are read without onnx (the command line's parser)
    import onnx

#: The ONNX ``metadata_props`` key holding a preset as JSON (the same JSON as ``--preset-file``).
METADATA_KEY = "fixtrace.preprocessing"

#: Resize policies: resize the short side then centre-crop; resize straight to the input size;
#: fit the long side inside the input and pad the rest with black (letterbox).
RESIZE_POLICIES = ("short", "exact", "letterbox")


@dataclass(frozen=True)
class Preset:
    """How a model family expects its input.

    Attributes:
        name: preset name.
        resize: ``"short"`` resizes the short side to ``input * resize_ratio`` then centre-crops;
            ``"exact"`` resizes straight to the input size; ``"letterbox"`` fits the whole photo
            inside the input, keeping its aspect ratio, and pads with black.
        resize_ratio: short side / crop side for ``"short"`` (256 / 224 for ImageNet).
        bgr: feed channels in BGR order.
        scale: multiply 0..255 pixel values by this first.
        mean, std: per-channel (in the fed order), applied after ``scale``: (x - mean) / std.
        default_size: input side used when the model's spatial size is symbolic.
        description: one line for people; built from the fields when empty.
        layout: the input layout the model's exporter declared (``"NCHW"``/``"NHWC"``), if any.
    """

    name: str
    resize: str
    resize_ratio: float
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_size: int = 224
    description: str = ""
    layout: str | None = None

    def describe(self) -> str:
        """One line saying exactly what is done to a photo (printed on every run)."""
        if self.resize == "short":
            steps = [f"resize the short side to {self.resize_ratio:.4g} x the input side, centre crop"]
        elif self.resize == "letterbox":
            steps = ["fit inside the input keeping the aspect ratio, pad with black"]
        else:
            steps = ["resize to the input size"]
        steps.append("BGR" if self.bgr else "RGB")
        steps.append(f"x * {self.scale:.6g}")
        if any(m != 0 for m in self.mean):
            steps.append(f"- mean {_numbers(self.mean)}")
        if any(s != 1 for s in self.std):
            steps.append(f"/ std {_numbers(self.std)}")
        return f"{self.name}: " + ", ".join(steps)

    def to_dict(self) -> dict[str, Any]:
        """The preset as plain JSON-able values (the ``--preset-file`` format)."""
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        if values["layout"] is None:
            del values["layout"]
        if not values["description"]:
            del values["description"]
        return values

    def to_metadata(self) -> dict[str, str]:
        """``{METADATA_KEY: json}``, ready for an ONNX model's ``metadata_props``."""
        return {METADATA_KEY: json.dumps(self.to_dict(), sort_keys=True)}

    @classmethod
    def from_dict(cls, values: Any, where: str) -> Preset:
        """A preset from JSON values; missing fields take the ``raw`` preset's.

        Args:
            values: a mapping with any of the Preset fields.
            where: what the values came from, for error messages (a file, the model's metadata).

        Raises:
            OptionError: not a mapping, an unknown field, or a value of the wrong kind or range.
        """
        if not isinstance(values, dict):
            raise OptionError(f"{where}: preprocessing must be a JSON object, not {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise OptionError(
                f"{where}: unknown preprocessing field {unknown[0]!r}; fields: {', '.join(cls.__dataclass_fields__)}"
            )
        base = PRESETS["raw"]
        fields: dict[str, Any] = {"name": "custom", "description": ""}
        for key, value in values.items():
            fields[key] = check_field(key, value, where)
        return replace(base, **fields)

    @classmethod
    def from_file(cls, path: str | Path) -> Preset:
        """A preset from a JSON file (``--preset-file``).

        Raises:
            OptionError: the file cannot be read or holds no valid preset.
        """
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OptionError(f"cannot read preset file {path}: {exc}") from None
        preset = cls.from_dict(values, f"preset file {path}")
        return preset if "name" in values else replace(preset, name=Path(path).stem)


def preset_from_model(model: onnx.ModelProto) -> Preset | None:
    """The preset the model's exporter wrote into its metadata, or None.

    Raises:
        ModelError: the metadata holds a preset that is not valid JSON or not a valid preset.
    """
    from fixtrace.model.metadata import metadata_json

    values = metadata_json(model, METADATA_KEY)
    if values is None:
        return None
    try:
        preset = Preset.from_dict(values, f"the model's metadata {METADATA_KEY!r}")
    except OptionError as exc:
        raise ModelError(str(exc)) from None
    return preset if "name" in values else replace(preset, name="model metadata")


def _numbers(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def check_field(key: str, value: Any, where: str) -> Any:
    """One preset field checked and converted (lists of 1 or 3 numbers to a 3-tuple).

    Args:
        key: the field's name.
        value: its JSON value.
        where: what the value came from, for error messages (a file, a flag).

    Raises:
        OptionError: a value of the wrong kind or range.
    """

    def bad(what: str) -> OptionError:
        return OptionError(f"{where}: preprocessing field {key!r} must be {what}, not {value!r}")

    if key in ("name", "description"):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key == "resize":
        if not isinstance(value, str) or value.strip().lower() not in RESIZE_POLICIES:
            raise bad(f"one of {', '.join(RESIZE_POLICIES)}")
        return value.strip().lower()
    if key == "layout":
        if value is None:
            return None
        return choice("input layout", str(value).upper(), ("NCHW", "NHWC"))
    if key == "bgr":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key == "default_size":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8192:
            raise bad("an integer from 1 to 8192")
        return value
    if key in ("mean", "std"):
        numbers = [value] * 3 if _is_number(value) else list(value) if isinstance(value, tuple) else value
        if not isinstance(numbers, list) or len(numbers) not in (1, 3) or not all(_is_number(v) for v in numbers):
            raise bad("a number or a list of 1 or 3 numbers")
        numbers = numbers * 3 if len(numbers) == 1 else numbers
        if key == "std" and any(v == 0 for v in numbers):
            raise bad("non-zero")
        return tuple(float(v) for v in numbers)
    if not _is_number(value) or value <= 0:  # scale, resize_ratio
        raise bad("a positive number")
    if key == "resize_ratio" and value < 1:
        raise bad("at least 1 (the resized short side is never smaller than the crop)")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: name, resize, resize ratio, BGR, scale, mean, std (see Preset).
_PRESET_TABLE = (
    ("imagenet", "short", 256 / 224, False, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ("caffe", "short", 256 / 224, True, 1.0, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0)),
    ("tf", "exact", 1.0, False, 1 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    ("raw", "exact", 1.0, False, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ("efficientnet-lite", "short", 256 / 224, False, 1.0, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    ("letterbox", "letterbox", 1.0, False, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
)
_DESCRIPTIONS = {
    "imagenet": "torchvision: resize 256, centre crop 224, RGB in [0, 1], ImageNet mean/std",
    "caffe": "Caffe: resize 256, centre crop 224, BGR 0..255 minus the mean pixel",
    "tf": "Keras/TF: resize to the input size, RGB scaled to [-1, 1]",
    "raw": "resize to the input size, RGB in [0, 1], nothing else",
    "efficientnet-lite": "EfficientNet-Lite: resize 256, centre crop 224, RGB (x - 127) / 128",
    "letterbox": "fit the photo inside the input, pad with black, RGB in [0, 1] (detectors' style)",
}
PRESETS: dict[str, Preset] = {row[0]: Preset(*row, description=_DESCRIPTIONS[row[0]]) for row in _PRESET_TABLE}


def get_preset(name: str | Preset) -> Preset:
    """Look a preset up by name, in any case (a Preset passes through).

    Raises:
        OptionError: not a preset name (also a ValueError).
    """
    if isinstance(name, Preset):
        return name
    return PRESETS[choice("preprocessing preset", name, PRESETS, "--preset")]
