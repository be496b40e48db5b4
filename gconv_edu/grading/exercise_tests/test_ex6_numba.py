"""ex5: the forward pass compiled with Numba (the first call of each signature may take long: it compiles)."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import NUMBA_CASES
from gconv_edu.grading.flows import check_forward
from gconv_edu.grading.sandbox import GradingFailure

EXERCISE = "ex5"


@pytest.mark.points(12)
@pytest.mark.parametrize("case", NUMBA_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass"""
    check_forward(student, case)


@pytest.mark.points(3)
def test_uses_numba(student):
    """a Numba-compiled function does the work"""
    x, weight, bias = NUMBA_CASES[0].inputs()
    student.call("conv2d_forward", *NUMBA_CASES[0].forward_args(x, weight, bias))
    compiled = {name: count for name, count in student.numba_signatures().items() if count}
    if not compiled:
        raise GradingFailure(
            "no Numba-compiled function ran during conv2d_forward: decorate your loop function with @numba.njit "
            "(at module level) and call it from conv2d_forward"
        )
