"""im2col's own identities: col2im is its adjoint, chunking changes nothing, groups are block-diagonal.

Both paths are tested: the compiled one NumPy arrays take (:mod:`gconv_edu.backends.unfold_numba`) and the portable
``xp`` one CuPy takes (``compiled=False`` here).
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, random_array

import gconv_edu as gc
from gconv_edu.backends import im2col as im2col_backend
from gconv_edu.backends import unfold_numba
from gconv_edu.geometry import ConvGeometry
from gconv_edu.groups import block_diagonal_weight, channel_shuffle, channel_shuffle_backward, group_slices

GEOMETRIES = [
    dict(x_shape=(2, 4, 7, 9), w_shape=(4, 2, 3, 2), stride=2, padding=1, dilation=1, groups=2),
    dict(x_shape=(1, 3, 10, 8), w_shape=(6, 1, 3, 3), stride=(3, 2), padding=(2, 0), dilation=(1, 2), groups=3),
    dict(x_shape=(3, 2, 6, 6), w_shape=(2, 2, 2, 2), stride=1, padding="same", dilation=2, groups=1),
]


def _geometry(case):
    return ConvGeometry.from_shapes(
        case["x_shape"], case["w_shape"], None, case["stride"], case["padding"], case["dilation"], case["groups"]
    )


@pytest.mark.parametrize("case", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> == <x, col2im(c)> for random x and c: col2im must accumulate, not overwrite."""
    geom = _geometry(case)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(geom.x_shape)
    cols = im2col_backend.im2col(x, geom)
    c = rng.standard_normal(cols.shape)
    left = np.vdot(cols, c)
    right = np.vdot(x, im2col_backend.col2im(c, geom))
    assert abs(left - right) <= 1e-12 * abs(left) + 1e-12


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "portable"])
@pytest.mark.parametrize("case", GEOMETRIES)
@pytest.mark.parametrize("workspace_bytes", [1, 2000, None])
def test_batch_chunking_changes_nothing(case, workspace_bytes, compiled):
    geom = _geometry(case)
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(geom.x_shape), rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    y_whole = im2col_backend.forward(x, w, None, geom, workspace_bytes=10**12, compiled=compiled)
    grads_whole = im2col_backend.backward(dy, x, w, geom, workspace_bytes=10**12, compiled=compiled)
    y = im2col_backend.forward(x, w, None, geom, workspace_bytes=workspace_bytes, compiled=compiled)
    grads = im2col_backend.backward(dy, x, w, geom, workspace_bytes=workspace_bytes, compiled=compiled)
    assert_close(y, y_whole, np.float64)
    for got, want in zip(grads, grads_whole):
        assert_close(got, want, np.float64)


def test_chunk_size_respects_the_cap(monkeypatch):
    geom = ConvGeometry.from_shapes((64, 8, 16, 16), (8, 8, 3, 3), padding=1)
    per_sample = 8 * 9 * 16 * 16 * 4  # one sample's columns; the rearranged copy doubles it
    assert im2col_backend.column_bytes_per_sample(geom, 4) == per_sample
    assert im2col_backend.batch_chunk(geom, 4, workspace_bytes=20 * per_sample) == 10
    assert im2col_backend.batch_chunk(geom, 4, workspace_bytes=1) == 1  # one sample is always processed
    # The compiled path keeps one column buffer alive (no rearranged copy; dcols overwrite the columns): twice the chunk
    assert im2col_backend.COMPILED_COLUMN_BUFFERS == 1
    assert im2col_backend.batch_chunk(geom, 4, 20 * per_sample, im2col_backend.COMPILED_COLUMN_BUFFERS) == 20
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "1")
    assert im2col_backend.batch_chunk(geom, 4) == 2**20 // (2 * per_sample)
    assert im2col_backend.batch_chunk(geom, 4, buffers=1) == 2**20 // per_sample
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="GCONV_IM2COL_WORKSPACE_MB"):
        im2col_backend.batch_chunk(geom, 4)


