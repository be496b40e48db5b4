"""conv_transpose2d: an independent scatter-loop reference, the adjoint identity, finite differences, PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, backend_params, skip_unless_supported

import gconv_edu as gc
from gconv_edu.gradcheck import numeric_gradient, relative_error


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def reference_conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups):
    """The definition, written apart from the package: every input pixel scatters ``x * w`` into the output,
    ``y[n, g*K + k, i*s - p + a*d, j*s - p + b*d] += x[n, g*Cg + c, i, j] * w[g*Cg + c, k, a, b]``."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(_pair, (stride, padding, output_padding, dilation))
    n, c_in, h, w = x.shape
    _, out_per_group, kh, kw = weight.shape
    in_per_group = c_in // groups
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (w - 1) * sw + dw * (kw - 1) + 1 + opw
    y = np.zeros((n, out_per_group * groups, full_h, full_w))
    for c in range(c_in):
        g = c // in_per_group
        for a in range(kh):
            for b in range(kw):
                contribution = np.einsum("nij,k->nkij", x[:, c].astype(np.float64), weight[c, :, a, b])
                rows, cols = slice(a * dh, a * dh + sh * (h - 1) + 1, sh), slice(b * dw, b * dw + sw * (w - 1) + 1, sw)
                y[:, g * out_per_group : (g + 1) * out_per_group, rows, cols] += contribution
    y = y[:, :, ph : full_h - ph, pw : full_w - pw]  # padding removes rows from both sides of the full scatter
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)[None, :, None, None]


def random_geometry(rng):
    """A random small transposed-convolution geometry with every option exercised, PyTorch's constraints obeyed."""
    groups = int(rng.choice([1, 2, 3]))
    stride, dilation = tuple(int(s) for s in rng.integers(1, 4, 2)), tuple(int(d) for d in rng.integers(1, 3, 2))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    # 2 * padding <= dilation * (k - 1) keeps the output at least 1 pixel even for a 1-pixel input.
    padding = tuple(int(rng.integers(0, d * (k - 1) // 2 + 1)) for k, d in zip(kernel, dilation))
    size = tuple(int(s) for s in rng.integers(1, 6, 2))
    x_shape = (int(rng.integers(1, 3)), groups * int(rng.integers(1, 3)), *size)
    weight_shape = (x_shape[1], int(rng.integers(1, 3)), *kernel)
    options = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    return x_shape, weight_shape, options


GEOMETRY_SEEDS = range(30)


@pytest.mark.parametrize("seed", GEOMETRY_SEEDS)
def test_matches_reference_and_finite_differences(seed):
    rng = np.random.default_rng(seed)
    x_shape, weight_shape, options = random_geometry(rng)
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[1] * options["groups"]) if seed % 2 else None
    y = gc.conv_transpose2d(x, weight, bias, **options)
    assert_close(y, reference_conv_transpose2d(x, weight, bias, **options), np.float64, "y")

    dy = rng.standard_normal(y.shape)  # random upstream gradient, never all ones
    bias64 = np.zeros(y.shape[1]) if bias is None else bias

    def loss() -> float:
        return float(np.sum(gc.conv_transpose2d(x, weight, bias64, **options) * dy))

    dx, dw, db = gc.conv_transpose2d_backward(dy, x, weight, **options)
    for name, analytic, array in (("dx", dx, x), ("dw", dw, weight), ("db", db, bias64)):
        assert analytic.shape == array.shape, name
        error = relative_error(analytic, numeric_gradient(loss, array, 1e-6))
        assert error < 1e-7, f"{name}: relative error {error:.2e} for {options}"


ADJOINT_CASES = {
    # output_padding recovers a's exact size: the strided convolution drops (11 + 2 - 5) % 2 = 0, (12 + 4 - 3) % 3 = 1.
    "strided-dilated": (dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2), (0, 1)),
    "stride1-3x3": (dict(stride=1, padding=1, dilation=1, groups=2), 0),  # what winograd supports too
}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", sorted(ADJOINT_CASES))
def test_adjoint_identity_on_every_backend(backend, dtype, case):
    """<conv2d(a, w), b> = <a, conv_transpose2d(b, w)>: the transposed convolution is the convolution's adjoint.

    The convolution here is the independent reference (tests/reference.py), so the identity tests the package alone.
    """
    rng = np.random.default_rng(3)
    options, output_padding = ADJOINT_CASES[case]
    a = rng.standard_normal((2, 4, 11, 12))
    weight = rng.standard_normal((6, 2, 3, 3))  # conv: 4 -> 6 channels; its transpose: 6 -> 4
    skip_unless_supported(backend, a.shape, weight.shape, **options)
    conv_a = ref.conv2d(a, weight, None, **options)
    b = rng.standard_normal(conv_a.shape)
    transposed = gc.conv_transpose2d(
        b.astype(dtype), weight.astype(dtype), output_padding=output_padding, backend=backend, **options
    )
    assert transposed.shape == a.shape and transposed.dtype == dtype
    left, right = np.sum(conv_a * b), np.sum(a * transposed)
    assert abs(left - right) <= (1e-10 if dtype == np.float64 else 1e-4) * np.sum(np.abs(conv_a * b))


@pytest.mark.parametrize("seed", range(12))
def test_matches_torch_forward_and_backward(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    x_shape, weight_shape, options = random_geometry(rng)
    dtype = np.float32 if seed % 3 == 0 else np.float64
    x, weight = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(weight_shape).astype(dtype)
    bias = rng.standard_normal(weight_shape[1] * options["groups"]).astype(dtype)
    tx, tw, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, weight, bias))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **options)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(dy.astype(np.float64)))

    y = gc.conv_transpose2d(x, weight, bias, **options)
    assert y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, "y")
    dx, dw, db = gc.conv_transpose2d_backward(dy, x, weight, **options)
    for name, ours, theirs in (("dx", dx, tx), ("dw", dw, tw), ("db", db, tb)):
        assert_close(ours, theirs.grad.numpy(), dtype, name)


