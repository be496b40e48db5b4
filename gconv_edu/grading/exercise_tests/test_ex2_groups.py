"""ex2: which channels each group owns, and what a grouped convolution costs."""

from __future__ import annotations

import numpy as np
import pytest

from gconv_edu.geometry import ConvGeometry
from gconv_edu.grading.cases import HIDDEN_CASES, hidden_group_cases
from gconv_edu.grading.checks import check_equal, fail
from gconv_edu.grading.errors import GradingFailure, StudentError
from gconv_edu.groups import group_slices

EXERCISE = "ex2"
ARGS = {
    "group_slices": ("c_in", "c_out", "groups"),
    "conv_cost": ("c_in", "c_out", "kernel_size", "out_size", "groups", "bias"),
}

SLICE_CASES = [(4, 6, 2), (6, 6, 3), (4, 8, 4), (3, 5, 1), (8, 4, 2), (12, 6, 3)]
COST_CASES = [
    (4, 6, (3, 3), (5, 5), 2, True),
    (8, 8, (3, 3), (4, 4), 8, False),
    (6, 12, (1, 1), (7, 7), 3, True),
    (3, 6, (2, 3), (4, 5), 1, True),
    (4, 8, (3, 2), (3, 6), 4, False),
]


def _as_ranges(pairs, c_in, c_out, label):
    """[(in_slice, out_slice), ...] -> [((start, stop), (start, stop)), ...]; one-line failure if not slices."""
    if not isinstance(pairs, (list, tuple)):
        fail(
            f"group_slices should return a list of (input_slice, output_slice) pairs, got {type(pairs).__name__}", label
        )
    ranges = []
    for group, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, slice) for s in pair)):
            fail(f"group {group}: expected a pair of slice objects (input_slice, output_slice), got {pair!r}", label)
        normalised = []
        for part, count in zip(pair, (c_in, c_out)):
            start, stop, step = part.indices(count)
            if step != 1:
                fail(f"group {group}: slices must be contiguous (step 1), got {part!r}", label)
            normalised.append((start, stop))
        ranges.append(tuple(normalised))
    return ranges


@pytest.mark.points(4)
@pytest.mark.parametrize("c_in, c_out, groups", SLICE_CASES, ids=[f"{a}-{b}-g{g}" for a, b, g in SLICE_CASES])
def test_group_slices(student, c_in, c_out, groups):
    """group_slices"""
    check_group_slices(student, c_in, c_out, groups)


def check_group_slices(student, c_in, c_out, groups, label=None):
    label = label or f"c_in={c_in}, c_out={c_out}, groups={groups}"
    got = _as_ranges(
        student.call("group_slices", c_in, c_out, groups, argument_names=ARGS["group_slices"]), c_in, c_out, label
    )
    expected = _as_ranges(group_slices(c_in, c_out, groups), c_in, c_out, label)
    if len(got) != len(expected):
        fail(f"expected one (input_slice, output_slice) pair per group ({groups}), got {len(got)}", label)
    for group, (pair, reference) in enumerate(zip(got, expected)):
        for what, part, right in (("input", pair[0], reference[0]), ("output", pair[1], reference[1])):
            check_equal(
                f"group {group}: the {what} channel slice",
                f"[{part[0]}:{part[1]}]",
                f"[{right[0]}:{right[1]}]",
                label,
                hints=[
                    lambda pair=pair, reference=reference: (
                        "the pair is (output, input); return (input_slice, output_slice)"
                        if (pair[1], pair[0]) == reference
                        else None
                    ),
                    lambda what=what: (
                        f"group g owns {what} channels [g*C/G, (g+1)*C/G) with "
                        f"C = {'C_in' if what == 'input' else 'C_out'}"
                    ),
                ],
            )


def _cost_reference(c_in, c_out, kernel, out_size, groups, bias):
    """(parameters, multiply-adds) from ConvGeometry, for one sample (an input of the size that gives out_size)."""
    geom = ConvGeometry.from_layer(
        c_in,
        c_out,
        kernel,
        groups=groups,
        bias=bias,
        height=out_size[0] + kernel[0] - 1,
        width=out_size[1] + kernel[1] - 1,
    )
    assert geom.out_h == out_size[0] and geom.out_w == out_size[1]
    return geom.params, geom.macs


@pytest.mark.points(4)
@pytest.mark.parametrize(
    "c_in, c_out, kernel, out_size, groups, bias",
    COST_CASES,
    ids=[
        f"{a}-{b}-k{k[0]}x{k[1]}-out{o[0]}x{o[1]}-g{g}{'-bias' if bias else ''}" for a, b, k, o, g, bias in COST_CASES
    ],
)
def test_conv_cost(student, c_in, c_out, kernel, out_size, groups, bias):
    """conv_cost"""
    check_conv_cost(student, c_in, c_out, kernel, out_size, groups, bias)


def check_conv_cost(student, c_in, c_out, kernel, out_size, groups, bias, label=None):
    label = label or (
        f"c_in={c_in}, c_out={c_out}, kernel_size={kernel}, out_size={out_size}, groups={groups}, bias={bias}"
    )
    got = student.call("conv_cost", c_in, c_out, kernel, out_size, groups, bias, argument_names=ARGS["conv_cost"])
    if not (isinstance(got, (tuple, list, np.ndarray)) and len(got) == 2):
        fail(f"conv_cost should return a pair (parameters, multiply_adds), got {got!r}", label)
    params, macs = _cost_reference(c_in, c_out, kernel, out_size, groups, bias)
    weights = params - (c_out if bias else 0)
    check_equal(
        "parameters",
        got[0],
        params,
        label,
        hints=[
            lambda: (
                "that counts a dense layer: each filter sees only C_in/G input channels"
                if got[0] in (weights * groups, weights * groups + c_out) and groups > 1
                else None
            ),
            lambda: (
                "the bias adds C_out parameters when bias=True, none when bias=False"
                if got[0] in (weights, weights + c_out)
                else None
            ),
        ],
    )
    check_equal(
        "multiply_adds",
        got[1],
        macs,
        label,
        hints=[
            lambda: (
                "that counts a dense layer: each output sums over C_in/G channels, not C_in"
                if got[1] == macs * groups and groups > 1
                else None
            ),
            lambda: "that counts FLOPs (2 per multiply-add); count multiply-adds" if got[1] == 2 * macs else None,
            lambda: "multiply-adds = C_out * H_out * W_out * (C_in/G) * kH * kW",
        ],
    )


@pytest.mark.points(2)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """group_slices and conv_cost, hidden case"""
    c_in, c_out, groups = hidden_group_cases(hidden_seed)[number - 1]
    kernel, out_size = (1 + number % 3, 1 + (number * 2) % 3), (2 + number, 7 - number)
    try:
        check_group_slices(student, c_in, c_out, groups, label="hidden")
        check_conv_cost(student, c_in, c_out, kernel, out_size, groups, number % 2 == 0, label="hidden")
    except GradingFailure as error:
        message = str(error).removesuffix(" [hidden]").split("; hint:")[0]
        raise StudentError(f"hidden case {number} (groups={groups}): wrong: {message}") from None
