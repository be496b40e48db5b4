"""ex5: ShuffleNet's channel shuffle and its gradient."""

from __future__ import annotations

import numpy as np
import pytest

from gconv_edu.grading.cases import HIDDEN_CASES, hidden_shuffle_cases
from gconv_edu.grading.checks import check_array, close
from gconv_edu.grading.errors import GradingFailure, StudentError
from gconv_edu.groups import channel_shuffle, channel_shuffle_backward

EXERCISE = "ex5"
CASES = [
    ("groups2", (2, 6, 3, 3), 2, "float64", 601),
    ("groups3", (2, 6, 2, 3), 3, "float64", 602),
    ("groups4-float32", (1, 8, 2, 3), 4, "float32", 603),
    ("groups1", (1, 4, 2, 2), 1, "float64", 604),
    ("one-pixel-groups3", (2, 12, 1, 1), 3, "float32", 605),
]
PARAMS = pytest.mark.parametrize("name, shape, groups, dtype, seed", CASES, ids=[c[0] for c in CASES])


def _data(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.points(4)
@PARAMS
def test_channel_shuffle(student, name, shape, groups, dtype, seed):
    """channel_shuffle"""
    x = _data(shape, dtype, seed)
    expected = channel_shuffle(x.astype(np.float64), groups)
    got = student.call("channel_shuffle", x, groups, argument_names=("x", "groups"))
    inverse = channel_shuffle(x.astype(np.float64), shape[1] // groups)
    check_array(
        "y",
        got,
        expected,
        dtype,
        f"case {name}, seed {seed}",
        hints=[
            lambda: (
                "channels are unchanged: reshape to (N, G, C/G, H, W), swap axes 1 and 2, reshape back"
                if close(got, x.astype(np.float64), dtype)
                else None
            ),
            lambda: (
                "wrong order (that is the inverse shuffle): reshape to (N, G, C/G, H, W), not (N, C/G, G, H, W), "
                "then swap axes 1 and 2"
                if close(got, inverse, dtype)
                else None
            ),
        ],
    )


@pytest.mark.points(4)
@PARAMS
def test_channel_shuffle_backward(student, name, shape, groups, dtype, seed):
    """channel_shuffle_backward"""
    dy = _data(shape, dtype, seed + 50)
    expected = channel_shuffle_backward(dy.astype(np.float64), groups)
    got = student.call("channel_shuffle_backward", dy, groups, argument_names=("dy", "groups"))
    check_array(
        "dx",
        got,
        expected,
        dtype,
        f"case {name}, seed {seed + 50}",
        hints=[
            lambda: (
                "that applies the shuffle again: the gradient of a permutation is its INVERSE permutation "
                "(shuffling with C/G groups)"
                if close(got, channel_shuffle(dy.astype(np.float64), groups), dtype)
                else None
            ),
            lambda: (
                "dx is dy unchanged: route each gradient back to the channel it came from"
                if close(got, dy.astype(np.float64), dtype)
                else None
            ),
        ],
    )


@pytest.mark.points(2)
@pytest.mark.parametrize("number", range(1, HIDDEN_CASES + 1))
def test_hidden(student, hidden_seed, number):
    """channel_shuffle and its gradient, hidden case"""
    shape, groups, dtype, seed = hidden_shuffle_cases(hidden_seed)[number - 1]
    x = _data(shape, dtype, seed)
    try:
        got = student.call("channel_shuffle", x, groups, argument_names=("x", "groups"))
        check_array("y", got, channel_shuffle(x.astype(np.float64), groups), dtype, "hidden")
        got = student.call("channel_shuffle_backward", x, groups, argument_names=("dy", "groups"))
        check_array("dx", got, channel_shuffle_backward(x.astype(np.float64), groups), dtype, "hidden")
    except GradingFailure as error:
        message = str(error).removesuffix(" [hidden]")
        raise StudentError(f"hidden case {number} (groups={groups}, {dtype}): wrong: {message}") from None
