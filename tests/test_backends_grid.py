"""The shared grid: every registered backend against the independent float64 reference, forward and backward.

Registering a backend in gconv_edu.backends.REGISTRY is all it takes to be tested here.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, backend_params, random_array, skip_unless_supported

import gconv_edu as gc

# (N, C_in, C_out, H, W, kH, kW, stride, padding, dilation, groups, bias, noncontiguous)
CASES = {
    "dense-3x3": (2, 3, 4, 6, 7, 3, 3, 1, 1, 1, 1, True, False),
    "g2-k2x3": (2, 4, 6, 7, 5, 2, 3, 1, 0, 1, 2, False, False),
    "g3-k3x2-s2-uneven": (2, 6, 6, 8, 9, 3, 2, 2, 1, 1, 3, True, True),
    "depthwise-same": (2, 4, 4, 9, 8, 3, 3, 1, "same", 1, 4, True, False),
    "depthwise-mult2-k5x5": (2, 3, 6, 7, 10, 5, 5, 1, 2, 1, 3, True, True),
    "pointwise-g2": (2, 8, 4, 5, 6, 1, 1, 1, 0, 1, 2, False, False),
    "pointwise-s2-depthwise": (2, 4, 4, 7, 7, 1, 1, 2, 0, 1, 4, True, False),
    "s3-uneven": (2, 2, 4, 11, 10, 3, 3, 3, 1, 1, 2, False, True),
    "s2x1-pad2x0": (2, 4, 4, 8, 7, 3, 2, (2, 1), (2, 0), 1, 2, True, False),
    "dilation2": (2, 2, 4, 9, 9, 3, 3, 1, 2, 2, 1, True, False),
    "dilation2x1-same": (2, 6, 3, 10, 8, 2, 3, 1, "same", (2, 1), 3, False, True),
    "valid-k5x5-g4": (2, 4, 8, 6, 9, 5, 5, 1, "valid", 1, 4, True, False),
    "same-even-kernel": (2, 4, 4, 6, 6, 2, 2, 1, "same", 1, 2, True, False),
    "n1-pad1x2-dil1x2": (1, 4, 2, 5, 5, 3, 3, 2, (1, 2), (1, 2), 2, True, False),
    "depthwise-s2-d2": (3, 6, 6, 12, 11, 3, 3, 2, 1, 2, 6, False, True),
    "k5x5-g2-s2": (2, 4, 4, 11, 9, 5, 5, 2, 2, 1, 2, True, False),
}


def _case(name, dtype, seed=0):
    n, c_in, c_out, h, w, kh, kw, stride, padding, dilation, groups, has_bias, noncontiguous = CASES[name]
    rng = np.random.default_rng(seed)
    x = random_array(rng, (n, c_in, h, w), dtype, noncontiguous)
    weight = random_array(rng, (c_out, c_in // groups, kh, kw), dtype, noncontiguous)
    bias = rng.standard_normal(c_out).astype(dtype) if has_bias else None
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, options, rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", backend_params())
def test_forward_and_backward_match_reference(backend, case, dtype):
    x, weight, bias, options, rng = _case(case, dtype)
    skip_unless_supported(backend, x.shape, weight.shape, **options)
    expected = ref.conv2d(x, weight, bias, **options)
    y = gc.conv2d(x, weight, bias, backend=backend, **options)
    assert y.dtype == dtype
    assert_close(y, expected, dtype, "y")

    dy = rng.standard_normal(expected.shape).astype(dtype)  # random upstream gradient, never all ones
    dx, dw, db = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy, x, weight, **options)
    for got, want, label in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert got.dtype == dtype, f"{label} dtype"
        assert_close(got, want, dtype, label)


@pytest.mark.parametrize("backend", backend_params())
def test_inputs_unmodified_and_results_fresh(backend):
    x, weight, bias, options, rng = _case("g3-k3x2-s2-uneven", np.float64)
    skip_unless_supported(backend, x.shape, weight.shape, **options)  # winograd: tests/test_winograd.py
    copies = [a.copy() for a in (x, weight, bias)]
    y = gc.conv2d(x, weight, bias, backend=backend, **options)
    dy = rng.standard_normal(y.shape)
    dy_copy = dy.copy()
    dx, dw, db = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    for original, copy in zip((x, weight, bias, dy), (*copies, dy_copy)):
        np.testing.assert_array_equal(original, copy)
    for result in (y, dx, dw, db):
        for given in (x, weight, bias, dy):
            assert not np.shares_memory(result, given)


@pytest.mark.parametrize("backend", backend_params())
def test_nan_and_inf_propagate(backend):
    """NaN and inf are data: they reach exactly the outputs whose windows contain them."""
    x = np.ones((1, 2, 5, 5))
    x[0, 0, 2, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    weight = np.ones((2, 1, 3, 3))
    y = gc.conv2d(x, weight, groups=2, backend=backend)
    assert np.isnan(y[0, 0]).all()  # every 3x3 window of a 5x5 input covers the centre
    assert np.isinf(y[0, 1, 0, 0]) and np.isfinite(y[0, 1, 1:, :]).all()


def _same_nonfinite_pattern(got, want, label):
    """Equal where finite (to rounding), and NaN / +inf / -inf exactly where the reference has them."""
    got = np.asarray(got)
    for predicate in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(predicate(got), predicate(want), err_msg=f"{label}: {predicate.__name__}")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10, err_msg=label)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0, on purpose
@pytest.mark.parametrize("padding", [1, (2, 0), "same"])
@pytest.mark.parametrize("backend", backend_params())
def test_nonfinite_weights_and_gradients_meet_the_padding_as_in_the_definition(backend, padding):
    """A tap over the padding multiplies by 0, and inf * 0 = NaN: backends that skip padding taps must still agree."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 6, 5))
    weight = rng.standard_normal((4, 2, 3, 3))
    weight[0, 0, 0, 0], weight[3, 1, 2, 1] = np.inf, np.nan
    options = dict(padding=padding, groups=2)
    _same_nonfinite_pattern(gc.conv2d(x, weight, backend=backend, **options), ref.conv2d(x, weight, **options), "y")
    weight = rng.standard_normal((4, 2, 3, 3))
    dy = rng.standard_normal(ref.conv2d(x, weight, **options).shape)
    dy[0, 0, 0, 0], dy[1, 2, -1, -1] = np.inf, -np.inf
    got = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        _same_nonfinite_pattern(g, want, label)
