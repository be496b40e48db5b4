"""The winograd backend: its transforms as matrices, its own grid (tile remainders, odd sizes, padding, groups), finite
differences, the tile setting, and what it refuses (before any work) and what "auto" does with it."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, random_array

import gconv_edu as gc
from gconv_edu import backends
from gconv_edu.backends import cpu_auto_choice, winograd
from gconv_edu.geometry import ConvGeometry

TILES = winograd.TILES


def _direct_tile(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The m x m outputs of a 3x3 correlation of one (m+2) x (m+2) tile, by the definition."""
    m = d.shape[0] - 2
    return np.array([[np.sum(d[i : i + 3, j : j + 3] * g) for j in range(m)] for i in range(m)])


# --------------------------------------------------------------------------- the transforms, as matrices
@pytest.mark.parametrize("tile", TILES)
def test_transforms_compute_a_direct_convolution_of_one_tile(tile):
    """Y = A^T [(G g G^T) (.) (B^T d B)] A equals the direct 3x3 correlation of the tile (Lavin & Gray, eq. 8)."""
    rng = np.random.default_rng(tile)
    bt, g_, at = winograd.BT[tile], winograd.G[tile], winograd.AT[tile]
    assert bt.shape == (tile + 2, tile + 2) and g_.shape == (tile + 2, 3) and at.shape == (tile, tile + 2)
    for _ in range(5):
        d, g = rng.standard_normal((tile + 2, tile + 2)), rng.standard_normal((3, 3))
        y = at @ ((g_ @ g @ g_.T) * (bt @ d @ bt.T)) @ at.T
        np.testing.assert_allclose(y, _direct_tile(d, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile", TILES)
def test_the_matrices_are_not_interchangeable(tile):
    """The check above can fail: a sign flipped in B^T breaks it."""
    rng = np.random.default_rng(0)
    bt = winograd.BT[tile].copy()
    bt[1, 2] = -bt[1, 2]
    d, g = rng.standard_normal((tile + 2, tile + 2)), rng.standard_normal((3, 3))
    y = winograd.AT[tile] @ ((winograd.G[tile] @ g @ winograd.G[tile].T) * (bt @ d @ bt.T)) @ winograd.AT[tile].T
    assert np.max(np.abs(y - _direct_tile(d, g))) > 1e-3


@pytest.mark.parametrize("tile", TILES)
def test_sparse_rows_hold_exactly_the_nonzeros(tile):
    for matrix in (winograd.BT[tile], winograd.AT[tile], winograd.AT[tile].T):
        columns, coefficients, counts = winograd._sparse_rows(matrix, np.float64)
        rebuilt = np.zeros_like(matrix)
        for row in range(matrix.shape[0]):
            rebuilt[row, columns[row, : counts[row]]] = coefficients[row, : counts[row]]
        np.testing.assert_array_equal(rebuilt, matrix)
        assert counts.sum() == np.count_nonzero(matrix)


@pytest.mark.parametrize("tile", TILES)
def test_compiled_kernels_match_the_matrices_on_one_tile(tile):
    """The Numba input, filter and output transforms of one tile, one channel, equal the matrix products."""
    rng = np.random.default_rng(3)
    alpha = tile + 2
    d, g = rng.standard_normal((1, 1, alpha, alpha)), rng.standard_normal((1, 1, 3, 3))
    v = np.empty((alpha * alpha, 1, 1))
    winograd._tile_transform(d, *winograd._sparse_rows(winograd.BT[tile], np.float64), alpha, tile, 1, 1, 0, 0, v)
    bt = winograd.BT[tile]
    np.testing.assert_allclose(v.reshape(alpha, alpha), bt @ d[0, 0] @ bt.T, rtol=1e-14, atol=1e-14)
    u = np.empty((alpha * alpha, 1, 1))
    winograd._filter_transform(g, winograd.G[tile], u)
    g_ = winograd.G[tile]
    np.testing.assert_allclose(u.reshape(alpha, alpha), g_ @ g[0, 0] @ g_.T, rtol=1e-14, atol=1e-14)
    y = np.empty((1, 1, tile, tile))
    m = (u * v).reshape(alpha * alpha, 1, 1)
    winograd._output_transform(m, *winograd._sparse_rows(winograd.AT[tile], np.float64), tile, 1, 1, np.zeros(1), y)
    np.testing.assert_allclose(y[0, 0], _direct_tile(d[0, 0], g[0, 0]), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- winograd's own grid
# (N, C_in, C_out, H, W, padding, groups): outputs that are not multiples of 2 or 4 (tile remainders), odd sizes,
# padding 0/1/2/(2, 0)/3/"same", groups 1, 2, 4 and C (depthwise, with a multiplier), N 1-3, one tile in all.
GRID = {
    "dense-pad1-7x9": (2, 3, 5, 7, 9, 1, 1),
    "pad0-odd-5x11": (1, 4, 6, 7, 13, 0, 2),
    "pad2-g4-3x3-input": (3, 8, 4, 3, 3, 2, 4),
    "pad2x0-g2": (2, 4, 4, 9, 6, (2, 0), 2),
    "pad3-crops-dx": (1, 2, 3, 4, 5, 3, 1),
    "same-depthwise": (2, 5, 5, 10, 7, "same", 5),
    "depthwise-mult2-pad1": (1, 3, 6, 6, 11, 1, 3),
    "one-output": (2, 3, 2, 3, 3, 0, 1),
    "wide-row-16x33": (1, 8, 8, 16, 33, 1, 2),
    "g4-many-channels": (2, 16, 32, 12, 10, 1, 4),
}


def _grid_case(name, dtype, seed=0, noncontiguous=False):
    n, c_in, c_out, h, w, padding, groups = GRID[name]
    rng = np.random.default_rng(seed)
    x = random_array(rng, (n, c_in, h, w), dtype, noncontiguous)
    weight = random_array(rng, (c_out, c_in // groups, 3, 3), dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    return x, weight, bias, dict(padding=padding, groups=groups), rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", list(GRID))
def test_grid_matches_reference(case, tile, dtype, monkeypatch):
    monkeypatch.setenv(winograd.TILE_VARIABLE, str(tile))
    x, weight, bias, options, rng = _grid_case(case, dtype, noncontiguous=case.startswith("pad2x0"))
    expected = ref.conv2d(x, weight, bias, **options)
    y = gc.conv2d(x, weight, bias, backend="winograd", **options)
    assert y.dtype == dtype
    assert_close(y, expected, dtype, "y")
    dy = rng.standard_normal(expected.shape).astype(dtype)
    got = gc.conv2d_backward(dy, x, weight, backend="winograd", **options)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert g.dtype == dtype and g.shape == want.shape, label
        assert_close(g, want, dtype, label)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", ["dense-pad1-7x9", "pad2-g4-3x3-input", "pad3-crops-dx", "depthwise-mult2-pad1"])
def test_grid_matches_finite_differences(case, tile, monkeypatch):
    monkeypatch.setenv(winograd.TILE_VARIABLE, str(tile))
    x, weight, bias, options, _ = _grid_case(case, np.float64, seed=5)
    result = gc.gradcheck(x, weight, bias, backend="winograd", tolerance=1e-6, **options)
    assert result.passed, str(result)


@pytest.mark.parametrize("layout", ["fortran", "negative-strides", "read-only", "broadcast"])
def test_memory_layouts_inputs_untouched_results_fresh(layout):
    x, weight, bias, options, rng = _grid_case("g4-many-channels", np.float64, seed=2)
    dy = rng.standard_normal(ref.conv2d(x, weight, **options).shape)
    if layout == "fortran":
        x, weight, dy = (np.asfortranarray(a) for a in (x, weight, dy))
    elif layout == "negative-strides":
        x, weight, dy = (np.ascontiguousarray(a[..., ::-1])[..., ::-1] for a in (x, weight, dy))
    elif layout == "read-only":
        for a in (x, weight, dy):
            a.flags.writeable = False
    else:
        x, dy = np.broadcast_to(x[:1], x.shape), np.broadcast_to(dy[:1], dy.shape)
    copies = [a.copy() for a in (x, weight, bias, dy)]
    y = gc.conv2d(x, weight, bias, backend="winograd", **options)
    assert_close(y, ref.conv2d(x, weight, bias, **options), np.float64, "y")
    got = gc.conv2d_backward(dy, x, weight, backend="winograd", **options)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert_close(g, want, np.float64, label)
    for before, after in zip(copies, (x, weight, bias, dy)):
        np.testing.assert_array_equal(before, after)
    for result in (y, *got):
        for given in (x, weight, bias, dy):
            assert not np.shares_memory(result, given)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_inf_reaches_only_its_windows_in_dx_too():
    """Winograd would spread an inf over its tile; non-finite data goes the definition's way (im2col)."""
    dy = np.ones((1, 1, 6, 6))
    dy[0, 0, 0, 0] = np.inf
    dx, dw, db = gc.conv2d_backward(dy, np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)), padding=1, backend="winograd")
    want = ref.conv2d_backward(dy, np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)), padding=1)
    for got, expected in zip((dx, dw, db), want):
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


# --------------------------------------------------------------------------- the tile setting
def test_tile_variable_selects_f4_and_is_validated(monkeypatch):
    x, weight, bias, options, _ = _grid_case("g4-many-channels", np.float32)
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, bias.shape, **options)
    monkeypatch.setenv(winograd.TILE_VARIABLE, "4")
    by_variable = gc.conv2d(x, weight, bias, backend="winograd", **options)
    np.testing.assert_array_equal(by_variable, winograd.forward(x, weight, bias, geom, tile=4))
    assert not np.array_equal(by_variable, winograd.forward(x, weight, bias, geom, tile=2))  # it did change the tile
    for bad in ("3", "8", "four", "2.0"):
        monkeypatch.setenv(winograd.TILE_VARIABLE, bad)
        with pytest.raises(ValueError, match=rf"GCONV_WINOGRAD_TILE='{bad}' must be one of 2, 4"):
            gc.conv2d(x, weight, bias, backend="winograd", **options)
        assert "GCONV_WINOGRAD_TILE" in backends.environment_errors()
    monkeypatch.delenv(winograd.TILE_VARIABLE)
    assert winograd.tile_size() == winograd.DEFAULT_TILE and "GCONV_WINOGRAD_TILE" not in backends.environment_errors()
    with pytest.raises(ValueError, match=r"tile=3 must be one of \(2, 4\)"):
        winograd.forward(x, weight, bias, geom, tile=3)


