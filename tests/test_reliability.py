"""Reliability: fork after numba, odd arrays refused, huge arguments, named allocation failures, float32 sums.

Each test here failed before its fix: a forked pool hung on GNU OpenMP, masked arrays were computed with their mask
ignored, an output too large for the machine was NumPy's anonymous error, and numba's float32 dw/db lost 1e-5.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import reference as ref
from conftest import assert_close

import gconv_edu as gc
from gconv_edu.backends import REGISTRY, environment_errors
from gconv_edu.geometry import ConvGeometry
from gconv_edu.transpose import conv_transpose2d_backward

CPU_BACKENDS = [name for name, backend in REGISTRY.items() if backend.device == "cpu"]


def _run_python(script: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter; NUMBA_THREADING_LAYER removed unless given. Fails the test on timeout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    environment.update(env)
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the script did not finish in {timeout} s (a hang):\n{error.stderr}")


# --------------------------------------------------------------------------- fork-safe threading layer
FORK_AFTER_NUMBA = """
    import multiprocessing
    import numba
    import numpy as np
    import gconv_edu as gc

    x, w = np.ones((2, 4, 6, 6)), np.ones((4, 1, 3, 3))

    def work(seed):
        return float(gc.conv2d(x * seed, w, groups=4, padding=1, backend="numba").sum())

    if __name__ == "__main__":
        expected = [work(seed) for seed in range(4)]  # numba's thread pool is running in the parent now
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert pool.map(work, range(4)) == expected
        print(numba.threading_layer())
"""


def test_fork_pool_after_numba_use_finishes():
    """Workers forked after the parent used numba run numba too (GNU OpenMP here hung in Pool.map)."""
    run = _run_python(FORK_AFTER_NUMBA, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] in ("tbb", "workqueue"), run.stdout


def test_the_thread_helper_starts_numbas_pool_fork_safe():
    """gconv_edu.machine.thread_limit (bench, lessons, info) asks Numba for its thread count, which starts the pool:
    before the fix it did so before numba_cpu chose the layer, so the benchmark ran on GNU OpenMP."""
    script = """
        import numba
        from gconv_edu import machine
        with machine.thread_limit(1):
            pass
        print(numba.threading_layer())
    """
    run = _run_python(script, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] in ("tbb", "workqueue"), run.stdout


def test_users_threading_layer_is_kept():
    script = """
        import numba, numpy as np, gconv_edu as gc
        from gconv_edu.backends import numba_cpu
        gc.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), backend="numba")
        print(numba_cpu.choose_threading_layer(), numba.threading_layer())
    """
    run = _run_python(script, timeout=300, NUMBA_THREADING_LAYER="omp")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["omp", "omp"]


def test_numba_from_several_python_threads():
    """Workqueue aborts the process when two Python threads enter it at once: launches are serialised."""
    script = """
        import threading, numba, numpy as np, gconv_edu as gc
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((4, 8, 16, 16)), rng.standard_normal((8, 2, 3, 3))
        expected = gc.conv2d(x, w, groups=4, padding=1, backend="numba")
        results = []
        def work():
            for _ in range(20):
                results.append(np.array_equal(gc.conv2d(x, w, groups=4, padding=1, backend="numba"), expected))
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        print(all(results), len(results), numba.threading_layer())
    """
    run = _run_python(script, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[:2] == ["True", "80"], run.stdout


# --------------------------------------------------------------------------- arrays that change meaning
X, W = np.ones((1, 2, 4, 4)), np.ones((2, 1, 3, 3))
DY = np.ones((1, 2, 2, 2))


class Tagged(np.ndarray):
    """A user's ndarray subclass: it may mean anything, so it is refused like a masked array."""


SUBCLASSES = {
    "masked": (lambda a: np.ma.masked_array(a, mask=a > 0), r"numpy\.ma\.\S*MaskedArray.*its mask would be ignored"),
    "subclass": (lambda a: a.view(Tagged), r"test_reliability\.Tagged, not a plain numpy\.ndarray"),
}