@pytest.mark.parametrize("groups, c_in, c_out", [(1, 4, 6), (2, 4, 6), (4, 4, 8), (3, 6, 3)])
def test_grouped_equals_dense_with_block_diagonal_weight(groups, c_in, c_out):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, c_in, 7, 6))
    w = rng.standard_normal((c_out, c_in // groups, 3, 3))
    dense = block_diagonal_weight(w, groups)
    assert dense.shape == (c_out, c_in, 3, 3)
    # Off the diagonal blocks the dense weight is exactly zero.
    for g, (_, out_slice) in enumerate(group_slices(c_in, c_out, groups)):
        for h, (in_slice, _) in enumerate(group_slices(c_in, c_out, groups)):
            assert (np.count_nonzero(dense[out_slice, in_slice]) == 0) == (g != h)
    assert_close(
        gc.conv2d(x, w, groups=groups, padding=1), gc.conv2d(x, dense, groups=1, padding=1), np.float64, "grouped"
    )


def test_group_slices_partition_the_channels():
    slices = group_slices(6, 9, 3)
    assert slices == [(slice(0, 2), slice(0, 3)), (slice(2, 4), slice(3, 6)), (slice(4, 6), slice(6, 9))]
    with pytest.raises(ValueError, match="groups=4 must divide C_in=6"):
        group_slices(6, 8, 4)


def test_channel_shuffle_order_and_inverse():
    x = np.arange(6, dtype=np.float64).reshape(1, 6, 1, 1)
    shuffled = channel_shuffle(x, 2)
    # Groups {0,1,2} and {3,4,5} interleave: 0,3,1,4,2,5.
    assert shuffled.ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert np.array_equal(channel_shuffle_backward(shuffled, 2), x)
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((2, 12, 3, 3)), rng.standard_normal((2, 12, 3, 3))
    # Backward is the adjoint: <shuffle(x), dy> == <x, shuffle_backward(dy)>.
    assert np.isclose(np.vdot(channel_shuffle(x, 3), dy), np.vdot(x, channel_shuffle_backward(dy, 3)))


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "portable"])
@pytest.mark.parametrize("workspace_mib", [1, 4])
def test_workspace_cap_bounds_the_measured_peak(workspace_mib, compiled):
    """tracemalloc's peak during forward and backward stays under the cap plus the arrays the call must hold anyway."""
    import tracemalloc

    geom = ConvGeometry.from_shapes((32, 8, 24, 24), (8, 4, 3, 3), padding=1, groups=2)
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal(geom.x_shape), rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    cap = workspace_mib * 2**20
    buffers = im2col_backend.COMPILED_COLUMN_BUFFERS if compiled else im2col_backend.COLUMN_BUFFERS
    assert im2col_backend.batch_chunk(geom, 8, cap, buffers) < geom.batch // 2  # several chunks: the cap bounds
    # Besides the columns: x padded for one chunk (portable path), the output/dx, and per-chunk pieces of the
    # output's size (the GEMM's output layout, dy regrouped for one chunk).
    unavoidable = 2 * x.nbytes + dy.nbytes
    for run in (
        lambda: im2col_backend.forward(x, w, None, geom, workspace_bytes=cap, compiled=compiled),
        lambda: im2col_backend.backward(dy, x, w, geom, workspace_bytes=cap, compiled=compiled),
    ):
        run()  # compiling (or loading) the Numba kernels allocates too: not the call's workspace
        tracemalloc.start()
        try:
            run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= cap + unavoidable, (peak / 2**20, cap / 2**20, unavoidable / 2**20)


# --------------------------------------------------------------------------- the compiled unfold (unfold_numba)
# (x_shape, w_shape, stride, padding, dilation, groups); padding may be (top, bottom, left, right), set on the geometry
UNFOLD_CASES = {
    "dense-pad1": ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1),
    "g2-s2-uneven": ((3, 4, 9, 8), (6, 2, 3, 2), 2, (1, 0), 1, 2),
    "g3-s3x2-dil1x2": ((2, 6, 10, 11), (6, 2, 3, 3), (3, 2), (2, 1), (1, 2), 3),
    "depthwise-dil2": ((2, 4, 8, 9), (4, 1, 3, 3), 1, 2, 2, 4),
    "depthwise-mult2-k5x5": ((2, 3, 9, 7), (6, 1, 5, 5), 1, 2, 1, 3),
    "asymmetric-pad": ((2, 4, 6, 7), (4, 2, 3, 2), (1, 2), (0, 3, 2, 1), 1, 2),
    "asymmetric-pad-s3": ((2, 2, 8, 5), (2, 2, 2, 3), 3, (2, 0, 0, 3), (2, 1), 1),
    # A tap whose whole output row reads the left padding (its valid range starts past W_out): the zero-fill must stop
    "tap-past-the-row": ((2, 2, 1, 1), (2, 2, 3, 3), 1, 6, 5, 1),
    "kernel-larger-than-input": ((1, 2, 2, 3), (2, 1, 5, 5), 2, 2, 1, 2),
}


