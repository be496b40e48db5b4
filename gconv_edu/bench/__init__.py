"""``gconv-edu bench``: backends x configs x passes, PyTorch as a peer, one table, JSON and a plot.

What is measured, and how:

* every contender (our backends, ``auto``, and PyTorch when importable) runs with the SAME thread count: Numba's pool
  (``numba.set_num_threads``), the BLAS pools (``threadpoolctl``) and ``torch.set_num_threads``; the counts are printed;
* the first call is a warm-up and is not timed with the rest; its extra time over the median is reported as
  ``warmup_ms`` (for ``numba`` that is JIT compilation, or loading it from the cache);
* the timed calls run in rounds (every contender once per round), so a burst of load on a shared machine hits every
  contender alike instead of whichever happened to be running, and each waits ``--settle`` seconds first, so that
  the previous contender's spinning worker threads (OpenBLAS: ~0.1-0.2 s) do not take its cores;
* the median of ``repeats`` calls is the number, min and max give the spread; GFLOP/s counts
  :attr:`ConvGeometry.flops` (forward) plus :attr:`ConvGeometry.backward_flops` (forward+backward);
* peak extra memory: the peak of traced allocations during one call, outputs included, seen by ``tracemalloc``.
  NumPy reports its buffers to it, and Numba's arrays (also those a kernel allocates inside ``prange``, per thread)
  come from Python's raw allocator, which it hooks (checked: four 19 MiB buffers in a 2-thread prange show as a
  38 MiB peak). PyTorch's allocator is invisible to it, so PyTorch gets no number;
* the roofline of each config: arithmetic intensity = FLOPs / :meth:`ConvGeometry.min_bytes` (each array touched once);
* the machine's peak, first (:mod:`.peak`): the best GEMM rate of NumPy and PyTorch (2048^3, the run's dtype, same
  threads), and every CPU row's GFLOP/s as a fraction of it (``% peak``). Winograd's GFLOP/s count the direct
  convolution's FLOPs too, so they are *effective* rates (marked so) and may pass the peak;
* ``auto``: the rule (:data:`gconv_edu.backends.AUTO_RULE`) is printed, and per (config, pass) what auto picked
  against the fastest of our other backends in the same run (``auto / fastest``); ``--configs sweep`` adds 18 more
  layers (:data:`gconv_edu.configs.SWEEP_CONFIGS`) to re-derive the rule from;
* progress goes to stderr: a tqdm bar over the rounds on a terminal, one line per step otherwise.

``--device gpu`` times device-resident CuPy arrays with ``cupyx.profiler.benchmark`` (CUDA events) for ``cupy``,
``cupy-raw``, PyTorch CUDA (TF32 off) and one CPU backend, so one table shows CPU against GPU.
"""

from __future__ import annotations

from ..machine import blas_pools, machine_name, thread_limit
from .cli import main
from .gpu import gpu_unavailable_reason
from .measure import (
    DEFAULT_CPU_BACKENDS,
    DEFAULT_GPU_BACKENDS,
    DEFAULT_SETTLE_S,
    PASSES,
    measure_config,
    roofline,
    run_benchmark,
)
from .peak import measure_peak
from .report import auto_summary, format_table, plot, write_json

__all__ = [
    "DEFAULT_CPU_BACKENDS",
    "DEFAULT_GPU_BACKENDS",
    "DEFAULT_SETTLE_S",
    "PASSES",
    "auto_summary",
    "blas_pools",
    "format_table",
    "gpu_unavailable_reason",
    "machine_name",
    "main",
    "measure_config",
    "measure_peak",
    "plot",
    "roofline",
    "run_benchmark",
    "thread_limit",
    "write_json",
]
