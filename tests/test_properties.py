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


# winograd supports only 3x3 kernels with stride 1 and dilation 1: its random geometries keep those and vary the rest.
ONLY_3X3_STRIDE_1 = {"winograd"}


@st.composite
def geometries(draw, only_3x3_stride_1=False):
    groups = draw(st.integers(1, 4))
    in_per_group = draw(st.integers(1, 3))
    out_per_group = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if only_3x3_stride_1:
        kernel, dilation, stride = (3, 3), (1, 1), (1, 1)
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
@given(data=st.data())
def test_random_geometries_match_reference(backend, data):
    case = data.draw(geometries(only_3x3_stride_1=backend in ONLY_3X3_STRIDE_1))
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


# --------------------------------------------------------------------------- the differential fuzz's geometry kinds
# The kinds a differential fuzz against PyTorch drew unlike the grid above: extreme aspect ratios, kernels larger than
# the input (padding makes it valid), dilation past the input, stride larger than the kernel, depthwise multipliers
# 3-8; and the memory layouts Fortran order, negative strides, read-only and broadcast (zero strides).
KINDS = ["aspect", "kernel-larger-than-input", "dilation-past-input", "stride-over-kernel", "depthwise-multiplier"]
LAYOUTS = ["c", "fortran", "negative-strides", "read-only", "broadcast"]


def _axis(draw, kind):
    """(size, kernel, stride, dilation, padding) of one axis for ``kind``; the padded input holds the dilated kernel."""
    kernel, stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2)), 1
    size = draw(st.integers(4, 9))
    if kind == "kernel-larger-than-input":
        size = draw(st.integers(1, 4))
        kernel = draw(st.integers(size + 1, size + 3))
    elif kind == "dilation-past-input":
        size, kernel = draw(st.integers(1, 5)), draw(st.integers(2, 3))
        dilation = draw(st.integers(size, size + 4))  # the dilated kernel spans past the input
    elif kind == "stride-over-kernel":
        stride = draw(st.integers(kernel + 1, kernel + 3))
    extent = dilation * (kernel - 1) + 1
    padding = max(0, -(-(extent - size) // 2)) + draw(st.integers(0, 2))
    return size, kernel, stride, dilation, padding


@st.composite
def fuzz_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    axes = [_axis(draw, kind), _axis(draw, kind)]
    if kind == "aspect":  # one axis 1-2 pixels, the other 24-64: rows far wider than tall, or columns far taller
        long_axis = draw(st.integers(0, 1))
        for axis, (low, high) in ((long_axis, (24, 64)), (1 - long_axis, (1, 2))):
            size, kernel = draw(st.integers(low, high)), draw(st.integers(1, min(3, low)))
            axes[axis] = (size, kernel, draw(st.integers(1, 3)), 1, draw(st.integers(0, 1)))
    if kind == "depthwise-multiplier":
        groups = draw(st.integers(1, 4))
        in_per_group, out_per_group = 1, draw(st.integers(3, 8))
    else:
        groups, in_per_group, out_per_group = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    (h, k_h, s_h, d_h, p_h), (w, k_w, s_w, d_w, p_w) = axes
    return dict(
        kind=kind,
        layout=draw(st.sampled_from(LAYOUTS)),
        n=draw(st.integers(1, 2)),
        c_in=groups * in_per_group,
        c_out=groups * out_per_group,
        h=h,
        w=w,
        kernel=(k_h, k_w),
        options=dict(stride=(s_h, s_w), padding=(p_h, p_w), dilation=(d_h, d_w), groups=groups),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**16)),
    )


def _laid_out(array, layout):
    """The same kind of data in another memory layout (broadcast repeats the first entry along axis 0)."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "negative-strides":
        return np.ascontiguousarray(array[..., ::-1])[..., ::-1]
    if layout == "read-only":
        array = array.copy()
        array.flags.writeable = False
        return array
    if layout == "broadcast":
        return np.broadcast_to(array[:1], array.shape)
    return array


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


FUZZ_SKIP = (
    "winograd: supports only 3x3 kernels with stride 1 and dilation 1; these kinds lie outside it (kernels larger than "
    "the input, dilation past it, stride over the kernel, 1-2 pixel axes); its layouts: tests/test_winograd.py"
)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(name, marks=pytest.mark.skip(reason=FUZZ_SKIP)) if name == "winograd" else name
        for name in CPU_BACKENDS
    ],
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fuzz_cases())
def test_fuzz_kinds_match_reference_and_torch(backend, case):
    rng = np.random.default_rng(case["seed"])
    dtype, options, layout = case["dtype"], case["options"], case["layout"]
    x = _laid_out(rng.standard_normal((case["n"], case["c_in"], case["h"], case["w"])).astype(dtype), layout)
    weight_shape = (case["c_out"], case["c_in"] // options["groups"], *case["kernel"])
    weight = _laid_out(rng.standard_normal(weight_shape).astype(dtype), layout)
    bias = rng.standard_normal(case["c_out"]).astype(dtype) if case["bias"] else None
    copies = [a.copy() for a in (x, weight)]
    expected = ref.conv2d(x, weight, bias, **options)
    y = gc.conv2d(x, weight, bias, backend=backend, **options)
    assert_close(y, expected, dtype, "y")
    dy = _laid_out(rng.standard_normal(expected.shape).astype(dtype), layout)
    got = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    wanted = ref.conv2d_backward(dy, x, weight, **options)
    for g, want, label in zip(got, wanted, ("dx", "dw", "db")):
        assert g.dtype == dtype
        assert_close(g, want, dtype, label)
    for before, after in zip(copies, (x, weight)):
        np.testing.assert_array_equal(before, after)  # inputs untouched, whatever their layout
    torch = _torch_or_none()
    if torch is None:
        return
    tx = torch.tensor(np.array(x, dtype=np.float64), requires_grad=True)
    tw = torch.tensor(np.array(weight, dtype=np.float64), requires_grad=True)
    tb = None if bias is None else torch.tensor(bias.astype(np.float64), requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, **options)
    ty.backward(torch.tensor(np.array(dy, dtype=np.float64)))
    assert_close(y, ty.detach().numpy(), dtype, "y vs torch")
    assert_close(got[0], tx.grad.numpy(), dtype, "dx vs torch")
    assert_close(got[1], tw.grad.numpy(), dtype, "dw vs torch")
