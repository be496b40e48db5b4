"""Positional arguments mean what they mean in PyTorch: every public signature checked against torch's.

Two checks for each public function or layer that has a torch counterpart: (1) its parameter list, read with
``inspect`` (or from the docstring of torch's C functions), keeps torch's order wherever both have the parameter;
(2) numerically, ours and torch's called with the SAME positional arguments on random geometries agree. The backward
functions have no torch counterpart with their signature (torch's autograd computes gradients); they take
``(dy, x, weight)`` then the forward's hyper-parameters in the forward's torch order, and are checked against
torch's autograd with those same positional arguments.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import gconv_edu as gc
from gconv_edu import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

# Our names for torch's (the project's glossary: x, not input; channels for BatchNorm's num_features).
RENAMED = {"input": "x", "num_features": "channels"}


def torch_parameters(function) -> list[str]:
    """Parameter names of a torch function or class, in order (torch's C functions: from the docstring's first line)."""
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        first_line = function.__doc__.strip().splitlines()[0]  # e.g. "conv2d(input, weight, bias=None, ...) -> Tensor"
        names = [p.split("=")[0].strip() for p in re.search(r"\((.*)\)", first_line).group(1).split(",")]
    return [RENAMED.get(n, n) for n in names if n not in ("self", "*")]


def ours_parameters(function) -> list[str]:
    return [n for n in inspect.signature(function).parameters if n != "self"]


def assert_same_positions(ours: list[str], theirs: list[str]) -> None:
    """Torch's parameters up to the first one we lack sit at the same positions in ours: a positional call that is
    valid in torch means the same thing here (where we lack one, such a call reaches one of our extras and fails)."""
    shared = []
    for name in theirs:
        if name not in ours:
            break
        shared.append(name)
    assert shared, (ours, theirs)
    assert ours[: len(shared)] == shared, f"ours {ours} vs torch {theirs}"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (gc.conv2d, F.conv2d),
        (gc.conv_transpose2d, F.conv_transpose2d),
        (nn.Conv2d.__init__, torch.nn.Conv2d.__init__),
        (nn.Linear.__init__, torch.nn.Linear.__init__),
        (nn.BatchNorm2d.__init__, torch.nn.BatchNorm2d.__init__),
        (nn.MaxPool2d.__init__, torch.nn.MaxPool2d.__init__),
        (nn.AvgPool2d.__init__, torch.nn.AvgPool2d.__init__),
        (nn.ChannelShuffle.__init__, torch.nn.ChannelShuffle.__init__),
    ],
    ids=["conv2d", "conv_transpose2d", "Conv2d", "Linear", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "ChannelShuffle"],
)
def test_parameters_keep_torch_order(ours, theirs):
    assert_same_positions(ours_parameters(ours), torch_parameters(theirs))
    # Our own extras (backend, rng, dtype) come after everything torch users pass by position.
    assert "backend" not in ours_parameters(ours)[:4]


def test_backward_functions_take_the_forward_hyper_parameters_in_torch_order():
    forward = [n for n in torch_parameters(F.conv2d) if n not in ("x", "weight", "bias")]
    assert ours_parameters(gc.conv2d_backward) == ["dy", "x", "weight", *forward, "backend"]
    transposed = [n for n in torch_parameters(F.conv_transpose2d) if n not in ("x", "weight", "bias")]
    assert ours_parameters(gc.conv_transpose2d_backward) == ["dy", "x", "weight", *transposed, "backend"]


def _pair_or_int(rng, low, high):
    return int(rng.integers(low, high)) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(low, high, 2))


def _axis(value, axis):
    return value if isinstance(value, int) else value[axis]


def random_transposed_case(seed):
    """Positional args (stride, padding, output_padding, groups, dilation) and x, weight, bias for torch's rules."""
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride, dilation = _pair_or_int(rng, 1, 4), _pair_or_int(rng, 1, 3)
    padding = _pair_or_int(rng, 0, 3)
    # torch: output_padding < stride or < dilation on each axis; and the output must have at least one pixel.
    limits = [max(_axis(stride, a), _axis(dilation, a)) for a in (0, 1)]
    output_padding = tuple(int(rng.integers(0, limit)) for limit in limits)
    size = (int(rng.integers(3, 8)), int(rng.integers(3, 8)))
    for a in (0, 1):
        grown = (size[a] - 1) * _axis(stride, a) + _axis(dilation, a) * (kernel[a] - 1) + output_padding[a] + 1
        if grown - 2 * _axis(padding, a) < 1:
            padding = 0
    x = rng.standard_normal((int(rng.integers(1, 3)), c_in, *size))
    weight = rng.standard_normal((c_in, c_out // groups, *kernel))
    bias = rng.standard_normal(c_out) if rng.random() < 0.7 else None
    return x, weight, bias, (stride, padding, output_padding, groups, dilation), rng


def random_conv_case(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride, dilation, padding = _pair_or_int(rng, 1, 4), _pair_or_int(rng, 1, 3), _pair_or_int(rng, 0, 3)
    span = [_axis(dilation, a) * (kernel[a] - 1) + 1 for a in (0, 1)]
    size = tuple(span[a] + int(rng.integers(0, 6)) for a in (0, 1))
    x = rng.standard_normal((int(rng.integers(1, 3)), c_in, *size))
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    bias = rng.standard_normal(c_out) if rng.random() < 0.7 else None
    return x, weight, bias, (stride, padding, dilation, groups), rng


def _tensors(*arrays):
    return [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10, err_msg=what)


@pytest.mark.parametrize("seed", range(40))
def test_conv_transpose2d_same_positional_arguments_as_torch(seed):
    x, weight, bias, positional, rng = random_transposed_case(seed)
    tx, tw, tb = _tensors(x, weight, bias)
    ty = F.conv_transpose2d(tx, tw, tb, *positional)
    y = gc.conv_transpose2d(x, weight, bias, *positional)
    _close(y, ty, f"y, positional {positional}")
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx, dw, db = gc.conv_transpose2d_backward(dy, x, weight, *positional)
    _close(dx, tx.grad, "dx")
    _close(dw, tw.grad, "dw")
    if tb is not None:
        _close(db, tb.grad, "db")


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_same_positional_arguments_as_torch(seed):
    x, weight, bias, positional, rng = random_conv_case(seed)
    tx, tw, tb = _tensors(x, weight, bias)
    ty = F.conv2d(tx, tw, tb, *positional)
    y = gc.conv2d(x, weight, bias, *positional)
    _close(y, ty, f"y, positional {positional}")
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx, dw, db = gc.conv2d_backward(dy, x, weight, *positional)
    _close(dx, tx.grad, "dx")
    _close(dw, tw.grad, "dw")
    if tb is not None:
        _close(db, tb.grad, "db")


def test_a_torch_style_dilated_grouped_transpose_call_is_not_silently_different():
    """The issue's call: groups=2, dilation=1 by position (our old order read them as dilation=2, groups=1)."""
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    expected = F.conv_transpose2d(torch.tensor(x), torch.tensor(weight), None, 1, 0, 0, 2, 1).numpy()
    np.testing.assert_allclose(gc.conv_transpose2d(x, weight, None, 1, 0, 0, 2, 1), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_layers_built_with_torch_positional_arguments_compute_the_same(seed):
    rng = np.random.default_rng(seed)
    x, weight, bias, (stride, padding, dilation, groups), _ = random_conv_case(seed)
    c_out, c_in = weight.shape[0], x.shape[1]
    kernel = weight.shape[2:]
    positional = (c_in, c_out, kernel, stride, padding, dilation, groups, bias is not None)
    ours = nn.Conv2d(*positional, dtype=np.float64)
    theirs = torch.nn.Conv2d(*positional).double()
    ours.weight.value[...] = weight  # the same numbers in both
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
        if bias is not None:
            ours.bias.value[...] = bias
            theirs.bias.copy_(torch.tensor(bias))
    _close(ours.forward(x), theirs(torch.tensor(x)), f"Conv2d{positional}")
    eps, momentum = 1e-3, float(rng.uniform(0.05, 0.5))
    norm, torch_norm = nn.BatchNorm2d(c_in, eps, momentum, dtype=np.float64), torch.nn.BatchNorm2d(c_in, eps, momentum)
    _close(norm.forward(x), torch_norm.double()(torch.tensor(x)), "BatchNorm2d(channels, eps, momentum)")
    _close(norm.running_var, torch_norm.running_var, "BatchNorm2d running_var (momentum)")