def _unfold_case(name, dtype, noncontiguous=False):
    x_shape, w_shape, stride, padding, dilation, groups = UNFOLD_CASES[name]
    explicit = isinstance(padding, tuple) and len(padding) == 4
    geom = ConvGeometry.from_shapes(x_shape, w_shape, None, stride, 0 if explicit else padding, dilation, groups)
    if explicit:
        geom = dataclasses.replace(geom, padding=padding)
    rng = np.random.default_rng(21)
    x = random_array(rng, x_shape, dtype, noncontiguous)
    w = random_array(rng, w_shape, dtype)
    dy = random_array(rng, geom.y_shape, dtype)
    return geom, x, w, dy


def _reference(geom, x, w, dy):
    """y and (dx, dw, db) in float64 for any (top, bottom, left, right) padding: the reference on x padded for real."""
    xpad = np.pad(x, geom.pad_widths)
    options = dict(stride=geom.stride, padding=0, dilation=geom.dilation, groups=geom.groups)
    dx, dw, db = ref.conv2d_backward(dy, xpad, w, **options)
    return ref.conv2d(xpad, w, **options), (dx[geom.interior], dw, db)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(UNFOLD_CASES))
def test_compiled_unfold_matches_the_reference(case, dtype):
    geom, x, w, dy = _unfold_case(case, dtype, noncontiguous=case == "g2-s2-uneven")
    y_ref, grads_ref = _reference(geom, x, w, dy)
    for workspace_bytes in (None, 1):  # one chunk, and one sample per chunk
        y = im2col_backend.forward(x, w, None, geom, workspace_bytes=workspace_bytes, compiled=True)
        assert y.dtype == dtype
        assert_close(y, y_ref, dtype, "y")
        grads = im2col_backend.backward(dy, x, w, geom, workspace_bytes=workspace_bytes, compiled=True)
        for got, want, label in zip(grads, grads_ref, ("dx", "dw", "db")):
            assert got.dtype == dtype, label
            assert_close(got, want, dtype, label)


@pytest.mark.parametrize("case", list(UNFOLD_CASES))
def test_compiled_columns_are_the_portable_ones_in_the_gemm_layout(case):
    """Bit for bit: the Numba unfold writes what im2col + the regrouping copy write; col2im_gather is its adjoint."""
    geom, x, _, _ = _unfold_case(case, np.float64)
    cols = unfold_numba.im2col_gemm_layout(x, geom)
    g, rows, columns = geom.groups, geom.in_channels_per_group * geom.kernel_area, geom.batch * geom.out_h * geom.out_w
    assert cols.shape == (g, rows, columns) and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, im2col_backend._grouped_columns(im2col_backend.im2col(x, geom), geom))
    c = np.random.default_rng(8).standard_normal(cols.shape)
    dx = unfold_numba.col2im_gather(c, geom, np.full(geom.x_shape, np.nan))  # dx is overwritten, not added to
    left, right = np.vdot(cols, c), np.vdot(x, dx)
    assert abs(left - right) <= 1e-12 * max(1.0, abs(left))


