"""The GPU side of ``gconv-edu bench --device gpu``: device arrays, CUDA-event timing, device memory peaks.

CuPy is imported only here and only when a GPU run is asked for, so the CPU benchmark never needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..backends import get_backend


def gpu_unavailable_reason() -> str | None:
    """None when the GPU backends can run here, else why not (the message ``--device gpu`` stops with)."""
    return get_backend("cupy").availability()


def to_device(arrays: Sequence[Any]) -> tuple[Any, ...]:
    """NumPy arrays -> CuPy arrays of the same shapes and values."""
    import cupy

    return tuple(cupy.asarray(a) for a in arrays)


def time_once(function: Callable[[], Any]) -> float:
    """Seconds for one call on the GPU, from CUDA events around it (``cupyx.profiler.benchmark``)."""
    from cupyx.profiler import benchmark

    return float(benchmark(function, n_repeat=1, n_warmup=0).gpu_times[0][0])


def disable_tf32(torch: Any) -> None:
    """fp32 means fp32 for the PyTorch peer: the same arithmetic as ours (no TF32 tensor-core rounding)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def peak_bytes(function: Callable[[], Any], torch: Any | None) -> int:
    """Peak growth of CuPy's memory pool (or PyTorch's CUDA allocator, for ``torch``) during one call."""
    if torch is not None:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    import cupy

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.total_bytes()
    function()
    cupy.cuda.Device().synchronize()
    return pool.total_bytes() - before
