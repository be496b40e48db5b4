"""Tiny helpers the lessons share: a printed, asserted check, and timers.

Lessons import them as ``from gconv_edu.course import check, median_seconds``: they live in the package, not beside
the lessons, so that a lesson copied alone into any folder (or opened as a notebook there) still runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def check(claim: str, condition: bool | np.bool_) -> None:
    """Print the claim, and stop the lesson if it is false (every step checks itself against the previous one)."""
    print(f"  check: {claim} ... {'ok' if condition else 'FAILED'}")
    assert condition, claim


def close(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Same numbers up to rounding; float32 sums over a few hundred terms differ in the last digits."""
    return bool(np.allclose(a, b, rtol=rtol, atol=atol))


def call_seconds(function: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds taken by each of ``repeats`` calls, after ``warmup`` uncounted calls (compilation, caches)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(function: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``function()`` in seconds (see :func:`call_seconds`)."""
    return float(np.median(call_seconds(function, repeats, warmup)))


def best_seconds(function: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Fastest wall time of ``function()`` over ``repeats`` calls, after ``warmup`` calls.

    On a shared machine other processes only ever ADD time (a descheduled thread stalls a parallel kernel for a whole
    scheduler tick, ~4 ms), so the minimum is the least disturbed estimate of what the hardware does.
    """
    return float(np.min(call_seconds(function, repeats, warmup)))


def default_figures_dir() -> Path:
    """Where figures go (not created here): ``$GCONV_FIGURES_DIR``, else ``figures/`` at the root of a checkout
    (``pip install -e .``: the committed figures a reader of the repository sees), else ``./figures`` of the current
    directory (an installed copy never writes into site-packages)."""
    override = os.environ.get("GCONV_FIGURES_DIR")
    if override:
        return Path(override)
    root = Path(__file__).resolve().parents[1]
    return (root if (root / "pyproject.toml").is_file() else Path.cwd()) / "figures"


def lessons_dir() -> Path:
    """The lesson scripts (and ``exercises/`` with the stubs): ``lessons/`` of a checkout when this package is one
    (``pip install -e .``), else the copy that the wheel ships as package data (``gconv_edu/_lessons``, made from the
    checkout's ``lessons/`` at build time: there is one hand-kept source)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "lessons"
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return package / "_lessons"
