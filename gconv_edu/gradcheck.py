"""Finite-difference gradient check for any backend.

With a random upstream gradient ``dy`` (never all ones, which would hide transposed or mis-summed gradients), the
scalar ``L = sum(conv2d(x, w, b) * dy)`` has gradients ``conv2d_backward(dy, x, w)``. Central differences in float64,
``(L(t + eps) - L(t - eps)) / (2 eps)``, estimate them one entry at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .api import conv2d, conv2d_backward
from .geometry import IntPair, Padding


@dataclass(frozen=True)
class GradcheckResult:
    """Max relative error of each gradient: ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``."""

    dx_error: float
    dw_error: float
    db_error: float
    tolerance: float

    @property
    def max_error(self) -> float:
        return max(self.dx_error, self.dw_error, self.db_error)

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"gradcheck {verdict}: rel. error dx={self.dx_error:.2e} dw={self.dw_error:.2e} db={self.db_error:.2e}"
            f" (tolerance {self.tolerance:.0e})"
        )


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max|a - n| / max(max|a|, max|n|)``; 0 when both are all zero."""
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric))) / scale


def numeric_gradient(
    loss: Callable[[], float], array: np.ndarray, eps: float, indices: np.ndarray | None = None
) -> np.ndarray:
    """Central differences of ``loss()`` with respect to ``array`` (perturbed in place, then restored).

    Returns an array of ``array``'s shape; entries not in ``indices`` (flat indices) stay 0.
    """
    gradient = np.zeros_like(array)
    flat, grad_flat = array.reshape(-1), gradient.reshape(-1)
    for index in range(flat.size) if indices is None else indices:
        saved = flat[index]
        flat[index] = saved + eps
        plus = loss()
        flat[index] = saved - eps
        minus = loss()
        flat[index] = saved
        grad_flat[index] = (plus - minus) / (2 * eps)
    return gradient


def gradcheck(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    backend: str | None = None,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
    max_entries: int | None = None,
    seed: int = 0,
) -> GradcheckResult:
    """Compare ``conv2d_backward`` with central finite differences of ``conv2d``, in float64.

    x: (N, C_in, H, W); weight: (C_out, C_in // groups, kH, kW); bias: (C_out,) or None (a zero bias is then used, so
    db is still checked). ``max_entries`` checks at most that many random entries per array (None: all of them).
    The inputs are copied to float64; they are not modified.
    """
    rng = np.random.default_rng(seed)
    x64 = np.array(x, dtype=np.float64)
    w64 = np.array(weight, dtype=np.float64)
    b64 = np.zeros(w64.shape[0]) if bias is None else np.array(bias, dtype=np.float64)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, backend=backend)
    dy = rng.standard_normal(conv2d(x64, w64, b64, **options).shape)

    def loss() -> float:
        return float(np.sum(conv2d(x64, w64, b64, **options) * dy))

    def sample(array: np.ndarray) -> np.ndarray | None:
        if max_entries is None or array.size <= max_entries:
            return None
        return rng.choice(array.size, size=max_entries, replace=False)

    errors = []
    dx, dw, db = conv2d_backward(dy, x64, w64, **options)
    for analytic, array in ((dx, x64), (dw, w64), (db, b64)):
        indices = sample(array)
        numeric = numeric_gradient(loss, array, eps, indices)
        if indices is not None:
            analytic = analytic.reshape(-1)[indices]
            numeric = numeric.reshape(-1)[indices]
        errors.append(relative_error(analytic, numeric))
    return GradcheckResult(*errors, tolerance=tolerance)