@pytest.mark.parametrize("kind", list(SUBCLASSES))
@pytest.mark.parametrize("where", ["x", "weight", "bias", "dy"])
def test_ndarray_subclasses_are_refused_everywhere(kind, where):
    make, message = SUBCLASSES[kind]
    bias = np.ones(2)
    forward = {
        "conv2d": lambda **a: gc.conv2d(**{"x": X, "weight": W, "bias": bias, "groups": 2, **a}),
        "conv_transpose2d": lambda **a: gc.conv_transpose2d(**{"x": DY, "weight": W, "bias": bias, "groups": 2, **a}),
    }
    backward = {
        "conv2d_backward": lambda **a: gc.conv2d_backward(**{"dy": DY, "x": X, "weight": W, "groups": 2, **a}),
        "conv_transpose2d_backward": lambda **a: conv_transpose2d_backward(
            **{"dy": X, "x": DY, "weight": W, "groups": 2, **a}
        ),
    }
    calls = {**(forward if where != "dy" else {}), **(backward if where != "bias" else {})}
    for name, call in calls.items():
        plain = call()  # the plain arrays are fine
        argument = {"conv2d": X, "conv_transpose2d": DY, "conv2d_backward": X, "conv_transpose2d_backward": DY}[name]
        given = {"x": argument, "weight": W, "bias": bias, "dy": DY if name == "conv2d_backward" else X}[where]
        with pytest.raises(TypeError, match=message):
            call(**{where: make(given)})
        assert plain is not None


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_np_matrix_itself_is_refused():
    with pytest.raises(TypeError, match=r"weight is a numpy\.matrix"):
        gc.conv2d(X, np.asmatrix(np.ones((2, 9))))  # 2-D, so it would fail on shape anyway: the type comes first


def test_memmap_is_accepted(tmp_path):
    mapped = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=X.shape)
    mapped[:] = X
    np.testing.assert_array_equal(gc.conv2d(mapped, W, groups=2), gc.conv2d(X, W, groups=2))


# --------------------------------------------------------------------------- huge integer arguments
@pytest.mark.parametrize("backend", list(REGISTRY))
@pytest.mark.parametrize("parameter", ["stride", "dilation", "padding"])
def test_index_overflow_refused_on_every_backend(backend, parameter):
    """2**63 wrapped to a silently wrong [0.] in numba; every backend now refuses it up front, naming it."""
    x, w = np.full((1, 1, 3, 3), 2.0), np.ones((1, 1, 1, 1))
    with pytest.raises(ValueError, match=rf"{parameter}=9223372036854775808 must be < 2\*\*62"):
        gc.conv2d(x, w, backend=backend, **{parameter: 2**63})
    with pytest.raises(ValueError, match=rf"{parameter}=\(1, 4611686018427387904\) must be < 2\*\*62"):
        gc.conv2d(x, w, backend=backend, **{parameter: (1, 2**62)})


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_output_too_large_is_a_named_memory_error(backend):
    """padding=2**20 on a 1x1 image, 3x3 kernel (every CPU backend computes it): a (2**21-1)^2 output, 32 TiB;
    2**61: its byte count does not even fit in 64 bits."""
    x, w = np.ones((1, 1, 1, 1)), np.ones((1, 1, 3, 3))
    for padding, size in ((2**20, 2**21 - 1), (2**61, 2**62 - 1)):
        with pytest.raises(MemoryError, match=r"cannot allocate y \(N, C_out, H_out, W_out\)") as info:
            gc.conv2d(x, w, padding=padding, backend=backend)
        assert f"({1}, {1}, {size}, {size}) float64 needs {size * size * 8} bytes" in str(info.value)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_huge_dilation(backend):
    """dilation 2**40 with padding 2**39: a 3x3 output of padding only. numba and im2col's compiled unfold never
    materialise the padding and compute it; naive pads for real and says which buffer it could not allocate; a
    backend that does not support dilation says so."""
    rng = np.random.default_rng(1)
    x, w, bias = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 2, 2)), rng.standard_normal(1)
    options = dict(dilation=2**40, padding=2**39)
    unsupported = REGISTRY[backend].supports(ConvGeometry.from_shapes(x.shape, w.shape, **options))
    if unsupported:
        with pytest.raises(ValueError, match="supports"):
            gc.conv2d(x, w, bias, backend=backend, **options)
        return
    if backend == "naive":
        with pytest.raises(MemoryError, match=r"cannot allocate xpad \(x zero-padded by pad_widths=.*549755813888"):
            gc.conv2d(x, w, bias, backend=backend, **options)
        return
    y = gc.conv2d(x, w, bias, backend=backend, **options)
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), bias[0]))
    dx, dw, db = gc.conv2d_backward(np.ones_like(y), x, w, backend=backend, **options)
    assert not dx.any() and not dw.any() and db[0] == 9.0


