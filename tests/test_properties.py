"""Hypothesis: random valid geometries (bounded sizes), every CPU backend vs the reference, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gconv_edu as gc
from gconv_edu.backends import REGISTRY

CPU_BACKENDS = [name for name, backend in REGISTRY.items() if backend.device == "cpu"]


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 4))
    in_per_group = draw(st.integers(1, 3))
    out_per_group = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if draw(st.booleans()) and stride == (1, 1):
        padding = draw(st.sampled_from(["same", "valid"]))
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    # The input must hold the dilated kernel once padded.
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    pad_hw = (0, 0) if isinstance(padding, str) else padding
    h = draw(st.integers(max(1, extent[0] - 2 * pad_hw[0]), max(1, extent[0] - 2 * pad_hw[0]) + 6))
    w = draw(st.integers(max(1, extent[1] - 2 * pad_hw[1]), max(1, extent[1] - 2 * pad_hw[1]) + 6))
    return dict(
        n=draw(st.integers(1, 3)),
        c_in=groups * in_per_group,
        c_out=groups * out_per_group,
        h=h,
        w=w,
        kernel=kernel,
        options=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=geometries())
def test_random_geometries_match_reference(backend, case):
    rng = np.random.default_rng(case["seed"])
    dtype, options = case["dtype"], case["options"]
    x = rng.standard_normal((case["n"], case["c_in"], case["h"], case["w"])).astype(dtype)
    weight = rng.standard_normal((case["c_out"], case["c_in"] // options["groups"], *case["kernel"])).astype(dtype)
    bias = rng.standard_normal(case["c_out"]).astype(dtype) if case["bias"] else None
    expected = ref.conv2d(x, weight, bias, **options)
    assert_close(gc.conv2d(x, weight, bias, backend=backend, **options), expected, dtype, "y")
    dy = rng.standard_normal(expected.shape).astype(dtype)
    got = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert g.dtype == dtype
        assert_close(g, want, dtype, label)
