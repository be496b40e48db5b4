"""The "auto" rule: its choices on the named benchmark configs (the rule itself, never a timing)."""

from __future__ import annotations

import numpy as np
import pytest

import gconv_edu as gc
from gconv_edu.backends import (
    NUMBA_MAX_WINDOW,
    NUMBA_MIN_ROW,
    NUMBA_SMALL_WINDOW,
    WINOGRAD_MIN_GROUP,
    WINOGRAD_MIN_PLANE,
    BackendUnavailableError,
    choose_auto,
    cpu_auto_choice,
)
from gconv_edu.configs import NAMED_CONFIGS
from gconv_edu.geometry import ConvGeometry

# The choice the measurements behind AUTO_RULE give (C_in/G * kH * kW in brackets).
EXPECTED = {
    "mobilenet-dw": "numba",  # 9
    "resnext-g32": "numba",  # 36
    "shufflenet-pw-g8": "numba",  # 48
    "dense-3x3": "numba",  # 576
    "alexnet-conv2": "im2col",  # 1200
}
BOTH = ["naive", "im2col", "numba"]
ALL_CPU = BOTH + ["winograd"]
WITH_WINOGRAD = {**EXPECTED, "dense-3x3": "winograd"}  # 64 channels on 56x56 planes: winograd 0.59-0.66x numba's time


@pytest.mark.parametrize("name", list(EXPECTED))
def test_choice_on_named_configs(name):
    assert cpu_auto_choice(NAMED_CONFIGS[name].geometry(), BOTH) == EXPECTED[name]


@pytest.mark.parametrize("name", list(WITH_WINOGRAD))
def test_choice_on_named_configs_with_winograd(name):
    assert cpu_auto_choice(NAMED_CONFIGS[name].geometry(), ALL_CPU) == WITH_WINOGRAD[name]