def test_compiled_unfold_fills_a_given_buffer_and_refuses_a_short_one():
    geom, x, _, _ = _unfold_case("dense-pad1", np.float32)
    size = geom.in_channels * geom.kernel_area * geom.batch * geom.out_h * geom.out_w
    buffer = np.full(size + 5, np.nan, dtype=np.float32)
    cols = unfold_numba.im2col_gemm_layout(x, geom, buffer)
    assert np.shares_memory(cols, buffer) and not np.isnan(cols).any()  # every entry written, padding's as 0
    with pytest.raises(ValueError, match="buffer has 4 entries"):
        unfold_numba.im2col_gemm_layout(x, geom, np.empty(4, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_compiled_and_portable_paths_agree_on_odd_operands(dtype):
    """Read-only and non-contiguous operands, bias, several chunks: both paths give the same numbers."""
    geom, x, w, dy = _unfold_case("g3-s3x2-dil1x2", dtype, noncontiguous=True)
    x_readonly = np.array(x)
    x_readonly.flags.writeable = False
    bias = np.linspace(-1, 1, geom.out_channels).astype(dtype)
    for operand in (x, x_readonly):
        y = im2col_backend.forward(operand, w, bias, geom, workspace_bytes=3000, compiled=True)
        assert_close(y, im2col_backend.forward(operand, w, bias, geom, compiled=False).astype(np.float64), dtype)
        got = im2col_backend.backward(dy, operand, w, geom, workspace_bytes=3000, compiled=True)
        for g, want in zip(got, im2col_backend.backward(dy, operand, w, geom, compiled=False)):
            assert_close(g, want.astype(np.float64), dtype)


def test_numpy_arrays_take_the_compiled_path_and_other_modules_the_portable_one(monkeypatch):
    """xp=numpy -> unfold_numba; any other array module (CuPy) -> the portable xp code, unchanged; compiled=True
    with another module is refused before any work."""
    geom, x, w, dy = _unfold_case("dense-pad1", np.float64)
    calls = []
    real_forward = unfold_numba.forward
    monkeypatch.setattr(unfold_numba, "forward", lambda *args: calls.append("numba") or real_forward(*args))
    y = im2col_backend.forward(x, w, None, geom)
    assert calls == ["numba"]
    other_module = types.ModuleType("not_numpy")  # NumPy's functions under another module: as cupy looks to im2col
    other_module.__dict__.update({k: v for k, v in np.__dict__.items() if not k.startswith("__")})
    assert_close(im2col_backend.forward(x, w, None, geom, xp=other_module), y, np.float64)
    assert calls == ["numba"]  # the portable path ran
    with pytest.raises(ValueError, match="compiled=True needs NumPy arrays"):
        im2col_backend.backward(dy, x, w, geom, xp=other_module, compiled=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0, on purpose
def test_compiled_unfold_multiplies_the_padding_as_the_definition_does():
    """The columns hold real zeros over the padding, so an inf weight or dy meets them: inf * 0 = NaN, as in ref."""
    geom, x, w, dy = _unfold_case("asymmetric-pad", np.float64)
    w = w.copy()
    w[0, 0, 0, 0] = np.inf
    dy = dy.copy()
    dy[1, 3, -1, -1] = -np.inf
    y_ref, grads_ref = _reference(geom, x, w, dy)
    got = [im2col_backend.forward(x, w, None, geom, compiled=True)]
    got += im2col_backend.backward(dy, x, w, geom, compiled=True)
    for value, want, label in zip(got, (y_ref, *grads_ref), ("y", "dx", "dw", "db")):
        np.testing.assert_array_equal(np.isnan(value), np.isnan(want), err_msg=label)
        np.testing.assert_array_equal(np.isinf(value), np.isinf(want), err_msg=label)
    assert np.isnan(got[0]).any() and np.isnan(got[2]).any()  # the case does reach the padding


def test_compiled_unfold_from_several_python_threads():
    """The Numba kernels launch under numba_cpu's lock unless the threading layer is thread-safe (workqueue aborts
    the process when two threads enter it at once); results stay exact."""
    import threading

    geom, x, w, dy = _unfold_case("g2-s2-uneven", np.float64)
    want = im2col_backend.forward(x, w, None, geom), im2col_backend.backward(dy, x, w, geom)
    mismatches = []

    def work():
        for _ in range(5):
            got = im2col_backend.forward(x, w, None, geom), im2col_backend.backward(dy, x, w, geom)
            mismatches.extend(1 for a, b in zip((got[0], *got[1]), (want[0], *want[1])) if not np.array_equal(a, b))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not mismatches
