"""The NumPy/CuPy split, by array module (as Chainer does), in one place."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def array_module(array: Any) -> ModuleType:
    """``cupy`` for a CuPy array, ``numpy`` for anything else (without importing CuPy when it is not in use)."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def is_gpu_array(array: Any) -> bool:
    return type(array).__module__.startswith("cupy")
