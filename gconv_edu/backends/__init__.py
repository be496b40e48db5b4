"""The backend registry: name -> implementation, availability, and the "auto" rule.

A backend is a module (or a pair of functions in one) with::

    forward(x, weight, bias, geom) -> y
    backward(dy, x, weight, geom) -> (dx, dw, db)
    availability() -> None if usable here, else the reason it is not (a short string)
    supports(geom) -> None if it computes this geometry, else what it supports and what it got (optional: a backend
                      without it supports every geometry)

Registering a name here is all it takes for the shared test grid to test it.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..geometry import ConvGeometry


@dataclass(frozen=True)
class Backend:
    """Where a backend's code lives and what device it computes on."""

    name: str
    module: str
    device: str  # "cpu" or "gpu"
    forward_attr: str = "forward"
    backward_attr: str = "backward"
    supports_attr: str | None = None  # the module's supports(geom) -> reason or None; None: every geometry

    def _module(self) -> Any:
        return importlib.import_module(self.module, __name__)

    @property
    def forward(self) -> Callable[..., Any]:
        return getattr(self._module(), self.forward_attr)

    @property
    def backward(self) -> Callable[..., Any]:
        return getattr(self._module(), self.backward_attr)

    def supports(self, geom: ConvGeometry) -> str | None:
        """None when this backend computes ``geom``; else the reason (what it supports, what it got).

        "auto" never picks a backend outside its support, and asking for one there is a ValueError (api dispatch).
        """
        if self.supports_attr is None:
            return None
        return getattr(self._module(), self.supports_attr)(geom)

    def availability(self) -> str | None:
        """None when usable here, else why not. Import errors become reasons, never crashes.

        Asked once per process and remembered (:func:`_availability`): a device or a package does not come and go
        between calls, and "auto" asks on every call.
        """
        return _availability(self)

    @property
    def description(self) -> str:
        try:
            return self._module().DESCRIPTION
        except ImportError:
            return "(not importable here)"


@functools.cache
def _availability(backend: Backend) -> str | None:
    try:
        module = backend._module()
    except ImportError as error:
        return f"import failed ({error})"
    return module.availability()


REGISTRY: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("naive", ".naive", "cpu"),
        Backend("im2col", ".im2col", "cpu"),
        Backend("numba", ".numba_cpu", "cpu"),
        Backend("winograd", ".winograd", "cpu", supports_attr="supports"),
        Backend("cupy", ".cupy_gpu", "gpu", "im2col_forward", "im2col_backward"),
        Backend("cupy-raw", ".cupy_gpu", "gpu", "raw_forward", "raw_backward"),
    )
}

AUTO = "auto"


class BackendUnavailableError(ValueError):
    """A known backend that cannot run here (the message says why and lists those that can)."""


def backend_names() -> list[str]:
    """Every registered backend, usable here or not."""
    return list(REGISTRY)


def unavailable_reasons() -> dict[str, str]:
    """name -> why it cannot run here, for the registered backends that cannot."""
    reasons = {}
    for name, backend in REGISTRY.items():
        reason = backend.availability()
        if reason is not None:
            reasons[name] = reason
    return reasons


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, e.g. ``['naive', 'im2col', 'numba']``."""
    unavailable = unavailable_reasons()
    return [name for name in REGISTRY if name not in unavailable]


def check_backend_name(name: object, source: str = "backend") -> str:
    """Validate a backend name (``"auto"`` included) and return it; raise naming ``source`` otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{source}={name!r} must be a str; got {type(name).__name__}")
    if name == AUTO:
        return name
    if name not in REGISTRY:
        raise ValueError(
            f"{source}={name!r} is not a known backend; available here: {available_backends() + [AUTO]}"
            f" (all known: {backend_names()})"
        )
    reason = REGISTRY[name].availability()
    if reason is not None:
        raise BackendUnavailableError(
            f"{source}={name!r} is not available here ({name}: {reason}); "
            f"available here: {available_backends() + [AUTO]}"
        )
    return name


