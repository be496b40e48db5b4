"""The numba backend: against the independent reference, thread-count independence, and its compile cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, random_array

import gconv_edu as gc
from gconv_edu.backends import numba_cpu
from gconv_edu.geometry import ConvGeometry

numba = pytest.importorskip("numba")

# (N, C_in, C_out, H, W, kH, kW, stride, padding, dilation, groups, noncontiguous)
CASES = {
    # C_out/G = 4: the forward's four-filter register block
    "block4-g2": (2, 4, 8, 7, 6, 3, 3, 1, 1, 1, 2, False),
    "depthwise-mult3": (2, 3, 9, 8, 7, 3, 3, 1, 1, 1, 3, True),
    "depthwise-mult4-s2": (2, 2, 8, 9, 9, 3, 3, 2, 1, 1, 2, False),
    "pointwise-g4": (2, 8, 8, 5, 6, 1, 1, 1, 0, 1, 4, False),
    "pointwise-s3-pad": (1, 4, 6, 8, 7, 1, 1, 3, 1, 1, 2, True),
    "s2x1-pad2x0-d2x1": (2, 4, 4, 10, 9, 3, 2, (2, 1), (2, 0), (2, 1), 2, False),
    "same-even-dil2": (2, 2, 4, 7, 8, 2, 4, 1, "same", 2, 1, True),
    "rect-5x2-s3": (2, 6, 3, 11, 10, 5, 2, 3, 2, 1, 3, False),
    "kernel-wider-than-padding": (1, 2, 4, 4, 4, 3, 5, 1, (0, 3), 1, 2, False),
}


def _data(name, dtype, seed=0):
    n, c_in, c_out, h, w, kh, kw, stride, padding, dilation, groups, noncontiguous = CASES[name]
    rng = np.random.default_rng(seed)
    x = random_array(rng, (n, c_in, h, w), dtype, noncontiguous)
    weight = random_array(rng, (c_out, c_in // groups, kh, kw), dtype, noncontiguous)
    bias = random_array(rng, (c_out,), dtype)
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, bias.shape, **options)
    dy = random_array(rng, geom.y_shape, dtype, noncontiguous)
    return x, weight, bias, dy, options


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name, dtype):
    x, weight, bias, dy, options = _data(name, dtype)
    copies = [a.copy() for a in (x, weight, bias, dy)]
    y = gc.conv2d(x, weight, bias, backend="numba", **options)
    assert y.dtype == dtype
    assert_close(y, ref.conv2d(x, weight, bias, **options), dtype, "y")
    dx, dw, db = gc.conv2d_backward(dy, x, weight, backend="numba", **options)
    expected = ref.conv2d_backward(dy, x, weight, **options)
    for got, want, label in zip((dx, dw, db), expected, ("dx", "dw", "db")):
        assert got.dtype == dtype
        assert_close(got, want, dtype, label)
    for before, after in zip(copies, (x, weight, bias, dy)):
        np.testing.assert_array_equal(before, after)  # inputs untouched


def test_without_bias_and_fresh_outputs():
    x, weight, _, _, options = _data("block4-g2", np.float64)
    y = gc.conv2d(x, weight, None, backend="numba", **options)
    assert_close(y, ref.conv2d(x, weight, None, **options), np.float64, "y")
    assert not np.shares_memory(y, x)


def test_same_bits_for_one_and_two_threads():
    """Each thread owns whole outputs and sums in a fixed order, so the thread count cannot change a single bit."""
    x, weight, bias, dy, options = _data("block4-g2", np.float32, seed=3)
    previous = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            y = gc.conv2d(x, weight, bias, backend="numba", **options)
            results.append((y, *gc.conv2d_backward(dy, x, weight, backend="numba", **options)))
    finally:
        numba.set_num_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_availability_and_description():
    assert numba_cpu.availability() is None
    assert "numba" in gc.available_backends()
    assert isinstance(numba_cpu.DESCRIPTION, str) and numba_cpu.DESCRIPTION


def test_compile_cache_from_a_clean_cache_dir(tmp_path):
    """First process compiles and writes the cache; a second process loads every kernel from it."""
    script = textwrap.dedent(
        """
        import numpy as np
        import gconv_edu as gc
        from gconv_edu.backends import numba_cpu as m
        x = np.ones((1, 2, 5, 5)); w = np.ones((2, 1, 3, 3))
        y = gc.conv2d(x, w, groups=2, padding=1, backend="numba")
        gc.conv2d_backward(y, x, w, groups=2, padding=1, backend="numba")
        kernels = (m._forward_kernel, m._backward_input_kernel, m._backward_weight_kernel)
        hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
        print(hits, sum(sum(k.stats.cache_misses.values()) for k in kernels))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first_hits, first_misses = map(int, runs[0].stdout.split())
    second_hits, second_misses = map(int, runs[1].stdout.split())
    assert (first_hits, first_misses) == (0, 3)
    assert (second_hits, second_misses) == (3, 0)
    assert any(tmp_path.rglob("*.nbi")) and any(tmp_path.rglob("*.nbc"))
