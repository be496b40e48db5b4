"""ex1: the forward pass with explicit loops."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import FORWARD_CASES, HIDDEN_CASES, hidden_conv_cases
from gconv_edu.grading.flows import check_forward, hidden

EXERCISE = "ex1"


@pytest.mark.points(16)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass"""
    check_forward(student, case)


@pytest.mark.points(4)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """forward pass, hidden case"""
    case = hidden_conv_cases(hidden_seed)[number - 1]
    hidden(number, case, lambda c: check_forward(student, c, explain=False))
