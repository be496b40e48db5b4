"""Compare a student's result with the reference and say, in one line, what is wrong.

A message names what was checked, what is wrong with it (shape expected vs got, dtype, how many values are wrong, the
largest absolute error and the first wrong index), a hint where the pattern is known (:mod:`.hints`), and the case and
its seed. It never contains a reference value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .errors import GradingFailure

Hint = Callable[[], "str | None"]

# Relative to the largest reference value. Student code may sum in any order: in float64 that moves results by ~1e-15,
# so 1e-9 is far above rounding and far below any real bug. A float32 sum of the ~100 products here rounds to a few
# 1e-6 of the scale; 1e-4 leaves room for any summation order, while every bug we know of errs by more than 1e-2.
RELATIVE_TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def tolerance(expected: np.ndarray, dtype: str) -> float:
    """Absolute tolerance for comparing with ``expected``: relative tolerance times its scale (at least 1e-3)."""
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    return RELATIVE_TOLERANCE[str(dtype)] * max(scale, 1e-3)


def type_name(value: Any) -> str:
    """``numpy.ma.MaskedArray``, ``numpy.ndarray``, ``int``...: a type as a student would write it."""
    kind = type(value)
    module = kind.__module__
    module = "numpy.ma" if module.startswith("numpy.ma") else "numpy" if module.startswith("numpy") else module
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def close(got: Any, expected: np.ndarray, dtype: str) -> bool:
    """True when ``got`` has the expected shape and values (dtype not checked): the test used by hints."""
    if type(got) is not np.ndarray or got.shape != expected.shape or got.dtype.kind not in "fiu":
        return False
    return bool(np.all(np.abs(got.astype(np.float64) - expected) <= tolerance(expected, dtype)))


def first_hint(hints: Iterable[Hint]) -> str | None:
    """The first hint that recognises the mistake. A hint that itself fails (e.g. re-running code that hangs) is
    skipped: a hint is a bonus, never a reason for a different score."""
    for hint in hints:
        try:
            found = hint()
        except Exception:  # e.g. a student's odd return value, or re-running code that hangs
            continue
        if found:
            return found
    return None


def fail(message: str, label: str, hints: Iterable[Hint] = ()) -> None:
    found = first_hint(hints)
    raise GradingFailure(message + (f"; hint: {found}" if found else "") + f" [{label}]")


def check_array(
    what: str,
    got: Any,
    expected: np.ndarray,
    dtype: str,
    label: str,
    hints: Iterable[Hint] = (),
    shape_hints: Iterable[Hint] = (),
) -> None:
    """Raise a :class:`GradingFailure` with one line unless ``got`` matches ``expected`` in type, shape, dtype, values.

    ``dtype`` is the dtype the result must have (the inputs'); ``expected`` is the float64 reference.
    """
    # Exactly ndarray: a subclass (a masked array, np.matrix) overrides comparisons and arithmetic, so a fully
    # masked result would compare "equal" to anything.
    if type(got) is not np.ndarray:
        name = type_name(got)
        kind = f"returned a {name}, expected a plain numpy.ndarray" if isinstance(got, np.ndarray) else f"got {name}"
        fail(f"{what} should be a numpy.ndarray of shape {expected.shape}: {kind}", label)
    if got.shape != expected.shape:
        fail(f"{what}.shape expected {expected.shape}, got {got.shape}", label, shape_hints)
    if got.dtype != np.dtype(dtype):
        fail(
            f"{what}.dtype expected {dtype} (the inputs' dtype), got {got.dtype}",
            label,
            [lambda: "create the output with dtype=x.dtype (np.zeros defaults to float64)"],
        )
    error = np.abs(got.astype(np.float64) - expected)
    wrong = ~(error <= tolerance(expected, dtype))  # NaN counts as wrong
    if wrong.any():
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        largest = float(np.nanmax(error)) if not np.all(np.isnan(error)) else float("nan")
        nan_note = f", {int(np.isnan(got).sum())} NaN" if np.isnan(got).any() else ""
        fail(
            f"{what}: {int(wrong.sum())} of {wrong.size} values wrong{nan_note}, max abs error {largest:.3g}, "
            f"first wrong at index {first}",
            label,
            hints,
        )


def _plain(value: Any, depth: int = 0) -> bool:
    """Ints (Python or NumPy; a float with an integer value too: ``C_in / G * k`` is 12.0), strings, None, and
    slices/tuples/lists of them: what the contract's answers are made of, and types whose ``==`` the grader can trust
    (a student's object could define ``__eq__`` to say yes)."""
    if type(value) in (int, str, type(None)) or (isinstance(value, np.integer) and type(value).__module__ == "numpy"):
        return True
    if type(value) is float or (isinstance(value, np.floating) and type(value).__module__ == "numpy"):
        return bool(np.isfinite(value)) and float(value).is_integer()
    if type(value) is slice:
        return all(_plain(part, depth + 1) for part in (value.start, value.stop, value.step))
    return type(value) in (tuple, list) and depth < 10 and all(_plain(part, depth + 1) for part in value)


def check_equal(what: str, got: Any, expected: Any, label: str, hints: Iterable[Hint] = ()) -> None:
    """Exact comparison for integers and small structures; prints what was got, never what was expected.

    ``got`` must be made of ints (Python or NumPy integers, or floats with an integer value), strings, None, slices,
    tuples and lists.
    """
    if not _plain(got):
        fail(f"{what} should be made of ints (got {type_name(got)} {str(got)[:40]})", label)
    try:
        equal = bool(got == expected)
    except Exception:  # e.g. an array compared with an int pair: not equal, and not a grader error
        equal = False
    if not equal:
        shown = str(got) if isinstance(got, (str, np.generic)) else repr(got)
        fail(f"{what} is wrong (got {shown if len(shown) < 120 else shown[:117] + '...'})", label, hints)
