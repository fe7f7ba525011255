"""The choices a fixation walk exposes."""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Let the model's head choose (see ``HEAD_DEFAULTS``).
AUTO = "auto"
CONV_LOCATIONS = (AUTO, "argmax", "centre", "coarse-centre")
#: How the class neuron's count reaches the last feature map (see ``FixationOptions.rule``).
RULES = (AUTO, "authors", "weighted", "spread")
DEFAULT_CONV_LOCATION = AUTO
DEFAULT_RULE = AUTO
#: What ``auto`` becomes, by whether the class scores read a global pool (True) or a flattened
#: map (False); chosen on bench/localization.py's validation split (see the README): on the GAP
#: models spread + coarse-centre lowered the error by 3-23 points, on the VGG-style model (a
#: flattened map under two dense layers) the authors' rule with centre was 10 points better.
HEAD_DEFAULTS = {True: ("coarse-centre", "spread"), False: ("centre", "authors")}


@dataclass(frozen=True)
class FixationOptions:
    """Options of the backward walk.

    Attributes:
        conv_location: where a conv fixation lands inside its window: ``"argmax"`` (the cell
            with the largest input x weight of the winning channel, ties towards the centre;
            the authors' ResNet code), ``"centre"`` (the receptive-field centre; their VGG code),
            ``"coarse-centre"``: centre in the coarse layers (input cells of 8 image pixels
            or more, where one cell of argmax drift moves a fixation by 8-32 pixels), argmax
            in the finer ones; or ``"auto"`` (see ``HEAD_DEFAULTS``).
        rule: how the fully connected and global-pool steps pass counts down. ``"authors"``:
            every input with a positive contribution gets the output's whole count, and a
            pooled channel goes to its spatial argmax (the paper's rule). ``"weighted"``: each
            input gets a share of the count in proportion to its contribution a_j * w_ij.
            ``"spread"``: weighted, and a globally averaged channel's share is further spread
            over its map's cells in proportion to their positive activations, so the counts on
            the last feature map are each neuron's share of the class score (the CAM
            decomposition, carried down to the pixels by the authors' conv rules).
            ``"auto"``: see ``HEAD_DEFAULTS``.
    """

    conv_location: str = DEFAULT_CONV_LOCATION
    rule: str = DEFAULT_RULE

    def __post_init__(self) -> None:
        if self.conv_location not in CONV_LOCATIONS:
            raise ValueError(f"conv_location must be one of {CONV_LOCATIONS}, not {self.conv_location!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {self.rule!r}")

    def resolved(self, pooled_head: bool) -> FixationOptions:
        """These options with ``auto`` replaced by the choice for a head that reads a global pool
        (``pooled_head``) or a flattened map."""
        location, rule = HEAD_DEFAULTS[pooled_head]
        return replace(
            self,
            conv_location=location if self.conv_location == AUTO else self.conv_location,
            rule=rule if self.rule == AUTO else self.rule,
        )
