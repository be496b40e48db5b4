"""ex3: im2col, and the forward pass as one batched matrix product over groups."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import FORWARD_CASES, HIDDEN_CASES, IM2COL_CASES, hidden_conv_cases
from gconv_edu.grading.flows import check_forward, check_im2col, hidden, im2col_first

EXERCISE = "ex3"


@pytest.mark.points(7)
@pytest.mark.parametrize("case", IM2COL_CASES, ids=lambda c: c.id)
def test_im2col(student, case):
    """im2col"""
    check_im2col(student, case)


@pytest.mark.points(10)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass via im2col"""
    check_forward(student, case, first_hints=(im2col_first(student, case),))


@pytest.mark.points(3)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """forward pass via im2col, hidden case"""
    case = hidden_conv_cases(hidden_seed, spatial=6)[number - 1]
    hidden(number, case, lambda c: check_forward(student, c, explain=False))
