"""Finite-difference checks of every backend's hand-written backward, and of gradcheck itself."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_params, skip_unless_supported

import gconv_edu as gc
from gconv_edu.backends import naive

# (x shape, weight shape, stride, padding, dilation, groups)
FD_CASES = {
    "stride2-groups2": ((2, 4, 7, 6), (4, 2, 3, 2), 2, 1, 1, 2),
    "stride3-uneven": ((1, 2, 10, 8), (4, 1, 3, 3), 3, (1, 0), 1, 2),
    "dilation2-same": ((1, 3, 7, 7), (3, 1, 3, 3), 1, "same", 2, 3),
    "stride2x1-dil1x2-mult2": ((2, 2, 6, 9), (4, 1, 2, 3), (2, 1), 1, (1, 2), 2),
    "3x3-groups2-odd": ((2, 4, 7, 5), (6, 2, 3, 3), 1, 1, 1, 2),  # winograd's: 7x5 outputs, tile remainders
}


@pytest.mark.parametrize("case", list(FD_CASES))
@pytest.mark.parametrize("backend", backend_params())
def test_backward_matches_finite_differences(backend, case):
    x_shape, w_shape, stride, padding, dilation, groups = FD_CASES[case]
    skip_unless_supported(backend, x_shape, w_shape, stride, padding, dilation, groups)
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    result = gc.gradcheck(
        x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, backend=backend, tolerance=1e-6
    )
    assert result.passed, str(result)


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    """A backward that forgets the stride must fail the check (the check can fail)."""
    x, w = np.random.default_rng(8).standard_normal((1, 2, 7, 7)), np.ones((2, 1, 3, 3))
    original = naive.backward

    def wrong_backward(dy, x, weight, geom):
        dx, dw, db = original(dy, x, weight, geom)
        return dx, dw, 0.5 * db  # db as a mean over two of something: wrong

    monkeypatch.setattr(naive, "backward", wrong_backward)
    result = gc.gradcheck(x, w, np.zeros(2), stride=2, groups=2, backend="naive")
    assert not result.passed and result.db_error > 0.1 and result.dx_error < 1e-6
    assert "FAILED" in str(result)


def test_gradcheck_can_sample_entries():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 4, 9, 9)), rng.standard_normal((4, 2, 3, 3))
    result = gc.gradcheck(x, w, None, groups=2, padding=1, backend="im2col", max_entries=20)
    assert result.passed, str(result)
