"""ex4: the backward pass, dx, dw and db graded separately (random upstream gradients)."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import BACKWARD_CASES, HIDDEN_CASES, hidden_conv_cases
from gconv_edu.grading.flows import check_backward, hidden

EXERCISE = "ex4"
CASES = pytest.mark.parametrize("case", BACKWARD_CASES, ids=lambda c: c.id)


@pytest.mark.points(10)
@CASES
def test_dx(student, case):
    """dx"""
    check_backward(student, case, "dx")


@pytest.mark.points(8)
@CASES
def test_dw(student, case):
    """dw"""
    check_backward(student, case, "dw")


@pytest.mark.points(3)
@CASES
def test_db(student, case):
    """db"""
    check_backward(student, case, "db")


@pytest.mark.points(4)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """dx, dw and db, hidden case"""
    case = hidden_conv_cases(hidden_seed, spatial=5)[number - 1]
    for output in ("dx", "dw", "db"):
        hidden(number, case, lambda c, output=output: check_backward(student, c, output, explain=False))
