"""The NumPy/CuPy split, by array module (as Chainer does), in one place; what an array argument may be; allocation.

A backend allocates its outputs and workspaces with :func:`empty` / :func:`zeros` (or inside :func:`allocating`), so
that a buffer too large for the machine is a ``MemoryError`` naming the buffer and its size in bytes, not NumPy's
anonymous "array is too big".
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

# ndarray subclasses that keep the meaning of an ndarray (a memory-mapped file is just where the data lives).
_PLAIN_SUBCLASSES: tuple[type, ...] = (np.memmap,)


def array_module(array: Any) -> ModuleType:
    """``cupy`` for a CuPy array, ``numpy`` for anything else (without importing CuPy when it is not in use)."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def is_gpu_array(array: Any) -> bool:
    return type(array).__module__.startswith("cupy")


def check_plain_ndarray(name: str, array: np.ndarray) -> None:
    """Refuse ndarray subclasses that change what the numbers mean, with a TypeError naming ``name``.

    A masked array's mask would be silently ignored (the masked entries' hidden values used), ``np.matrix`` redefines
    ``*`` and shapes; any other subclass may do likewise. ``np.memmap`` is accepted (only the storage differs).
    """
    kind = type(array)
    if kind is np.ndarray or isinstance(array, _PLAIN_SUBCLASSES):
        return
    if isinstance(array, np.ma.MaskedArray):
        why = "its mask would be ignored; pass x.filled(value) or np.asarray(x) to say what masked entries are"
    elif isinstance(array, np.matrix):
        why = "np.matrix is 2-D with matrix semantics; pass np.asarray(...)"
    else:
        why = "an ndarray subclass may change what its values mean; pass np.asarray(...) for the plain data"
    raise TypeError(f"{name} is a {kind.__module__}.{kind.__qualname__}, not a plain numpy.ndarray: {why}")


def _buffer_message(buffer: str, shape: Sequence[int], dtype: Any) -> str:
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize  # Python ints: no overflow
    return (
        f"cannot allocate {buffer}: shape {tuple(int(s) for s in shape)} {np.dtype(dtype).name} "
        f"needs {nbytes} bytes ({nbytes / 2**30:.3g} GiB)"
    )


@contextlib.contextmanager
def allocating(buffer: str, shape: Sequence[int], dtype: Any) -> Iterator[None]:
    """A failed allocation inside the block becomes ``MemoryError`` naming ``buffer``, its shape and its bytes.

    NumPy says ``MemoryError`` when the memory is not there, and ``ValueError("array is too big ...")`` when the byte
    count does not even fit an index; CuPy's ``OutOfMemoryError`` is a ``MemoryError``. All three become one message.
    """
    try:
        yield
    except MemoryError as error:
        raise MemoryError(_buffer_message(buffer, shape, dtype)) from error
    except ValueError as error:
        if "too big" not in str(error) and "maximum" not in str(error).lower():
            raise
        raise MemoryError(_buffer_message(buffer, shape, dtype)) from error


def empty(xp: ModuleType, buffer: str, shape: Sequence[int], dtype: Any) -> Any:
    """``xp.empty(shape, dtype)``, or MemoryError naming ``buffer`` and its bytes (see :func:`allocating`)."""
    with allocating(buffer, shape, dtype):
        return xp.empty(tuple(shape), dtype=dtype)


def zeros(xp: ModuleType, buffer: str, shape: Sequence[int], dtype: Any) -> Any:
    """``xp.zeros(shape, dtype)``, or MemoryError naming ``buffer`` and its bytes (see :func:`allocating`)."""
    with allocating(buffer, shape, dtype):
        return xp.zeros(tuple(shape), dtype=dtype)


def padded(xp: ModuleType, x: Any, pad_widths: tuple[tuple[int, int], ...]) -> Any:
    """``xp.pad(x, pad_widths)`` (zeros around), or MemoryError naming the padded input, its padding and its bytes."""
    shape = [size + before + after for size, (before, after) in zip(x.shape, pad_widths)]
    with allocating(f"xpad (x zero-padded by pad_widths={pad_widths})", shape, x.dtype):
        return xp.pad(x, pad_widths)


def cupy_distribution() -> str | None:
    """The installed distribution that provides ``import cupy`` (``cupy-cuda13x``, ``cupy-cuda12x``, ``cupy``, ...).

    None when CuPy is not installed. Read from the installed packages' metadata: CuPy is not imported.
    """
    import importlib.metadata

    providers = importlib.metadata.packages_distributions().get("cupy", [])
    return sorted(providers)[0] if providers else None


def cupy_install_hint(extra: str = "") -> str:
    """The pip command that (re)installs the CuPy this machine has, e.g. ``pip install 'cupy-cuda13x[ctk]'``.

    ``extra``: a CuPy extra such as ``"ctk"`` (the CUDA libraries from PyPI). With no CuPy installed: the wheel for
    the current CUDA, and the package's extras (``gpu`` = ``gpu-cuda13``; ``gpu-cuda12`` for a CUDA 12 driver).
    """
    distribution = cupy_distribution()
    if distribution is None:
        return (
            "pip install cupy-cuda13x (cupy-cuda12x for a CUDA 12 driver); "
            "from a checkout: pip install -e '.[gpu]' (or '.[gpu-cuda12]')"
        )
    return f"pip install '{distribution}[{extra}]'" if extra else f"pip install {distribution}"
