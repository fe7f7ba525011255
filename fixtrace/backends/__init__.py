"""Where the backward rules run: numba CPU kernels or numba CUDA kernels, behind one interface."""

from fixtrace.backends.base import Backend
from fixtrace.backends.select import DEVICES, cuda_status, get_backend

__all__ = ["DEVICES", "Backend", "cuda_status", "get_backend"]