# --------------------------------------------------------------------------- what it refuses, and auto
UNSUPPORTED = {
    "kernel 5x5": dict(weight=(4, 2, 5, 5), options={}, got="kernel 5x5"),
    "kernel 3x2": dict(weight=(4, 2, 3, 2), options={}, got="kernel 3x2"),
    "kernel 1x1": dict(weight=(4, 2, 1, 1), options={}, got="kernel 1x1"),
    "stride 2": dict(weight=(4, 2, 3, 3), options=dict(stride=2, padding=1), got=r"stride \(2, 2\)"),
    "stride (1, 2)": dict(weight=(4, 2, 3, 3), options=dict(stride=(1, 2)), got=r"stride \(1, 2\)"),
    "dilation 2": dict(weight=(4, 2, 3, 3), options=dict(dilation=2, padding=2), got=r"dilation \(2, 2\)"),
}


def _forbid_work(monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the geometry was refused")

    for name in ("_tile_transform", "_filter_transform", "_output_transform", "_convolve", "forward", "backward"):
        monkeypatch.setattr(winograd, name, no_work)


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_geometries_are_refused_before_any_work(case, monkeypatch):
    spec = UNSUPPORTED[case]
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((1, 4, 9, 9)), rng.standard_normal(spec["weight"])
    y_shape = ref.conv2d(x, weight, groups=2, **spec["options"]).shape
    _forbid_work(monkeypatch)
    pattern = rf"backend='winograd' supports only 3x3 kernels with stride 1 and dilation 1 .*; got {spec['got']}"
    with pytest.raises(ValueError, match=pattern):
        gc.conv2d(x, weight, groups=2, backend="winograd", **spec["options"])
    with pytest.raises(ValueError, match=pattern):
        gc.conv2d_backward(np.ones(y_shape), x, weight, groups=2, backend="winograd", **spec["options"])
    with gc.use_backend("winograd"), pytest.raises(ValueError, match=pattern):  # a scoped default is asking, too
        gc.conv2d(x, weight, groups=2, **spec["options"])
    monkeypatch.setenv("GCONV_BACKEND", "winograd")
    with pytest.raises(ValueError, match=r"for this layer use one of \['naive', 'im2col', 'numba'"):
        gc.conv2d(x, weight, groups=2, **spec["options"])
    monkeypatch.delenv("GCONV_BACKEND")
    assert gc.conv2d(x, weight, groups=2, **spec["options"]).shape == y_shape  # auto takes another backend


def test_the_registry_says_what_it_supports():
    assert "winograd" in gc.available_backends()
    supported = ConvGeometry.from_shapes((1, 4, 6, 6), (4, 2, 3, 3), None, 1, "same", 1, 2)
    assert backends.REGISTRY["winograd"].supports(supported) is None
    assert all(backends.REGISTRY[name].supports(supported) is None for name in ("naive", "im2col", "numba"))
    refused = ConvGeometry.from_shapes((1, 4, 6, 6), (4, 2, 5, 5), None, 1, 0, 1, 2)
    assert "supports only 3x3" in backends.REGISTRY["winograd"].supports(refused)


AUTO_GEOMETRIES = [
    ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1),  # dense-3x3: supported
    ((8, 128, 56, 56), (128, 4, 3, 3), 1, 1, 1, 32),  # resnext-g32: supported, thin groups (4 x 4)
    ((8, 64, 112, 112), (64, 1, 3, 3), 1, 1, 1, 64),  # depthwise: supported, thin
    ((8, 96, 27, 27), (256, 48, 5, 5), 1, 2, 1, 2),  # alexnet-conv2: 5x5
    ((8, 64, 56, 56), (64, 64, 3, 3), 2, 1, 1, 1),  # stride 2
    ((8, 64, 56, 56), (64, 64, 3, 3), 1, 2, 2, 1),  # dilation 2
    ((8, 384, 28, 28), (384, 48, 1, 1), 1, 0, 1, 8),  # pointwise
]


