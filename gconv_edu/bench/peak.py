"""The machine's practical peak, measured at the start of a run: the best GEMM rate of NumPy's BLAS and PyTorch.

A convolution is at best as fast as a large, square matrix product on the same cores, so each contender's GFLOP/s is
also reported as a fraction of that rate. The product is ``size x size @ size x size`` in the run's dtype (2048^3 in
float32 by default: sgemm), timed under the run's thread limit, median of ``repeats`` calls after one warm-up;
``2 * size**3`` FLOPs per call. The peak is the better of the two libraries.

Winograd does fewer multiplications than the direct convolution, so its GFLOP/s (direct-convolution FLOPs / time,
like every contender's) is an *effective* rate, and its fraction of peak can pass 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PEAK_SIZE = 2048
PEAK_REPEATS = 5
EFFECTIVE_RATE_BACKENDS = ("winograd",)  # fewer multiplications than direct: their GFLOP/s are effective rates


def _median_gflops(call: Callable[[], Any], flops: int, repeats: int) -> float:
    call()  # warm-up: thread pools, page faults of the output
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


def measure_peak(
    dtype: str = "float32",
    size: int = PEAK_SIZE,
    repeats: int = PEAK_REPEATS,
    torch: Any | None = None,
    settle_s: float = 0.0,
) -> dict[str, Any]:
    """GEMM GFLOP/s of NumPy (and of ``torch`` when given) on (size, size) @ (size, size) operands of ``dtype``.

    Run it inside :func:`gconv_edu.machine.thread_limit` so that it uses the contenders' thread count. Returns
    ``{"size", "dtype", "repeats", "numpy_gflops", "torch_gflops" (None without torch), "peak_gflops", "peak_by"}``.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size={size!r} must be a positive int")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a positive int")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty((size, size), dtype=dtype)
    flops = 2 * size**3
    rates = {"numpy": _median_gflops(lambda: np.matmul(a, b, out=out), flops, repeats)}
    if torch is not None:
        time.sleep(settle_s)  # OpenBLAS's workers spin for a while after a call (see measure.DEFAULT_SETTLE_S)
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
        rates["torch"] = _median_gflops(lambda: torch.matmul(ta, tb, out=tout), flops, repeats)
    peak_by = max(rates, key=rates.get)
    return {
        "size": size,
        "dtype": dtype,
        "repeats": repeats,
        "numpy_gflops": rates["numpy"],
        "torch_gflops": rates.get("torch"),
        "peak_gflops": rates[peak_by],
        "peak_by": peak_by,
    }


def describe_peak(peak: dict[str, Any] | None, threads: int) -> str:
    """One line for the report: both libraries' rates and the peak the fractions refer to."""
    if peak is None:
        return "machine peak: not measured (--no-peak, or a GPU run)"
    gemm = {"float32": "sgemm", "float64": "dgemm"}.get(peak["dtype"], "GEMM")
    size = peak["size"]
    torch = "" if peak["torch_gflops"] is None else f", torch {peak['torch_gflops']:.1f}"
    return (
        f"machine peak: best {gemm} {size}x{size} @ {size}x{size}, {threads} thread(s), median of {peak['repeats']}: "
        f"numpy {peak['numpy_gflops']:.1f} GFLOP/s{torch} -> peak {peak['peak_gflops']:.1f} GFLOP/s "
        f"({peak['peak_by']}); '% peak' = GFLOP/s / peak"
    )


def rate_kind(record: dict[str, Any]) -> str:
    """``"effective"`` for a contender that computes with fewer multiplications than direct (winograd, or auto when
    it picked winograd), else ``"direct"``: both divide the direct convolution's FLOPs by the time."""
    name = record.get("auto_choice") if record.get("contender") == "auto" else record.get("contender")
    return "effective" if name in EFFECTIVE_RATE_BACKENDS else "direct"


def add_peak_fractions(records: Sequence[dict[str, Any]], peak: dict[str, Any] | None) -> None:
    """Add ``fraction_of_peak`` (CPU rows, when a peak was measured; else None) and ``gflops_kind`` to each record."""
    for record in records:
        if "skipped" in record:
            continue
        record["gflops_kind"] = rate_kind(record)
        on_cpu = record.get("device") == "cpu"
        record["fraction_of_peak"] = record["gflops"] / peak["peak_gflops"] if peak is not None and on_cpu else None
