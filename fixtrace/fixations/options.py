"""The choices a fixation walk exposes."""

from __future__ import annotations

from dataclasses import dataclass

CONV_LOCATIONS = ("argmax", "centre")


@dataclass(frozen=True)
class FixationOptions:
    """Options of the backward walk.

    Attributes:
        conv_location: where a conv fixation lands inside its window: ``"argmax"`` (the cell
            with the largest input x weight of the winning channel, ties towards the centre;
            the authors' ResNet code) or ``"centre"`` (the receptive-field centre; their VGG code).
    """

    conv_location: str = "argmax"

    def __post_init__(self) -> None:
        if self.conv_location not in CONV_LOCATIONS:
            raise ValueError(f"conv_location must be one of {CONV_LOCATIONS}, not {self.conv_location!r}")