@pytest.mark.parametrize("switched_on", [False, True])
def test_auto_never_picks_winograd_outside_its_support(switched_on, monkeypatch):
    monkeypatch.setattr(backends, "WINOGRAD_AUTO", switched_on)
    available = gc.available_backends()
    for x_shape, w_shape, stride, padding, dilation, groups in AUTO_GEOMETRIES:
        geom = ConvGeometry.from_shapes(x_shape, w_shape, None, stride, padding, dilation, groups)
        choice = cpu_auto_choice(geom, available)
        assert backends.REGISTRY[choice].supports(geom) is None, (choice, geom.describe())
        if not switched_on:  # the hook is off: the measured rule decides, as before
            assert choice != "winograd"
    dense = ConvGeometry.from_shapes(*AUTO_GEOMETRIES[0][:2], None, 1, 1, 1, 1)
    assert (cpu_auto_choice(dense, available) == "winograd") == switched_on
    thin = ConvGeometry.from_shapes(*AUTO_GEOMETRIES[1][:2], None, 1, 1, 1, 32)
    assert cpu_auto_choice(thin, available) != "winograd"  # memory-bound element-wise stage: not even switched on


# --------------------------------------------------------------------------- batch chunks (V and M workspaces)
def test_batch_chunk_respects_the_cap_and_the_im2col_variable(monkeypatch):
    monkeypatch.delenv("GCONV_IM2COL_WORKSPACE_MB", raising=False)
    assert winograd.batch_chunk(8, winograd.WORKSPACE_CHUNK_BYTES // 3) == 3
    assert winograd.batch_chunk(8, 1) == 8  # at most the batch
    assert winograd.batch_chunk(8, 10 * winograd.WORKSPACE_CHUNK_BYTES) == 1  # at least one sample
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "1")  # the smaller cap wins
    assert winograd.batch_chunk(8, 2**20 // 2) == 2
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="GCONV_IM2COL_WORKSPACE_MB='lots'"):
        winograd.batch_chunk(8, 1)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", ["pad2-g4-3x3-input", "same-depthwise", "pad2x0-g2", "dense-pad1-7x9"])
