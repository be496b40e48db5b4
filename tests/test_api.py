"""Backend selection (argument, context, environment, auto) and the geometry's derived sizes."""

from __future__ import annotations

import numpy as np
import pytest

import gconv_edu as gc
from gconv_edu.api import current_backend_name, resolve_backend
from gconv_edu.geometry import ConvGeometry


def test_available_backends_lists_cpu_backends():
    names = gc.available_backends()
    assert {"naive", "im2col"} <= set(names)
    assert "auto" not in names


def test_selection_order_argument_context_env(monkeypatch):
    monkeypatch.delenv("GCONV_BACKEND", raising=False)
    assert current_backend_name() == "auto"
    monkeypatch.setenv("GCONV_BACKEND", "naive")
    assert current_backend_name() == "naive"
    with gc.use_backend("im2col"):
        assert current_backend_name() == "im2col"  # context beats environment
        assert current_backend_name("naive") == "naive"  # argument beats context
        with gc.use_backend("naive"):
            assert current_backend_name() == "naive"
        assert current_backend_name() == "im2col"
    assert current_backend_name() == "naive"


def test_bad_environment_backend_is_named(monkeypatch):
    monkeypatch.setenv("GCONV_BACKEND", "turbo")
    with pytest.raises(ValueError, match="GCONV_BACKEND='turbo'"):
        gc.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1, 1)))


def test_use_backend_checks_name_on_entry():
    with pytest.raises(ValueError, match="use_backend"), gc.use_backend("turbo"):
        pass


def test_context_backend_is_used(monkeypatch):
    calls = []
    from gconv_edu.backends import naive

    original = naive.forward
    monkeypatch.setattr(naive, "forward", lambda *a: calls.append(1) or original(*a))
    with gc.use_backend("naive"):
        gc.conv2d(np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)), groups=2)
    assert calls == [1]


def test_auto_resolves_to_an_available_cpu_backend():
    geom = ConvGeometry.from_shapes((1, 4, 8, 8), (4, 1, 3, 3), groups=4)
    backend = resolve_backend("auto", geom)
    assert backend.name in gc.available_backends() and backend.device == "cpu"


@pytest.mark.parametrize(
    "size, kernel, stride, pads, dilation, expected",
    [
        (8, 3, 1, (1, 1), 1, 8),
        (8, 3, 2, (1, 1), 1, 4),
        (9, 3, 2, (0, 0), 1, 4),
        (10, 3, 3, (1, 1), 1, 4),
        (9, 3, 1, (2, 2), 2, 9),
        (5, 5, 1, (0, 0), 1, 1),
        (7, 2, 1, (0, 1), 1, 7),
    ],
)
def test_output_size_formula(size, kernel, stride, pads, dilation, expected):
    from gconv_edu.geometry import conv_output_size

    assert conv_output_size(size, kernel, stride, *pads, dilation) == expected


def test_same_padding_puts_odd_extra_bottom_right():
    geom = ConvGeometry.from_shapes((1, 2, 6, 7), (2, 2, 2, 4), padding="same", dilation=(1, 1))
    assert geom.padding == (0, 1, 1, 2)
    assert (geom.out_h, geom.out_w) == (6, 7)
    geom = ConvGeometry.from_shapes((1, 2, 6, 7), (2, 2, 3, 2), padding="same", dilation=(2, 3))
    assert geom.padding == (2, 2, 1, 2) and geom.y_shape == (1, 2, 6, 7)


def test_costs_are_groups_times_smaller():
    dense = ConvGeometry.from_shapes((8, 128, 56, 56), (128, 128, 3, 3), padding=1)
    grouped = ConvGeometry.from_shapes((8, 128, 56, 56), (128, 4, 3, 3), padding=1, groups=32)
    assert dense.params == 128 * 128 * 9 and grouped.params * 32 == dense.params
    assert dense.flops == 2 * 8 * 128 * 56 * 56 * 128 * 9 and grouped.flops * 32 == dense.flops
    assert grouped.is_depthwise is False
    assert ConvGeometry.from_shapes((1, 4, 5, 5), (8, 1, 3, 3), groups=4).is_depthwise


def test_geometry_is_immutable():
    geom = ConvGeometry.from_shapes((1, 2, 5, 5), (2, 2, 3, 3))
    with pytest.raises(AttributeError):
        geom.groups = 2


def test_use_backend_does_not_follow_a_new_thread(monkeypatch):
    """use_backend is a contextvar: a thread started inside the block starts with the default, unless it runs in a
    copy of the context (documented in use_backend's docstring and the README)."""
    import contextvars
    import threading

    monkeypatch.delenv("GCONV_BACKEND", raising=False)
    seen = {}

    def record(key):
        seen[key] = current_backend_name()

    with gc.use_backend("naive"):
        plain = threading.Thread(target=record, args=("plain",))
        copied = threading.Thread(target=contextvars.copy_context().run, args=(record, "copied"))
        for thread in (plain, copied):
            thread.start()
            thread.join()
        record("same thread")
    assert seen == {"plain": "auto", "copied": "naive", "same thread": "naive"}
