"""ex4: the backward pass, dx, dw and db graded separately (random upstream gradients)."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import BACKWARD_CASES
from gconv_edu.grading.flows import check_backward

EXERCISE = "ex4"
CASES = pytest.mark.parametrize("case", BACKWARD_CASES, ids=lambda c: c.id)


@pytest.mark.points(12)
@CASES
def test_dx(student, case):
    """dx"""
    check_backward(student, case, "dx")


@pytest.mark.points(9)
@CASES
def test_dw(student, case):
    """dw"""
    check_backward(student, case, "dw")


@pytest.mark.points(4)
@CASES
def test_db(student, case):
    """db"""
    check_backward(student, case, "db")
