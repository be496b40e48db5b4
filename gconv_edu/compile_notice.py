"""A one-line notice before the first Numba compile, so that a person waiting knows why nothing happens.

The numba backend's kernels, im2col's compiled unfold (NumPy arrays) and winograd's transforms are compiled on their
first call and cached on disk (``cache=True``); a cold cache costs seconds, a warm one almost nothing.
:func:`compile_notice` is called by :func:`gconv_edu.conv2d` (``"forward"``) and :func:`gconv_edu.conv2d_backward`
(``"backward"``) before a call: once per process, backend and direction it looks at those kernels' on-disk caches and
prints to stderr only when one is cold. A cache holding the kernel for another dtype counts as warm (the notice is
about the first use on a machine, not about every new signature). Backends without compiled kernels cost one
dictionary lookup.
"""

from __future__ import annotations

import sys

# (backend, direction) -> (module under gconv_edu.backends, its kernels, seconds to say). Measured on the 2-core
# development machine from a cold NUMBA_CACHE_DIR: numba float64 forward 11 s, first backward 34 s; im2col's unfold
# 3.9-4.8 s forward, 3.5-4.6 s backward; winograd 12 s forward, then 1.2 s backward (loaded machine).
KERNELS = {
    ("numba", "forward"): ("numba_cpu", ("_forward_kernel",), 15),
    ("numba", "backward"): ("numba_cpu", ("_backward_input_kernel", "_backward_weight_kernel"), 30),
    ("im2col", "forward"): ("unfold_numba", ("_im2col_rows",), 5),
    ("im2col", "backward"): ("unfold_numba", ("_im2col_rows", "_col2im_planes"), 5),
    ("winograd", "forward"): ("winograd_kernels", ("_tile_transform", "_output_transform", "_filter_transform"), 10),
    ("winograd", "backward"): ("winograd_kernels", ("_tile_transform", "_output_transform", "_filter_adjoint"), 5),
}
DIRECTIONS = ("forward", "backward")
NOTICE = (
    "gconv-edu: compiling the {backend} kernels ({direction}), about {seconds} s, once: later runs load them from disk"
)
_checked: set[tuple[str, str]] = set()


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


def compile_notice(backend: str, direction: str = "forward") -> bool:
    """Print the notice for ``backend``'s ``direction`` ("forward" or "backward") kernels once per process if they
    would compile now (their disk cache is cold); True when it printed. Backends without Numba kernels: False."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} must be one of {sorted(DIRECTIONS)}")
    key = (backend, direction)
    if key not in KERNELS or key in _checked:
        return False
    _checked.add(key)
    import importlib

    module_name, names, seconds = KERNELS[key]
    module = importlib.import_module(f"gconv_edu.backends.{module_name}")
    if all(_cache_is_warm(getattr(module, name, None)) for name in names):
        return False
    print(NOTICE.format(backend=backend, direction=direction, seconds=seconds), file=sys.stderr, flush=True)
    return True


def numba_compile_notice(direction: str = "forward") -> bool:
    """:func:`compile_notice` for the numba backend."""
    return compile_notice("numba", direction)