def test_one_sample_chunks_match_the_reference(case, tile, monkeypatch):
    """Chunks of one sample through reused workspaces (the last chunk, dw summed over chunks) give the same results."""
    monkeypatch.setattr(winograd, "WORKSPACE_CHUNK_BYTES", 1)
    calls = []
    transform = winograd._tile_transform
    monkeypatch.setattr(winograd, "_tile_transform", lambda x, *args: calls.append(x.shape[0]) or transform(x, *args))
    x, weight, bias, options, rng = _grid_case(case, np.float64, seed=7)
    assert x.shape[0] > 1
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, bias.shape, **options)
    expected = ref.conv2d(x, weight, bias, **options)
    assert_close(winograd.forward(x, weight, bias, geom, tile=tile), expected, np.float64, "y")
    assert calls == [1] * x.shape[0]  # one chunk per sample
    dy = rng.standard_normal(expected.shape)
    got = winograd.backward(dy, x, weight, geom, tile=tile)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert_close(g, want, np.float64, label)
    assert len(calls) == 4 * x.shape[0]  # dx's input transform, dw's of x and of dy, per sample


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_finite_check_finds_every_inf_and_nan(dtype):
    """The exponent-bits scan (blocks of 4096) sees inf/NaN anywhere, and passes the largest and subnormal values."""
    a = np.random.default_rng(0).standard_normal(3 * 4096 + 5).astype(dtype)
    a[7], a[8] = np.finfo(dtype).max, np.finfo(dtype).tiny / 4
    assert winograd._finite(a, a.reshape(1, -1))
    for bad in (np.inf, -np.inf, np.nan):
        for position in (0, 4095, 4096, a.size - 1):
            b = a.copy()
            b[position] = bad
            assert not winograd._finite(a, b), (bad, position)
