"""A one-line notice before the first Numba compile, so that a person waiting knows why nothing happens.

The numba backend's kernels are compiled on their first call and cached on disk (``cache=True``); a cold cache costs
seconds, a warm one almost nothing. :func:`numba_compile_notice` is called by :func:`gconv_edu.conv2d` (``"forward"``)
and :func:`gconv_edu.conv2d_backward` (``"backward"``) before a numba call: once per process and direction it looks
at those kernels' on-disk caches and prints to stderr only when one is cold. A cache holding the kernel for another
dtype counts as warm (the notice is about the first use on a machine, not about every new signature).
"""

from __future__ import annotations

import sys

# Measured on the 2-core development machine from a cold NUMBA_CACHE_DIR, float64: forward 11 s, first backward 34 s.
KERNELS = {
    "forward": ("_forward_kernel",),
    "backward": ("_backward_input_kernel", "_backward_weight_kernel"),
}
SECONDS = {"forward": 15, "backward": 30}
NOTICE = "gconv-edu: compiling the numba kernels ({direction}), about {seconds} s, once: later runs load them from disk"
_checked: set[str] = set()


def _cache_is_warm(dispatcher: object) -> bool:
    """True when the dispatcher has compiled code in memory, or an on-disk index for the current source.

    Uses Numba's cache internals (``_cache._cache_file._load_index``, stable since 0.4x); any surprise counts as cold,
    so the worst case is one unneeded line of output.
    """
    try:
        if dispatcher.signatures:  # type: ignore[attr-defined]
            return True
        return bool(dispatcher._cache._cache_file._load_index())  # type: ignore[attr-defined]
    except Exception:
        return False


def numba_compile_notice(direction: str = "forward") -> bool:
    """Print the notice for ``direction`` ("forward" or "backward") once per process if its kernels would compile
    now (their disk cache is cold); True when it printed."""
    if direction not in KERNELS:
        raise ValueError(f"direction={direction!r} must be one of {sorted(KERNELS)}")
    if direction in _checked:
        return False
    _checked.add(direction)
    from .backends import numba_cpu

    if all(_cache_is_warm(getattr(numba_cpu, name, None)) for name in KERNELS[direction]):
        return False
    print(NOTICE.format(direction=direction, seconds=SECONDS[direction]), file=sys.stderr, flush=True)
    return True
