"""The public entry points: validate once, pick a backend, dispatch.

Backend selection for ``backend=None``: the innermost :func:`use_backend` context, then the environment variable
``GCONV_BACKEND``, then ``"auto"``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

from .arrays import check_plain_ndarray, is_gpu_array
from .backends import (
    AUTO,
    Backend,
    available_backends,
    check_backend_name,
    choose_auto,
    environment_backend,
    get_backend,
)
from .compile_notice import compile_notice
from .geometry import ConvGeometry, IntPair, Padding

__all__ = ["conv2d", "conv2d_backward", "current_backend_name", "resolve_backend", "use_backend"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar("gconv_backend", default=None)


# --------------------------------------------------------------------------- backend selection
@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Scoped default backend: ``with use_backend("numba"): ...``. The name is checked on entry.

    The scope is a :mod:`contextvars` variable, so it follows the code that runs inside the ``with`` block, including
    ``asyncio`` tasks created there, but NOT a ``threading.Thread`` started there: a new thread begins with the
    default (``GCONV_BACKEND``, else ``"auto"``). To carry it into a thread, run the thread's function in a copy of
    the current context, ``threading.Thread(target=contextvars.copy_context().run, args=(function,))``, or pass
    ``backend=`` explicitly. Thread pools (``concurrent.futures``) likewise run their tasks in the worker's context.
    """
    name = check_backend_name(name, "use_backend(name)")
    token = _context_backend.set(name)
    try:
        yield name
    finally:
        _context_backend.reset(token)


def current_backend_name(backend: str | None = None) -> str:
    """The backend name a call with ``backend`` would use (possibly ``"auto"``), validated."""
    if backend is not None:
        return check_backend_name(backend, "backend")
    scoped = _context_backend.get()
    if scoped is not None:
        return scoped
    return environment_backend() or AUTO


def resolve_backend(backend: str | None, geom: ConvGeometry, on_gpu: bool = False) -> Backend:
    """The concrete backend for this call ("auto" resolved for this geometry and device).

    A backend that does not support ``geom`` (:meth:`Backend.supports`) is a ValueError naming what it supports,
    whether it was asked for by ``backend=``, :func:`use_backend` or ``GCONV_BACKEND``; "auto" never picks one.
    """
    name = current_backend_name(backend)
    if name == AUTO:
        name = choose_auto(geom, on_gpu)
    chosen = get_backend(name)
    reason = chosen.supports(geom)
    if reason is not None:
        others = [other for other in available_backends() if get_backend(other).supports(geom) is None]
        raise ValueError(f"backend={name!r} {reason} ({geom.describe()}); for this layer use one of {others + [AUTO]}")
    return chosen


# --------------------------------------------------------------------------- validation
def _check_array(name: str, array: Any) -> None:
    if not (isinstance(array, np.ndarray) or is_gpu_array(array)):
        raise TypeError(f"{name} must be a numpy.ndarray or cupy.ndarray; got {type(array).__name__}")
    if isinstance(array, np.ndarray):
        check_plain_ndarray(name, array)  # masked arrays, np.matrix: TypeError, not a silently different computation
    if array.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}.dtype={array.dtype} is not supported; expected float32 or float64")


def _check_arrays(**arrays: Any) -> tuple[np.dtype, bool]:
    """Types, dtypes and device of the given arrays (None entries skipped); returns (dtype, on_gpu)."""
    present = {name: array for name, array in arrays.items() if array is not None}
    for name, array in present.items():
        _check_array(name, array)
    first_name, first = next(iter(present.items()))
    for name, array in present.items():
        if array.dtype != first.dtype:
            raise TypeError(f"{name}.dtype={array.dtype} must equal {first_name}.dtype={first.dtype}")
        if is_gpu_array(array) != is_gpu_array(first):
            raise TypeError(f"{name} and {first_name} must both be NumPy or both be CuPy arrays")
    return first.dtype, is_gpu_array(first)


def _run_on_device(backend: Backend, on_gpu: bool, function: Any, *arrays: Any) -> Any:
    """Call ``function(*arrays)`` on the backend's device.

    A NumPy array given to a GPU backend is copied to the device and the results copied back. A CuPy array given to a
    CPU backend is an error: a silent device-to-host copy would hide where the time goes.
    """
    if backend.device == "cpu" and on_gpu:
        raise TypeError(
            f"backend={backend.name!r} runs on the CPU but the arrays are CuPy arrays; "
            "use a GPU backend ('cupy', 'cupy-raw', 'auto') or pass NumPy arrays"
        )
    if backend.device == "gpu" and not on_gpu:
        import cupy

        result = function(*(None if a is None else cupy.asarray(a) for a in arrays))
        if isinstance(result, tuple):
            return tuple(cupy.asnumpy(r) for r in result)
        return cupy.asnumpy(result)
    return function(*arrays)


# --------------------------------------------------------------------------- public API
def conv2d(
    x: Any,
    weight: Any,
    bias: Any | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    backend: str | None = None,
) -> Any:
    """Grouped 2-D convolution (cross-correlation, as in PyTorch), NCHW.

    Inputs:
        x: (N, C_in, H, W), float32 or float64 (NumPy or CuPy)
        weight: (C_out, C_in // groups, kH, kW), same dtype as x
        bias: (C_out,) or None
        stride, dilation: int or (h, w), each >= 1
        padding: int or (h, w) >= 0, "valid", or "same" (stride 1 only; odd extra on the bottom/right)
        groups: positive int dividing C_in and C_out
        backend: a name from :func:`available_backends`, "auto", or None (context, then GCONV_BACKEND, then "auto")
    Returns:
        y: (N, C_out, H_out, W_out) with the dtype of x, where
        ``H_out = (H + pad_top + pad_bottom - dilation_h * (kH - 1) - 1) // stride_h + 1`` (likewise W_out).

    NaN and inf are data: they propagate as IEEE arithmetic says. Inputs are never modified.
    """
    _, on_gpu = _check_arrays(x=x, weight=weight, bias=bias)
    geom = ConvGeometry.from_shapes(
        x.shape, weight.shape, None if bias is None else bias.shape, stride, padding, dilation, groups
    )
    chosen = resolve_backend(backend, geom, on_gpu)
    if not on_gpu:
        compile_notice(chosen.name, "forward")  # one line, once, only when the kernels' disk cache is cold
    return _run_on_device(chosen, on_gpu, lambda x, w, b: chosen.forward(x, w, b, geom), x, weight, bias)


def conv2d_backward(
    dy: Any,
    x: Any,
    weight: Any,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of a loss L through :func:`conv2d`, given ``dy = dL/dy``.

    Inputs:
        dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in // groups, kH, kW); all one dtype.
        stride, padding, dilation, groups, backend: as in :func:`conv2d`.
    Returns:
        dx: (N, C_in, H, W), dw: (C_out, C_in // groups, kH, kW), db: (C_out,)  (db is always returned; it does not
        depend on whether the forward pass had a bias).
    """
    _, on_gpu = _check_arrays(dy=dy, x=x, weight=weight)
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, None, stride, padding, dilation, groups)
    if tuple(dy.shape) != geom.y_shape:
        raise ValueError(f"dy.shape={tuple(dy.shape)} must be the output shape {geom.y_shape} (N, C_out, H_out, W_out)")
    chosen = resolve_backend(backend, geom, on_gpu)
    if not on_gpu:
        compile_notice(chosen.name, "backward")
    return _run_on_device(chosen, on_gpu, lambda d, x, w: chosen.backward(d, x, w, geom), dy, x, weight)