def test_inputs_are_not_modified_and_results_do_not_alias():
    rng = np.random.default_rng(0)
    x, weight, bias = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(3)
    copies = [a.copy() for a in (x, weight, bias)]
    y = gc.conv_transpose2d(x, weight, bias, stride=2)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = gc.conv_transpose2d_backward(dy, x, weight, stride=2)
    for original, copy in zip((x, weight, bias), copies):
        np.testing.assert_array_equal(original, copy)
    for result in (y, dx, dw, db):
        assert not any(np.shares_memory(result, a) for a in (x, weight, bias, dy))


X, W = np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: gc.conv_transpose2d(X, W[0]), ValueError, r"weight must be 4-D"),
        (lambda: gc.conv_transpose2d(X[0], W), ValueError, r"x must be 4-D"),
        (lambda: gc.conv_transpose2d(X, W[:2]), ValueError, r"weight.shape\[0\]=2 must equal C_in=4"),
        (lambda: gc.conv_transpose2d(X, W, groups=3), ValueError, r"groups=3 must divide C_in=4"),
        (lambda: gc.conv_transpose2d(X, W, groups=0), ValueError, r"groups=0 must be a positive int"),
        (lambda: gc.conv_transpose2d(X, W, groups=2.0), TypeError, r"groups=2.0"),
        (lambda: gc.conv_transpose2d(X, W, np.zeros(4)), ValueError, r"bias.shape=\(4,\) must be \(C_out,\) = \(3,\)"),
        (lambda: gc.conv_transpose2d(X, W, output_padding=1), ValueError, r"output_padding=1 must be smaller"),
        (lambda: gc.conv_transpose2d(X, W, stride=2, output_padding=2), ValueError, r"output_padding=2"),
        (lambda: gc.conv_transpose2d(X, W, padding="same"), ValueError, r"padding='same'"),
        (lambda: gc.conv_transpose2d(X, W, padding=5), ValueError, r"padding=5 is too large"),
        (lambda: gc.conv_transpose2d(X, W, stride=0), ValueError, r"stride=0 must be >= 1"),
        (lambda: gc.conv_transpose2d(X.tolist(), W), TypeError, r"x must be a numpy.ndarray"),
        (lambda: gc.conv_transpose2d(X.astype(np.float32), W), TypeError, r"weight.dtype=float64 must equal"),
        (lambda: gc.conv_transpose2d_backward(np.zeros((1, 3, 6, 6)), X, W), ValueError, r"dy.shape=\(1, 3, 6, 6\)"),
    ],
)
def test_bad_input_is_rejected(call, error, message):
    with pytest.raises(error, match=message):
        call()
