"""ex2: the forward pass with explicit loops."""

from __future__ import annotations

import pytest

from gconv_edu.grading.cases import FORWARD_CASES
from gconv_edu.grading.flows import check_forward

EXERCISE = "ex2"


@pytest.mark.points(20)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: c.id)
def test_forward(student, case):
    """forward pass"""
    check_forward(student, case)
