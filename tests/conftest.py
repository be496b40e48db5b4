"""Shared test helpers: tolerances, random data, and the list of backends the shared grid runs over."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gconv_edu.backends import REGISTRY

# The bar: relative to the largest reference value, 1e-10 in float64 and 1e-5 in float32.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def assert_close(actual, expected, dtype, name="value"):
    """max|actual - expected| <= rtol * max|expected| (a scale-aware bound, so tiny entries do not dominate)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    error = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
    assert error <= RTOL[np.dtype(dtype)], f"{name}: relative error {error:.3e} > {RTOL[np.dtype(dtype)]:.0e}"


def random_array(rng, shape, dtype, noncontiguous=False):
    """Standard normal data of ``dtype``; optionally a non-contiguous view (every other column of a wider array)."""
    if not noncontiguous:
        return rng.standard_normal(shape).astype(dtype)
    wide = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(dtype)
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def backend_params():
    """Every registered backend; GPU ones carry the gpu marker and skip with the reason where no device is usable."""
    params = []
    for name, backend in REGISTRY.items():
        marks = []
        if backend.device == "gpu":
            reason = backend.availability()
            marks = [pytest.mark.gpu, pytest.mark.skipif(reason is not None, reason=f"{name}: {reason}")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


# CI replays the same examples every run (a red build must be reproducible); locally hypothesis explores anew.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def skip_unless_supported(backend, x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Skip a case outside what ``backend`` supports, with its own reason ("winograd: supports only 3x3 ...")."""
    from gconv_edu.geometry import ConvGeometry

    geom = ConvGeometry.from_shapes(tuple(x_shape), tuple(weight_shape), None, stride, padding, dilation, groups)
    reason = REGISTRY[backend].supports(geom)
    if reason is not None:
        pytest.skip(f"{backend}: {reason}")