# The CPU rule of "auto", measured with `gconv-edu bench --configs all` (the 5 named layers and 18 sweep layers) and 8
# further 3x3 layers; benchmarks/cpu_sweep.txt and the README ("Speed on the CPU") hold the runs.
# im2col pays a copy of the input per kernel tap and then runs BLAS's GEMM (blocked, near peak); the Numba loops pay
# nothing up front but run at 40-70 GFLOP/s per core with their 4x4 register blocks, less on short rows. So:
# numba where a GEMM has too little to chew on (depthwise-like groups), or where the blocked loops apply, the window
# C_in/G*kH*kW per output is moderate and either small or on rows long enough for SIMD; im2col otherwise.
NUMBA_MAX_WINDOW = 576  # dense 3x3 with 64 channels: numba 0.84x im2col's time; 5x5x48 (1200): im2col 1.8x faster
NUMBA_MIN_ROW = 32  # 3x3x64 groups on 28-wide rows: im2col 1.2x faster (2.0x on 2026-12-03); on 56-wide rows numba wins
NUMBA_SMALL_WINDOW = 144  # up to here short rows do not matter: 3x3x8 groups on 14-wide rows numba 0.52x im2col's time,
# 3x3x16 groups on 7-wide rows 0.86x (forward+backward, median of 9, AMD EPYC 2 cores, 2026-12-03)
THIN_GROUP = 16  # C_in/G * C_out/G below this (depthwise: 1): the GEMM degenerates, im2col is 4-8x slower

# Winograd (F(2x2,3x3), its default tile) does 2.25x fewer multiplications, but its transforms are memory traffic per
# tile: it wins where the planes are large and the groups wide. Measured (forward+backward, median of 9, same run, AMD
# EPYC 2 cores, 2026-12-03), winograd's time / the best of im2col and numba: 56x56 planes with 64 channels 0.59-0.66,
# 64 per group (128, G=2) 0.61, 48 channels 0.83, 32 channels 0.96; 28x28 planes 0.93-1.31 (32-128 channels), 14x14
# 1.26-1.39, 7x7 2.3; groups of 8 or fewer channels 2.1-3.3 (numba's blocked loops win); 16 channels at 112x112 1.7.
WINOGRAD_AUTO = True  # the switch (tests turn it off to check the rule below it)
WINOGRAD_MIN_GROUP = 32  # C_in/G and C_out/G at least this
WINOGRAD_MIN_PLANE = 40 * 40  # H_out * W_out at least this: between 28x28 (ties or loses) and 56x56 (wins)
AUTO_RULE = (
    f"winograd if it supports the layer (3x3, stride 1, dilation 1), C_in/G and C_out/G >= {WINOGRAD_MIN_GROUP} and "
    f"H_out*W_out >= {WINOGRAD_MIN_PLANE}; else numba if C_in/G * C_out/G < {THIN_GROUP}, or if its 4x4 register "
    f"blocks apply (C_in/G, C_out/G multiples of 4, stride_w 1) and C_in/G*kH*kW <= {NUMBA_MAX_WINDOW} and either "
    f"C_in/G*kH*kW <= {NUMBA_SMALL_WINDOW} or the row length (W_out; H*W for an unpadded stride-1 1x1) >= "
    f"{NUMBA_MIN_ROW}; else im2col"
)


def winograd_preferred(geom: ConvGeometry, available: list[str]) -> bool:
    """Whether "auto" takes winograd for ``geom`` (:data:`AUTO_RULE`): only with :data:`WINOGRAD_AUTO` on, only where
    it supports, and only on wide groups and large planes (thin groups make its element-wise stage memory-bound:
    Lavin & Gray 2016, section 5)."""
    if not WINOGRAD_AUTO or "winograd" not in available or REGISTRY["winograd"].supports(geom) is not None:
        return False
    wide = min(geom.in_channels_per_group, geom.out_channels_per_group) >= WINOGRAD_MIN_GROUP
    return wide and geom.out_h * geom.out_w >= WINOGRAD_MIN_PLANE