# --------------------------------------------------------------------------- float32 long reductions (numba)
def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))


def test_float32_weight_gradient_over_a_million_images():
    """dw of a 1x1 layer over N = 10^6 one-pixel images: one sum of 10^6 float32 products (was 1.1e-5 off)."""
    rng = np.random.default_rng(7)
    x = rng.random((10**6, 1, 1, 1)).astype(np.float32)  # positive terms: a running float32 sum drifts (1.5e-4)
    dy = rng.random((10**6, 1, 1, 1)).astype(np.float32)
    weight = np.ones((1, 1, 1, 1), dtype=np.float32)
    _, dw, db = gc.conv2d_backward(dy, x, weight, backend="numba")
    x64, dy64 = x.astype(np.float64).ravel(), dy.astype(np.float64).ravel()
    assert _relative_error(dw, np.array(dy64 @ x64).reshape(1, 1, 1, 1)) <= 1e-5
    assert _relative_error(db, np.array([dy64.sum()])) <= 1e-5


def test_float32_bias_gradient_over_four_million_rows():
    """db over a 4e6-row image with stride (1, 2): 4e6 one-term rows summed into one total (was 3.9e-5 off)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 1, 4 * 10**6, 2)).astype(np.float32)
    dy = rng.standard_normal((1, 1, 4 * 10**6, 1)).astype(np.float32)
    weight = np.ones((1, 1, 1, 1), dtype=np.float32)
    _, dw, db = gc.conv2d_backward(dy, x, weight, stride=(1, 2), backend="numba")
    dy64 = dy.astype(np.float64).ravel()
    assert _relative_error(db, np.array([dy64.sum()])) <= 1e-5
    assert _relative_error(dw, np.array(dy64 @ x[..., 0].astype(np.float64).ravel()).reshape(1, 1, 1, 1)) <= 1e-5


def test_float32_pointwise_weight_gradient_over_one_long_plane():
    """A pointwise layer's plane becomes rows (H*W long); dw over a 2000x2000 plane still holds 1e-5."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 4, 2000, 2000)).astype(np.float32)
    dy = rng.standard_normal((1, 4, 2000, 2000)).astype(np.float32)
    weight = np.ones((4, 1, 1, 1), dtype=np.float32)
    _, dw, db = gc.conv2d_backward(dy, x, weight, groups=4, backend="numba")
    expected = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), weight.astype(np.float64), groups=4)
    assert_close(dw, expected[1], np.float32, "dw")
    assert_close(db, expected[2], np.float32, "db")


# --------------------------------------------------------------------------- settings from the environment
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "lots", ""])
def test_bad_workspace_setting_is_named_before_work(monkeypatch, value):
    from gconv_edu.backends import im2col

    def explode(*args, **kwargs):
        raise AssertionError("im2col started work with an invalid GCONV_IM2COL_WORKSPACE_MB")

    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", value)
    monkeypatch.setattr(im2col, "im2col", explode)
    for call in (
        lambda: gc.conv2d(X, W, groups=2, backend="im2col"),
        lambda: gc.conv2d_backward(DY, X, W, groups=2, backend="im2col"),
    ):
        with pytest.raises(ValueError, match=rf"GCONV_IM2COL_WORKSPACE_MB='{value}' must be a"):
            call()
    assert "GCONV_IM2COL_WORKSPACE_MB" in environment_errors()


def test_environment_errors(monkeypatch):
    monkeypatch.delenv("GCONV_IM2COL_WORKSPACE_MB", raising=False)
    monkeypatch.delenv("GCONV_BACKEND", raising=False)
    assert environment_errors() == {}
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "0.5")
    monkeypatch.setenv("GCONV_BACKEND", "numba")
    assert environment_errors() == {}
    monkeypatch.setenv("GCONV_BACKEND", "turbo")
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "nan")
    errors = environment_errors()
    assert set(errors) == {"GCONV_BACKEND", "GCONV_IM2COL_WORKSPACE_MB"}
    assert "GCONV_BACKEND='turbo' is not a known backend" in errors["GCONV_BACKEND"]
    assert "GCONV_IM2COL_WORKSPACE_MB='nan' must be a finite number" in errors["GCONV_IM2COL_WORKSPACE_MB"]
