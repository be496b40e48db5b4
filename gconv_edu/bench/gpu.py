"""The GPU side of ``gconv-edu bench --device gpu``: device arrays, CUDA-event timing, device memory peaks.

CuPy is imported only here and only when a GPU run is asked for, so the CPU benchmark never needs it.

- Timing: ``cupyx.profiler.benchmark`` with :data:`N_REPEAT` calls per sample. Its ``gpu_times`` are CUDA events
  around each call (the device's time from the call's first launch to its last kernel's end, gaps included); its
  ``cpu_times`` are the host's time to issue the call (launches, Python, allocations) without waiting for the GPU.
  Both are reported: when the host time is the larger, the call is host-bound and a faster kernel would not show.
  No settle pause before a GPU call: GPU clocks drop when idle, so pausing would time a cold card.
- Memory: peak *allocated* bytes on both sides, like for like. PyTorch: ``torch.cuda.max_memory_allocated``.
  CuPy: its pool's ``used_bytes()`` read after every allocation of the call (an allocator hook), so frees are seen;
  ``total_bytes()`` (what the pool reserved from the driver, cached blocks included) would not compare with torch.
- TF32 is off on both sides (:func:`disable_tf32`; ``CUPY_TF32=0`` in the environment) and recorded in the JSON.
- A CUDA error in one config is recorded for that config (:func:`is_cuda_error`) instead of ending the run.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from ..backends import get_backend

N_REPEAT = 20  # calls per timed sample: one CUDA-event pair per call, medians over them


def gpu_unavailable_reason() -> str | None:
    """None when the GPU backends can run here, else why not (the message ``--device gpu`` stops with)."""
    return get_backend("cupy").availability()


def to_device(arrays: Sequence[Any]) -> tuple[Any, ...]:
    """NumPy arrays -> CuPy arrays of the same shapes and values."""
    import cupy

    return tuple(cupy.asarray(a) for a in arrays)


def _benchmark() -> Callable[..., Any]:
    from cupyx.profiler import benchmark

    return benchmark


def profile(function: Callable[[], Any], n_repeat: int = N_REPEAT, benchmark: Callable[..., Any] | None = None) -> dict:
    """Median device and host milliseconds of ``n_repeat`` calls (``cupyx.profiler.benchmark``, no warm-up here).

    Returns ``{"gpu_ms": ..., "host_ms": ..., "host_bound": host_ms > gpu_ms}``: ``gpu_ms`` from CUDA events on the
    current device (``gpu_times[0]``), ``host_ms`` the time the host took to issue each call (``cpu_times``).
    ``benchmark`` replaces cupyx's (the tests pass a fake).
    """
    if not isinstance(n_repeat, int) or n_repeat < 1:
        raise ValueError(f"n_repeat={n_repeat!r} must be a positive int")
    result = (benchmark or _benchmark())(function, n_repeat=n_repeat, n_warmup=0)
    gpu_ms = 1e3 * statistics.median(float(t) for t in result.gpu_times[0])
    host_ms = 1e3 * statistics.median(float(t) for t in result.cpu_times)
    return {"gpu_ms": gpu_ms, "host_ms": host_ms, "host_bound": host_ms > gpu_ms}


def time_once(function: Callable[[], Any], benchmark: Callable[..., Any] | None = None) -> float:
    """Seconds per call on the GPU: the median CUDA-event time of :data:`N_REPEAT` calls (see :func:`profile`)."""
    return profile(function, N_REPEAT, benchmark)["gpu_ms"] / 1e3


def disable_tf32(torch: Any) -> dict[str, Any]:
    """fp32 means fp32 for the PyTorch peer: the same arithmetic as ours (no TF32 tensor-core rounding).

    Sets the new ``fp32_precision = "ieee"`` switches where this torch has them (2.9+) and the older ``allow_tf32``
    flags otherwise; returns what is now in force, for the JSON (``CUPY_TF32`` included: CuPy reads it at import).
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        matmul.fp32_precision = "ieee"
        cudnn.conv.fp32_precision = "ieee"
    else:
        matmul.allow_tf32 = False
        cudnn.allow_tf32 = False
    return {
        "torch_matmul": getattr(matmul, "fp32_precision", None) or f"allow_tf32={matmul.allow_tf32}",
        "torch_cudnn_conv": getattr(getattr(cudnn, "conv", None), "fp32_precision", None)
        or f"allow_tf32={cudnn.allow_tf32}",
        "CUPY_TF32": os.environ.get("CUPY_TF32", "unset (CuPy's default: off)"),
    }


class _PeakTracker:
    """An allocator for ``cupy.cuda.set_allocator``: the pool's own, noting the pool's used bytes after each malloc."""

    def __init__(self, pool: Any):
        self.pool, self.peak = pool, pool.used_bytes()

    def __call__(self, size: int) -> Any:
        pointer = self.pool.malloc(size)
        self.peak = max(self.peak, self.pool.used_bytes())
        return pointer


def peak_bytes(function: Callable[[], Any], torch: Any | None, cupy: Any | None = None) -> int:
    """Peak allocated bytes above what was allocated before, during one call; outputs included.

    ``torch`` given: PyTorch's CUDA allocator (``max_memory_allocated``). Else CuPy's default pool, through
    :class:`_PeakTracker`. ``cupy`` replaces the module (the tests pass a fake).
    """
    if torch is not None:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    if cupy is None:
        import cupy
    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    tracker = _PeakTracker(pool)
    before = tracker.peak
    cupy.cuda.set_allocator(tracker)
    try:
        function()
        cupy.cuda.Device().synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
    return tracker.peak - before


def is_cuda_error(error: BaseException) -> bool:
    """Whether ``error`` came from CUDA (driver, runtime, NVRTC, cuBLAS: CuPy's error classes), not from our code."""
    names = {cls.__name__ for cls in type(error).__mro__}
    module = type(error).__module__ or ""
    cuda_names = {"CUDARuntimeError", "CUDADriverError", "CompileException", "CUBLASError", "OutOfMemoryError"}
    return bool(names & cuda_names) or module.startswith(("cupy", "cupy_backends"))


def run_settings(torch: Any | None, cupy: Any | None = None) -> dict[str, Any]:
    """What the JSON of a GPU run records besides the CPU settings: the card, CuPy, N_REPEAT and the TF32 state."""
    if cupy is None:
        import cupy
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = properties["name"]
    return {
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "n_repeat": N_REPEAT,
        "tf32": disable_tf32(torch) if torch is not None else {"CUPY_TF32": os.environ.get("CUPY_TF32", "unset")},
    }
