"""Index maps of the ops that only move elements (Transpose, Pad, broadcasting) and route (Concat).

A dropped fixation (it fell in a constant pad, or belongs to another Concat input) gets
index -1; ``compact`` removes those afterwards.
"""

from __future__ import annotations

from numba.extending import register_jitable

AXIS_KEEP = 0
AXIS_CONSTANT = 1
AXIS_EDGE = 2
AXIS_WRAP = 3
AXIS_REFLECT = 4
AXIS_BROADCAST = 5
#: Columns of a remap table row: one row per output axis.
REMAP_COLUMNS = 5  # output size, input stride, begin offset, input size, AXIS_* mode


@register_jitable
def remap_one(flat, table):  # pragma: no cover - numba
    """Map one flat output index to the flat input index it copies, or -1.

    Args:
        flat: flat index into the output.
        table: int64 (rank, 5): per output axis, its size, the stride of the input axis it
            reads, the leading pad, that input axis's size and the AXIS_* mode.

    Returns:
        The flat input index, or -1 when the element is a constant pad.
    """
    rest = flat
    index = 0
    for k in range(table.shape[0] - 1, -1, -1):
        size = table[k, 0]
        coord = rest % size - table[k, 2]
        rest = rest // size
        n = table[k, 3]
        mode = table[k, 4]
        if mode == AXIS_BROADCAST:
            coord = 0
        elif mode == AXIS_CONSTANT:
            if coord < 0 or coord >= n:
                return -1
        elif mode == AXIS_EDGE:
            coord = 0 if coord < 0 else (n - 1 if coord >= n else coord)
        elif mode == AXIS_WRAP:
            coord = coord % n
        elif mode == AXIS_REFLECT:
            period = 2 * (n - 1) if n > 1 else 1
            coord = (coord if coord >= 0 else -coord) % period
            if coord >= n:
                coord = period - coord
        index += coord * table[k, 1]
    return index


@register_jitable
def route_one(flat, inner, along, offset, size):  # pragma: no cover - numba
    """The index in one Concat input of an output fixation, or -1 if another input holds it.

    Args:
        flat: flat index into the Concat output.
        inner: elements per step of the concat axis (product of the later dims).
        along: the output's size on the concat axis.
        offset, size: where this input starts on that axis, and its size there.
    """
    position = (flat // inner) % along - offset
    if position < 0 or position >= size:
        return -1
    return ((flat // (inner * along)) * size + position) * inner + flat % inner
