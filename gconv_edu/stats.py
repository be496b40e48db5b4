"""Small-sample statistics for the course's experiment (lesson 10), in NumPy only (SciPy is not a dependency).

Paired design: run ``s`` of condition A and run ``s`` of condition B share a seed, so the per-seed differences
``d_s = b_s - a_s`` are what is analysed: mean, Student-t 95 % confidence interval, a non-inferiority test against a
stated margin, and the smallest effect the design can detect (a power statement).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedDifference", "minimum_detectable_effect", "paired_difference", "t_quantile"]


def _t_cdf_from_zero(x: float, df: int) -> float:
    """P(0 <= T <= x) for Student's t with ``df`` degrees of freedom, x >= 0 (Simpson's rule on the density)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    grid = np.linspace(0.0, x, 4001)  # an even number of intervals
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(grid**2 / df))
    step = grid[1] - grid[0]
    return float(step / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum()))


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` >= 1 degrees of freedom (0.5 < probability < 1).

    E.g. ``t_quantile(0.975, 7)`` = 2.3646 (the two-sided 95 % critical value for 8 paired seeds).
    """
    if not 0.5 < probability < 1:
        raise ValueError(f"probability={probability} must be in (0.5, 1)")
    if not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df={df!r} must be an int >= 1")
    return _t_quantile(float(probability), int(df))


@functools.lru_cache(maxsize=256)  # a bisection over numerical integrals: a few ms, asked for the same few values
def _t_quantile(probability: float, df: int) -> float:
    target, low, high = probability - 0.5, 0.0, 1000.0
    for _ in range(80):  # bisection: the CDF is increasing
        middle = (low + high) / 2
        low, high = (middle, high) if _t_cdf_from_zero(middle, df) < target else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences ``b - a`` and their summary (mean, standard deviation, 95 % t interval)."""

    differences: np.ndarray  # (n,)
    mean: float
    std: float
    low: float  # 95 % confidence interval of the mean difference
    high: float

    def non_inferior(self, margin: float) -> bool:
        """True when the whole 95 % interval lies above ``-margin``: B is at most ``margin`` worse than A."""
        return self.low > -margin


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedDifference:
    """Mean of ``b - a`` over paired runs with its t-based confidence interval.

    a, b: (n,) values of the two conditions, run ``s`` of each sharing seed ``s``; n >= 2.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D of the same length; got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"len(a)={len(a)}: a confidence interval needs at least 2 pairs")
    differences = b - a
    mean, std = float(differences.mean()), float(differences.std(ddof=1))
    half_width = t_quantile(0.5 + confidence / 2, len(a) - 1) * std / math.sqrt(len(a))
    return PairedDifference(differences, mean, std, mean - half_width, mean + half_width)


def minimum_detectable_effect(std: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test on ``n`` pairs detects with ``power``.

    Standard approximation: (t_{1-alpha/2, n-1} + t_{power, n-1}) * std / sqrt(n), with ``std`` the standard
    deviation of the per-pair differences.
    """
    if n < 2:
        raise ValueError(f"n={n} must be >= 2")
    return (t_quantile(1 - alpha / 2, n - 1) + t_quantile(power, n - 1)) * std / math.sqrt(n)