def _dense(channels, kernel, width, stride=1, groups=1, out_channels=None, height=8):
    out_channels = channels if out_channels is None else out_channels
    return ConvGeometry.from_shapes(
        (1, channels, height, width), (out_channels, channels // groups, kernel, kernel), stride=stride, groups=groups
    )


def test_winograd_thresholds_are_inclusive():
    side = int(WINOGRAD_MIN_PLANE**0.5)  # padding 0: the output plane is (side + 2 - 2)^2
    wide = WINOGRAD_MIN_GROUP
    assert cpu_auto_choice(_dense(wide, 3, side + 2, height=side + 2), ALL_CPU) == "winograd"
    assert cpu_auto_choice(_dense(wide, 3, side + 1, height=side + 2), ALL_CPU) != "winograd"  # one column short
    assert cpu_auto_choice(_dense(wide - 4, 3, side + 2, height=side + 2), ALL_CPU) != "winograd"  # narrow groups
    assert cpu_auto_choice(_dense(2 * wide, 3, side + 2, height=side + 2, groups=2), ALL_CPU) == "winograd"
    narrow_out = _dense(wide, 3, side + 2, height=side + 2, out_channels=wide - 4)
    assert cpu_auto_choice(narrow_out, ALL_CPU) != "winograd"
    assert cpu_auto_choice(_dense(wide, 3, side + 2, height=side + 2, stride=2), ALL_CPU) != "winograd"  # unsupported
    assert cpu_auto_choice(_dense(wide, 5, side + 4, height=side + 4), ALL_CPU) != "winograd"  # 5x5: unsupported


def test_winograd_switch_off_gives_the_rest_of_the_rule(monkeypatch):
    from gconv_edu import backends

    dense = NAMED_CONFIGS["dense-3x3"].geometry()
    monkeypatch.setattr(backends, "WINOGRAD_AUTO", False)
    assert cpu_auto_choice(dense, ALL_CPU) == cpu_auto_choice(dense, BOTH) == "numba"


def test_window_threshold_is_inclusive():
    assert cpu_auto_choice(_dense(NUMBA_MAX_WINDOW // 4, 2, 40), BOTH) == "numba"  # window 4 * 144 = 576
    assert cpu_auto_choice(_dense(NUMBA_MAX_WINDOW // 4 + 4, 2, 40), BOTH) == "im2col"  # 592


def test_short_rows_unblocked_layers_and_thin_groups():
    assert cpu_auto_choice(_dense(20, 3, NUMBA_MIN_ROW + 2), BOTH) == "numba"  # W_out = 32
    assert cpu_auto_choice(_dense(20, 3, NUMBA_MIN_ROW + 1), BOTH) == "im2col"  # W_out = 31, window 180
    assert NUMBA_SMALL_WINDOW == 16 * 9
    assert cpu_auto_choice(_dense(16, 3, 9), BOTH) == "numba"  # W_out = 7, but a small window (144)
    assert cpu_auto_choice(_dense(256, 3, 16, groups=32), BOTH) == "numba"  # 3x3-c256-14-g32: window 72, W_out 14
    assert cpu_auto_choice(_dense(16, 3, 60, stride=2), BOTH) == "im2col"  # strided rows: no register blocks
    assert cpu_auto_choice(_dense(3, 3, 60, out_channels=64), BOTH) == "im2col"  # C_in/G = 3: no register blocks
    assert cpu_auto_choice(_dense(12, 3, 8, groups=12, out_channels=36), BOTH) == "numba"  # depthwise x3, short rows
    assert cpu_auto_choice(_dense(12, 3, 60, stride=2, groups=12), BOTH) == "numba"  # depthwise, strided


def test_without_numba_auto_falls_back_to_im2col():
    geom = NAMED_CONFIGS["mobilenet-dw"].geometry()
    assert cpu_auto_choice(geom, ["naive", "im2col"]) == "im2col"


def test_choose_auto_on_cpu_uses_the_rule():
    geom = NAMED_CONFIGS["resnext-g32"].geometry()
    assert choose_auto(geom, on_gpu=False) == cpu_auto_choice(geom, gc.available_backends())


def test_auto_on_gpu_arrays_needs_a_gpu_backend():
    geom = NAMED_CONFIGS["resnext-g32"].geometry()
    if any(name in gc.available_backends() for name in ("cupy", "cupy-raw")):
        assert choose_auto(geom, on_gpu=True) in ("cupy", "cupy-raw")
    else:
        with pytest.raises(BackendUnavailableError, match="no GPU backend"):
            choose_auto(geom, on_gpu=True)


def test_auto_computes_what_its_choice_computes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6))
    weight = rng.standard_normal((4, 1, 3, 3))
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, padding=1, groups=4)
    chosen = choose_auto(geom, on_gpu=False)
    np.testing.assert_array_equal(
        gc.conv2d(x, weight, padding=1, groups=4, backend="auto"),
        gc.conv2d(x, weight, padding=1, groups=4, backend=chosen),
    )


def test_gpu_rule_sends_thin_groups_to_the_raw_kernels():
    from gconv_edu.backends import gpu_auto_choice

    depthwise = ConvGeometry.from_shapes((8, 64, 112, 112), (64, 1, 3, 3), padding=1, groups=64)
    dense = ConvGeometry.from_shapes((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    both = ["cupy", "cupy-raw"]
    assert gpu_auto_choice(depthwise, both) == "cupy-raw"
    assert gpu_auto_choice(dense, both) == "cupy"
    resnext_g32 = ConvGeometry.from_shapes((8, 128, 56, 56), (128, 4, 3, 3), padding=1, groups=32)  # 4 x 4 = 16
    assert gpu_auto_choice(resnext_g32, both) == "cupy-raw"
    odd_group_count = ConvGeometry.from_shapes((8, 68, 28, 28), (68, 4, 3, 3), padding=1, groups=17)  # 4 x 4, 17 groups
    assert gpu_auto_choice(odd_group_count, both) == "cupy-raw"
    wider = ConvGeometry.from_shapes((8, 64, 28, 28), (80, 4, 3, 3), padding=1, groups=16)  # 4 x 5 = 20 > 16
    assert gpu_auto_choice(wider, both) == "cupy"
    assert gpu_auto_choice(depthwise, ["cupy"]) == "cupy"  # whichever is there
    with pytest.raises(ValueError, match="no GPU backend"):
        gpu_auto_choice(dense, ["im2col"])