def cpu_auto_choice(geom: ConvGeometry, available: list[str]) -> str:
    """The CPU backend "auto" picks: see :data:`AUTO_RULE` (a pure function of the geometry, testable).

    Never a backend outside what it supports (:meth:`Backend.supports`); winograd only with :data:`WINOGRAD_AUTO` on.
    """
    if winograd_preferred(geom, available):
        return "winograd"
    if "numba" not in available:
        return "im2col"
    from .numba_cpu import row_length, uses_register_blocks

    if geom.in_channels_per_group * geom.out_channels_per_group < THIN_GROUP:
        return "numba"
    window = geom.in_channels_per_group * geom.kernel_area
    rows_ok = window <= NUMBA_SMALL_WINDOW or row_length(geom) >= NUMBA_MIN_ROW
    if uses_register_blocks(geom) and window <= NUMBA_MAX_WINDOW and rows_ok:
        return "numba"
    return "im2col"


def choose_auto(geom: ConvGeometry, on_gpu: bool) -> str:
    """The backend "auto" picks for this geometry.

    GPU arrays go to a GPU backend. On the CPU: :func:`cpu_auto_choice` (:data:`AUTO_RULE`).
    """
    available = available_backends()
    if on_gpu:
        return gpu_auto_choice(geom, available)
    return cpu_auto_choice(geom, available)


GPU_THIN_GROUP = 16  # C_in/G * C_out/G at or below this: cupy-raw (predicted by the kernels' design, NOT measured)


def gpu_auto_choice(geom: ConvGeometry, available: list[str]) -> str:
    """The GPU backend "auto" picks: by the kernels' design, NOT yet measured on a GPU.

    Thin groups (C_in/G * C_out/G <= GPU_THIN_GROUP: depthwise, resnext-g32's 4 x 4) leave cuBLAS tiny batched GEMMs
    and im2col's copies, while a direct kernel reads each input once per window, so the direct kernels
    (``cupy-raw``) take them where they support the kernel size; everything else goes to ``cupy`` (cuBLAS). Either
    one if only one is here.
    """
    from .cupy_gpu import raw_supports

    thin_groups = geom.in_channels_per_group * geom.out_channels_per_group <= GPU_THIN_GROUP
    preferred = ("cupy-raw", "cupy") if thin_groups and raw_supports(geom) else ("cupy", "cupy-raw")
    for name in preferred:
        if name in available:
            return name
    raise BackendUnavailableError(
        f"backend='auto' got GPU arrays but no GPU backend is available here: {unavailable_reasons()}"
    )


def get_backend(name: str) -> Backend:
    return REGISTRY[name]


def environment_backend() -> str | None:
    """``GCONV_BACKEND`` validated (a usable backend or "auto"), or None when unset or empty; ValueError naming it."""
    value = os.environ.get("GCONV_BACKEND")
    return check_backend_name(value, "GCONV_BACKEND") if value else None


def environment_errors() -> dict[str, str]:
    """The package's environment variables whose values are invalid -> why (empty when all are fine).

    Checks ``GCONV_BACKEND``, ``GCONV_IM2COL_WORKSPACE_MB`` and ``GCONV_WINOGRAD_TILE`` with the same rules the
    computation applies when it reads them (e.g. for ``gconv-edu info``); nothing is computed.
    """
    from .im2col import workspace_limit
    from .winograd import TILE_VARIABLE, tile_size

    errors = {}
    checks = (
        ("GCONV_BACKEND", environment_backend),
        ("GCONV_IM2COL_WORKSPACE_MB", workspace_limit),
        (TILE_VARIABLE, tile_size),
    )
    for variable, check in checks:
        try:
            check()
        except ValueError as error:
            errors[variable] = str(error)
    return errors
