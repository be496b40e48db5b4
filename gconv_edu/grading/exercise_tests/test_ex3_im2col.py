"""ex3: im2col, and the forward pass as one batched matrix product over groups."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import FORWARD_CASES, IM2COL_CASES
from gconv_edu.grading.flows import check_forward, check_im2col, im2col_first

EXERCISE = "ex3"


@pytest.mark.points(8)
@pytest.mark.parametrize("case", IM2COL_CASES, ids=lambda c: c.id)
def test_im2col(student, case):
    """im2col"""
    check_im2col(student, case)


@pytest.mark.points(12)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass via im2col"""
    check_forward(student, case, first_hints=(im2col_first(student, case),))
