"""The choices a fixation walk exposes."""

from __future__ import annotations

from dataclasses import dataclass

CONV_LOCATIONS = ("argmax", "centre", "coarse-centre")
#: How the class neuron's count reaches the last feature map (see ``FixationOptions.rule``).
RULES = ("authors", "weighted", "spread")
#: fixtrace's defaults, chosen on bench/two_objects.py and bench/localization.py (see the README).
DEFAULT_CONV_LOCATION = "coarse-centre"
DEFAULT_RULE = "spread"


@dataclass(frozen=True)
class FixationOptions:
    """Options of the backward walk.

    Attributes:
        conv_location: where a conv fixation lands inside its window: ``"argmax"`` (the cell
            with the largest input x weight of the winning channel, ties towards the centre;
            the authors' ResNet code), ``"centre"`` (the receptive-field centre; their VGG code),
            or ``"coarse-centre"``: centre in the coarse layers (input cells of 8 image pixels
            or more, where one cell of argmax drift moves a fixation by 8-32 pixels), argmax
            in the finer ones.
        rule: how the fully connected and global-pool steps pass counts down. ``"authors"``:
            every input with a positive contribution gets the output's whole count, and a
            pooled channel goes to its spatial argmax (the paper's rule). ``"weighted"``: each
            input gets a share of the count in proportion to its contribution a_j * w_ij.
            ``"spread"``: weighted, and a globally averaged channel's share is further spread
            over its map's cells in proportion to their positive activations, so the counts on
            the last feature map are each neuron's share of the class score (the CAM
            decomposition, carried down to the pixels by the authors' conv rules).
    """

    conv_location: str = DEFAULT_CONV_LOCATION
    rule: str = DEFAULT_RULE

    def __post_init__(self) -> None:
        if self.conv_location not in CONV_LOCATIONS:
            raise ValueError(f"conv_location must be one of {CONV_LOCATIONS}, not {self.conv_location!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {self.rule!r}")
