"""Choosing a backend: ``device="auto" | "cpu" | "cuda"``."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fixtrace.errors import FixtraceError

if TYPE_CHECKING:  # numba: imported when a backend is chosen
    from fixtrace.backends.base import Backend

DEVICES = ("auto", "cpu", "cuda")


@lru_cache(maxsize=1)
def cuda_status() -> dict[str, Any]:
    """What numba sees of CUDA here.

    Returns:
        ``available`` (kernels can run: a GPU, or the simulator), ``gpu`` (True only for real
        hardware), ``simulator``, ``name`` and ``compute_capability`` of device 0 when there is
        one, and ``reason`` when there is none.
    """
    try:
        from numba import config, cuda
    except Exception as exc:  # a numba build without its CUDA package
        return {"available": False, "gpu": False, "simulator": False, "reason": f"numba.cuda cannot be imported: {exc}"}
    simulator = bool(config.ENABLE_CUDASIM)  # type: ignore[attr-defined]
    status: dict[str, Any] = {"available": False, "gpu": False, "simulator": simulator}
    try:
        status["available"] = bool(cuda.is_available())
    except Exception as exc:  # the driver probe itself failed
        status["reason"] = f"the CUDA driver probe failed: {str(exc).strip().splitlines()[0]}"
        return status
    if not status["available"]:
        status["reason"] = "numba finds no CUDA driver or GPU"
        return status
    if simulator:
        status["reason"] = "NUMBA_ENABLE_CUDASIM=1: the CUDA simulator (Python threads), not a GPU"
        return status
    try:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        status.update(name=name, compute_capability=".".join(map(str, device.compute_capability)))
        _probe_launch()
        status["gpu"] = True
    except Exception as exc:  # e.g. a toolkit whose PTX is newer than the driver accepts
        status.update(available=False, reason=f"CUDA is present but a kernel cannot run: {str(exc).strip().splitlines()[0]}")
    return status


def _probe_launch() -> None:
    """Compile, launch and read back one tiny kernel: a driver older than the toolkit's PTX
    fails here rather than in the middle of an explanation.

    Raises:
        Exception: whatever numba raises when the kernel cannot be built or run.
    """
    import numpy as np
    from numba import cuda

    @cuda.jit
    def double(values):  # pragma: no cover - runs on a GPU only
        i = cuda.grid(1)
        if i < values.size:
            values[i] *= 2

    values = cuda.to_device(np.arange(4, dtype=np.int64))
    double[1, 32](values)
    if values.copy_to_host().tolist() != [0, 2, 4, 6]:
        raise RuntimeError("a test kernel returned wrong values")


def get_backend(device: str = "auto") -> Backend:
    """The backend for ``device``.

    Args:
        device: ``"auto"`` (CUDA when a real GPU is present, else CPU), ``"cpu"`` or ``"cuda"``
            (a GPU, or the numba CUDA simulator when NUMBA_ENABLE_CUDASIM=1).

    Raises:
        FixtraceError: an unknown device, or ``"cuda"`` where CUDA cannot run.
    """
    if device not in DEVICES:
        raise FixtraceError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    status = cuda_status() if device != "cpu" else {}
    if device == "cuda" and not status["available"]:
        raise FixtraceError(f"device 'cuda' asked for, but CUDA cannot run here: {status['reason']}; use --device cpu or auto")
    if device == "cuda" or (device == "auto" and status["gpu"]):
        from fixtrace.backends.cuda import CudaBackend

        return CudaBackend()
    from fixtrace.backends.cpu import CpuBackend

    return CpuBackend()
