"""Where the backward rules run: numba CPU kernels or numba CUDA kernels, behind one interface.

Names are imported on first use: ``DEVICES`` without numba.
"""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

if TYPE_CHECKING:
    from fixtrace.backends.base import Backend
    from fixtrace.backends.select import DEVICES, cuda_status, get_backend

__all__ = ["DEVICES", "Backend", "cuda_status", "get_backend"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backend": "fixtrace.backends.base",
        "DEVICES": "fixtrace.backends.select",
        "cuda_status": "fixtrace.backends.select",
        "get_backend": "fixtrace.backends.select",
    },
)
