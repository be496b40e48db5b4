"""A one-line notice before the first Numba compile, so that a person waiting knows why nothing happens.

The numba backend's kernels are compiled on their first call and cached on disk (``cache=True``); a cold cache costs
seconds, a warm one almost nothing. :func:`numba_compile_notice` is called by the API's dispatch before every numba
call: it looks at the kernels' on-disk caches once per process and prints to stderr only when one is cold.
"""

from __future__ import annotations

import sys

# Measured on the 2-core development machine (cold NUMBA_CACHE_DIR, float64): forward 11 s, first backward 34 s.
NOTICE = (
    "gconv-edu: compiling the numba kernels, about 15 s (the first backward pass: 30 s more), once: "
    "later runs load them from the disk cache"
)
_KERNELS = ("_forward_kernel", "_backward_input_kernel", "_backward_weight_kernel")
_checked = False


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


def numba_compile_notice() -> bool:
    """Print the notice (once per process) if any numba kernel would compile now; True when it printed."""
    global _checked
    if _checked:
        return False
    _checked = True
    from .backends import numba_cpu

    if all(_cache_is_warm(getattr(numba_cpu, name, None)) for name in _KERNELS):
        return False
    print(NOTICE, file=sys.stderr, flush=True)
    return True
