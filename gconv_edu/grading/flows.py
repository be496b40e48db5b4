"""What one test of a convolution exercise does: call the student, compare, explain (shared by ex1, ex3, ex4, ex6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import hints
from .cases import ConvCase, Im2colCase, hidden_summary
from .checks import Hint, check_array, close
from .errors import GradingFailure, StudentError
from .exercises import CONV_ARGS
from .sandbox import StudentFile

BACKWARD_ARGS = ("dy", "x", "weight", "stride", "padding", "dilation", "groups")
IM2COL_ARGS = ("x", "kernel_size", "stride", "padding", "dilation")


# Isolation re-runs the student's code up to 5 times per failing case: only worth it when a call is quick.
ISOLATION_MAX_CALL_SECONDS = 1.0


def _isolation(student: StudentFile, kind: str, case: ConvCase | Im2colCase, check: Any) -> Hint:
    """The isolation hint of :mod:`.hints` for a failing case, or nothing when the student's code is slow."""
    if student.last_call_seconds > ISOLATION_MAX_CALL_SECONDS:
        return lambda: None
    return hints.isolate(kind, case, lambda control: _quietly_passes(lambda: check(control)))


def _quietly_passes(check: Any) -> bool:
    """For isolation hints: does the student's code pass this (control) check?"""
    try:
        check()
    except GradingFailure:
        return False
    return True


# --------------------------------------------------------------------------- forward
def run_forward(student: StudentFile, case: ConvCase, function: str = "conv2d_forward") -> tuple:
    """(inputs, reference, student's y) for one case."""
    x, weight, bias = case.inputs()
    expected = case.forward_reference(x, weight, bias)
    got = _call(student, case, function, case.forward_args(x, weight, bias), CONV_ARGS)
    return (x, weight, bias), expected, got


def _call(student: StudentFile, case: ConvCase | Im2colCase, function: str, args: tuple, names: tuple) -> Any:
    """The student's ``function(*args)``; a failure message gets a hint (if any) and the case label."""
    try:
        return student.call(function, *args, argument_names=names)
    except StudentError as error:
        hint = _index_error_hint(error, case) if isinstance(case, ConvCase) else ""
        raise StudentError(f"{error}{hint} [{case.label}]") from None


def _index_error_hint(error: StudentError, case: ConvCase) -> str:
    """An IndexError, or a shape/broadcast error, in a convolution: most often the output size is wrong."""
    text = str(error)
    if "IndexError" in text or ("ValueError" in text and ("shape" in text or "broadcast" in text)):
        return f"; hint: {hints.output_size_hint(case)}"
    return ""


def check_forward(
    student: StudentFile,
    case: ConvCase,
    function: str = "conv2d_forward",
    explain: bool = True,
    first_hints: tuple[Hint, ...] = (),
) -> None:
    """y of ``function(x, weight, bias, stride, padding, dilation, groups)`` against the reference, one-line failure.

    ``first_hints`` are tried before the generic ones (e.g. ex3: "your im2col is wrong on this input").
    """
    (x, weight, bias), expected, got = run_forward(student, case, function)
    if not explain:
        check_array("y", got, expected, case.dtype, case.label)
        return
    shape = tuple(got.shape) if isinstance(got, np.ndarray) else ()
    value_hints = hints.forward_value_hints(case, x, weight, bias, expected, got)
    size_hint = lambda: hints.output_size_hint(case)  # noqa: E731  (the last resort for a wrong shape)
    isolation = _isolation(student, "forward", case, lambda c: check_forward(student, c, function, explain=False))
    check_array(
        "y",
        got,
        expected,
        case.dtype,
        case.label,
        hints=[*first_hints, *value_hints, isolation],
        shape_hints=[*first_hints, *hints.forward_shape_hints(case, shape), isolation, size_hint],
    )


def im2col_first(student: StudentFile, case: ConvCase) -> Hint:
    """ex3's forward pass is built on the student's im2col: if that is wrong on this input, say so first."""

    def hint() -> str | None:
        unfold = Im2colCase(
            f"{case.id}-im2col",
            (case.n, case.c_in, case.h, case.w),
            case.kernel,
            case.stride,
            case.padding,
            case.dilation,
            case.dtype,
            case.seed,
        )
        if _quietly_passes(lambda: check_im2col(student, unfold, explain=False)):
            return None
        return "your im2col is wrong on this input (see the im2col tests): fix it first"

    return hint


# --------------------------------------------------------------------------- backward
def check_backward(student: StudentFile, case: ConvCase, output: str, explain: bool = True) -> None:
    """One of dx, dw, db of ``conv2d_backward(dy, x, weight, stride, padding, dilation, groups)``."""
    x, weight, _ = case.inputs()
    dy = case.upstream()
    expected = dict(zip(("dx", "dw", "db"), case.backward_reference(dy, x, weight)))[output]
    args = (dy, x, weight, case.stride, case.padding, case.dilation, case.groups)
    result = _call(student, case, "conv2d_backward", args, BACKWARD_ARGS)
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        raise GradingFailure(
            f"conv2d_backward should return a tuple (dx, dw, db), got {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            + f" [{case.label}]"
        )
    got = result[("dx", "dw", "db").index(output)]
    if not explain:
        check_array(output, got, expected, case.dtype, case.label)
        return
    shape = tuple(got.shape) if isinstance(got, np.ndarray) else ()
    value_hints = {
        "dx": lambda c, e, g: hints.dx_value_hints(c, e, g, dy, weight),
        "dw": hints.dw_value_hints,
        "db": hints.db_value_hints,
    }[output]
    shape_hints = {"dx": hints.dx_shape_hints, "dw": lambda c, s: [], "db": hints.db_shape_hints}[output]
    isolation = _isolation(student, output, case, lambda c: check_backward(student, c, output, explain=False))
    check_array(
        output,
        got,
        expected,
        case.dtype,
        case.label,
        hints=[*value_hints(case, expected, got), isolation],
        shape_hints=[*shape_hints(case, shape), isolation],
    )


# --------------------------------------------------------------------------- im2col
def check_im2col(student: StudentFile, case: Im2colCase, explain: bool = True) -> None:
    """``im2col(x, kernel_size, stride, padding, dilation)`` -> (N, C*kH*kW, H_out*W_out) against gconv_edu's."""
    x = case.input()
    expected = case.reference(x)
    got = _call(student, case, "im2col", case.args(x), IM2COL_ARGS)
    if not explain:
        check_array("cols", got, expected, case.dtype, case.label)
        return
    isolation = _isolation(student, "im2col", case, lambda c: check_im2col(student, c, explain=False))
    check_array(
        "cols",
        got,
        expected,
        case.dtype,
        case.label,
        hints=[*hints.im2col_hints(case, expected, got), isolation],
        shape_hints=[*hints.im2col_hints(case, expected, got), isolation],
    )


# --------------------------------------------------------------------------- hidden cases
def hidden(number: int, case: ConvCase, check: Any) -> None:
    """Run ``check(case)`` (without explanations) on a hidden case; a failure says which kind of case broke,
    'hidden case 2 (stride, groups=4, float32): wrong: y: 3 of 40 values wrong, max abs error 0.5', not its sizes."""
    try:
        check(case)
    except GradingFailure as error:
        # Neither the label (its seed) nor a hint (its sizes): the case stays hidden until the instructor's report.
        message = str(error).removesuffix(f" [{case.label}]").split("; hint:")[0]
        raise StudentError(f"hidden case {number} ({hidden_summary(case)}): wrong: {message}") from None


__all__ = ["check_backward", "check_forward", "check_im2col", "close", "hidden", "run_forward"]
