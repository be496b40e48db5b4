"""Bad input: a clear ValueError/TypeError naming the parameter, raised before any work is done."""

from __future__ import annotations

import numpy as np
import pytest

import gconv_edu as gc
from gconv_edu.backends import REGISTRY, Backend, BackendUnavailableError

X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 2, 3, 3))  # groups=2


def _x(shape=(2, 4, 8, 8), dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


BAD_FORWARD = [
    # (description, kwargs for conv2d, exception, text that must appear in the message)
    (
        "groups does not divide C_in",
        dict(x=_x((2, 5, 8, 8)), weight=np.zeros((6, 2, 3, 3)), groups=2),
        ValueError,
        "C_in=5",
    ),
    ("groups does not divide C_out", dict(weight=np.zeros((5, 2, 3, 3)), groups=2), ValueError, "C_out=5"),
    ("weight.shape[1] wrong", dict(weight=np.zeros((6, 4, 3, 3)), groups=2), ValueError, "weight.shape[1]=4"),
    ("x not 4-D", dict(x=np.zeros((4, 8, 8))), ValueError, "x must be 4-D"),
    ("weight not 4-D", dict(weight=np.zeros((6, 2, 3))), ValueError, "weight must be 4-D"),
    ("bias wrong shape", dict(bias=np.zeros(5)), ValueError, "bias.shape=(5,)"),
    ("bias 2-D", dict(bias=np.zeros((6, 1))), ValueError, "bias.shape"),
    ("groups zero", dict(groups=0), ValueError, "groups=0"),
    ("groups negative", dict(groups=-2), ValueError, "groups=-2"),
    ("groups float", dict(groups=2.0), TypeError, "groups=2.0"),
    ("groups bool", dict(groups=True), TypeError, "groups=True"),
    ("stride zero", dict(stride=0), ValueError, "stride=0"),
    ("stride negative", dict(stride=-1), ValueError, "stride=-1"),
    ("stride float", dict(stride=1.5), TypeError, "stride=1.5"),
    ("stride pair of wrong length", dict(stride=(1, 1, 1)), ValueError, "stride=(1, 1, 1)"),
    ("stride pair with float", dict(stride=(1, 2.0)), TypeError, "stride=(1, 2.0)"),
    ("dilation zero", dict(dilation=0), ValueError, "dilation=0"),
    ("dilation float", dict(dilation=1.0), TypeError, "dilation=1.0"),
    ("dilation pair wrong length", dict(dilation=(1,)), ValueError, "dilation=(1,)"),
    ("padding negative", dict(padding=-1), ValueError, "padding=-1"),
    ("padding pair wrong length", dict(padding=(1, 1, 1, 1)), ValueError, "padding=(1, 1, 1, 1)"),
    ("padding unknown string", dict(padding="full"), ValueError, "padding='full'"),
    ("padding float", dict(padding=0.5), TypeError, "padding=0.5"),
    ("same with stride 2", dict(padding="same", stride=2), ValueError, "padding='same'"),
    ("kernel larger than input", dict(weight=np.zeros((6, 2, 9, 3))), ValueError, "larger than the padded input"),
    ("dilated kernel larger than input", dict(dilation=4), ValueError, "larger than the padded input"),
    (
        "x integer",
        dict(x=_x(dtype=np.int64), weight=np.zeros((6, 2, 3, 3), dtype=np.int64)),
        TypeError,
        "x.dtype=int64",
    ),
    ("x bool", dict(x=_x(dtype=bool)), TypeError, "x.dtype=bool"),
    ("x complex", dict(x=_x(dtype=np.complex128)), TypeError, "x.dtype=complex128"),
    ("x object", dict(x=_x(dtype=object)), TypeError, "x.dtype=object"),
    ("x float16", dict(x=_x(dtype=np.float16)), TypeError, "x.dtype=float16"),
    ("weight integer", dict(weight=np.zeros((6, 2, 3, 3), dtype=np.int32)), TypeError, "weight.dtype=int32"),
    ("dtypes differ", dict(x=_x(dtype=np.float32)), TypeError, "weight.dtype=float64 must equal x.dtype=float32"),
    ("bias dtype differs", dict(bias=np.zeros(6, dtype=np.float32)), TypeError, "bias.dtype=float32"),
    ("x a list", dict(x=[[1.0]]), TypeError, "x must be a numpy.ndarray"),
    ("weight a list", dict(weight=[[1.0]]), TypeError, "weight must be a numpy.ndarray"),
    ("unknown backend", dict(backend="fast"), ValueError, "available here"),
    ("backend not a str", dict(backend=3), TypeError, "backend=3"),
]


@pytest.mark.parametrize("kwargs, exception, text", [pytest.param(k, e, t, id=d) for d, k, e, t in BAD_FORWARD])
def test_bad_forward_input(kwargs, exception, text):
    arguments = dict(x=X, weight=W, bias=None, groups=2)
    arguments.update(kwargs)
    with pytest.raises(exception) as info:
        gc.conv2d(**arguments)
    assert text in str(info.value), str(info.value)


def test_bad_input_is_rejected_before_any_work(monkeypatch):
    """The backend must never be reached with invalid input."""

    def explode(*args, **kwargs):
        raise AssertionError("backend called with invalid input")

    monkeypatch.setattr("gconv_edu.backends.im2col.forward", explode)
    with pytest.raises(ValueError, match="groups=3"):
        gc.conv2d(X, np.zeros((6, 2, 3, 3)), groups=3, backend="im2col")


def test_backward_dy_wrong_shape():
    with pytest.raises(ValueError, match=r"dy.shape=\(2, 6, 5, 5\) must be the output shape \(2, 6, 6, 6\)"):
        gc.conv2d_backward(np.zeros((2, 6, 5, 5)), X, W, groups=2)


def test_backward_dy_wrong_dtype():
    with pytest.raises(TypeError, match=r"dy\.dtype=float32"):
        gc.conv2d_backward(np.zeros((2, 6, 6, 6), dtype=np.float32), X, W, groups=2)


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError) as info:
        gc.conv2d(X, W, groups=2, backend="nope")
    for name in gc.available_backends():
        assert name in str(info.value)


def test_unavailable_backend_says_why(monkeypatch):
    broken = Backend("broken", ".does_not_exist", "cpu")
    monkeypatch.setitem(REGISTRY, "broken", broken)
    assert "broken" not in gc.available_backends()
    with pytest.raises(BackendUnavailableError, match=r"broken: import failed") as info:
        gc.conv2d(X, W, groups=2, backend="broken")
    assert "im2col" in str(info.value)


def test_gpu_backend_without_device_says_why():
    for name in ("cupy", "cupy-raw"):
        if name in REGISTRY and REGISTRY[name].availability() is not None:
            with pytest.raises(ValueError, match=f"{name}: "):
                gc.conv2d(X, W, groups=2, backend=name)
