"""Per-item kernel bodies written once and compiled for both targets.

Each function here computes the answer for one fixation. ``numba.extending.register_jitable``
lets the same body be called from CPU kernels (``kernels/cpu``, loops over fixations) and
from CUDA kernels (``kernels/cuda``, one thread per fixation), so the two backends cannot
drift apart. Bodies allocate nothing, use only scalars and flat arrays, and type every
accumulator explicitly (float64), which makes CPU, GPU and the CUDA simulator agree bit for bit:
products of two float32 values are exact in float64, so fused multiply-adds change nothing.
"""
