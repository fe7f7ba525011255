"""Host-side packing of layer sizes into the int tuples the kernel bodies read."""

from __future__ import annotations

from collections.abc import Sequence


def pairs(*values: Sequence[int]) -> tuple[int, ...]:
    """The first two entries of each sequence, as ints, in order ((sh, sw), (top, left), ...)."""
    return tuple(int(v) for sequence in values for v in sequence[:2])
