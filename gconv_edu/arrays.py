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
