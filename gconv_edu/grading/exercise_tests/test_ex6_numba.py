"""ex6: the forward pass compiled with Numba (the first call of each signature may take long: it compiles)."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import HIDDEN_CASES, NUMBA_CASES, ConvCase, hidden_conv_cases
from gconv_edu.grading.errors import GradingFailure
from gconv_edu.grading.flows import check_forward, hidden

EXERCISE = "ex6"
# 35.7 M multiply-adds: tens of milliseconds in compiled loops, far beyond the time limit in Python loops.
LARGE = ConvCase("large", 2, 64, 64, 24, 24, (3, 3), seed=601)
COMPILED_SHARE = 0.5  # of the call's time spent inside the compiled functions


@pytest.mark.points(8)
@pytest.mark.parametrize("case", NUMBA_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass"""
    check_forward(student, case)


@pytest.mark.points(4)
def test_loops_are_compiled(student):
    """the loops run in Numba-compiled code"""
    # A small call of the large case's argument types first: compiling is not the work being measured.
    warm = NUMBA_CASES[0]
    assert (warm.dtype, warm.bias) == (LARGE.dtype, LARGE.bias)
    student.call("conv2d_forward", *warm.forward_args(*warm.inputs()))
    if not any(student.numba_signatures().values()):
        raise GradingFailure(
            "no Numba-compiled function ran during conv2d_forward: decorate your loop function with @numba.njit "
            "(at module level) and call it from conv2d_forward"
        )
    timing = student.profile("conv2d_forward", *LARGE.forward_args(*LARGE.inputs()), timeout=student.timeout + 5)
    share = timing["compiled"] / max(timing["total"], 1e-9)
    if not timing.get("compiled_calls"):
        raise GradingFailure(
            "no Numba-compiled function ran during conv2d_forward: decorate your loop function with @numba.njit "
            "(at module level) and call it from conv2d_forward"
        )
    if share < COMPILED_SHARE:
        raise GradingFailure(
            f"only {share:.0%} of conv2d_forward's time (a 64-channel case, {timing['total']:.2f} s) ran inside "
            f"@numba.njit functions (at least {COMPILED_SHARE:.0%} expected): put the convolution's loops themselves "
            "in the compiled function, not only a helper"
        )


@pytest.mark.points(3)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """forward pass, hidden case"""
    case = hidden_conv_cases(hidden_seed, spatial=8)[number - 1]
    hidden(number, case, lambda c: check_forward(student, c, explain=False))
