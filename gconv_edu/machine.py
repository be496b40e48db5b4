"""What machine this is and how many threads each engine uses: the one thread helper of the package.

``info`` prints :func:`thread_counts`; ``bench`` gives every contender the same count with :func:`thread_limit`.
threadpoolctl (BLAS pools) is used where installed and skipped with a note where not (a bare GPU machine has none).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def machine_name() -> str:
    """CPU model (from /proc/cpuinfo where it exists) and logical CPU count."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model} ({os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()})"


def torch_or_none() -> Any | None:
    """PyTorch if importable (a reference and a benchmark peer, never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def blas_pools(pools: list[dict[str, Any]]) -> list[str]:
    """``api:threads`` (and the kernel family OpenBLAS picked, which OPENBLAS_CORETYPE can force) per thread pool."""
    names = []
    for pool in pools:
        kernel = f" ({pool['architecture']})" if pool.get("architecture") else ""
        names.append(f"{pool['internal_api']}:{pool['num_threads']}{kernel}")
    return names


def _blas_info() -> list[str] | str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (BLAS threads not pinned)"
    return blas_pools(threadpool_info())


def _numba() -> Any:
    """``numba``, with the package's fork-safe threading layer chosen first: asking Numba for its thread count starts
    its pool, and a pool started before :func:`~gconv_edu.backends.numba_cpu.choose_threading_layer` runs Numba's
    default layer (GNU OpenMP on Linux: a fork after use hangs)."""
    import numba

    from .backends.numba_cpu import choose_threading_layer

    choose_threading_layer()
    return numba


def thread_counts() -> dict[str, object]:
    """Threads each engine will use: Numba's pool, the BLAS pools (threadpoolctl), torch's if importable."""
    numba = _numba()

    counts: dict[str, object] = {"cpu_count": os.cpu_count(), "numba": numba.get_num_threads(), "blas": _blas_info()}
    torch = torch_or_none()
    if torch is not None:
        counts["torch"] = torch.get_num_threads()
    return counts


def check_threads(threads: object) -> int:
    """``threads`` as an int in [1, Numba's pool size], else ValueError naming it."""
    import numba

    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be a positive int")
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads={threads} exceeds Numba's pool of {numba.config.NUMBA_NUM_THREADS}")
    return threads


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[dict[str, Any]]:
    """Give Numba, the BLAS pools and PyTorch the same thread count; yield what each engine reports."""
    numba = _numba()

    check_threads(threads)
    restore: list[Callable[[], None]] = []
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    restore.append(lambda: numba.set_num_threads(previous))
    counts: dict[str, Any] = {"numba": numba.get_num_threads()}
    torch = torch_or_none()
    if torch is not None:
        previous_torch = torch.get_num_threads()
        torch.set_num_threads(threads)
        restore.append(lambda: torch.set_num_threads(previous_torch))
        counts["torch"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas_limit: Any = contextlib.nullcontext()
    else:
        blas_limit = threadpool_limits(limits=threads)
    try:
        with blas_limit:
            counts["blas"] = _blas_info()
            yield counts
    finally:
        for undo in restore:
            undo()
