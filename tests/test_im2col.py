"""im2col's own identities: col2im is its adjoint, chunking changes nothing, groups are block-diagonal."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import gconv_edu as gc
from gconv_edu.backends import im2col as im2col_backend
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


@pytest.mark.parametrize("case", GEOMETRIES)
@pytest.mark.parametrize("workspace_bytes", [1, 2000, None])
def test_batch_chunking_changes_nothing(case, workspace_bytes):
    geom = _geometry(case)
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(geom.x_shape), rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    y_whole = im2col_backend.forward(x, w, None, geom, workspace_bytes=10**12)
    grads_whole = im2col_backend.backward(dy, x, w, geom, workspace_bytes=10**12)
    y = im2col_backend.forward(x, w, None, geom, workspace_bytes=workspace_bytes)
    grads = im2col_backend.backward(dy, x, w, geom, workspace_bytes=workspace_bytes)
    assert_close(y, y_whole, np.float64)
    for got, want in zip(grads, grads_whole):
        assert_close(got, want, np.float64)


def test_chunk_size_respects_the_cap(monkeypatch):
    geom = ConvGeometry.from_shapes((64, 8, 16, 16), (8, 8, 3, 3), padding=1)
    per_sample = 8 * 9 * 16 * 16 * 4  # one sample's columns; the rearranged copy doubles it
    assert im2col_backend.column_bytes_per_sample(geom, 4) == per_sample
    assert im2col_backend.batch_chunk(geom, 4, workspace_bytes=20 * per_sample) == 10
    assert im2col_backend.batch_chunk(geom, 4, workspace_bytes=1) == 1  # one sample is always processed
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "1")
    assert im2col_backend.batch_chunk(geom, 4) == 2**20 // (2 * per_sample)
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


@pytest.mark.parametrize("workspace_mib", [1, 4])
def test_workspace_cap_bounds_the_measured_peak(workspace_mib):
    """tracemalloc's peak during forward and backward stays under the cap plus the arrays the call must hold anyway."""
    import tracemalloc

    geom = ConvGeometry.from_shapes((32, 8, 24, 24), (8, 4, 3, 3), padding=1, groups=2)
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal(geom.x_shape), rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    cap = workspace_mib * 2**20
    assert im2col_backend.batch_chunk(geom, 8, cap) < geom.batch // 2  # several chunks: the cap is what bounds
    # Besides the columns: x padded for one chunk, the output/dx, and small per-chunk pieces (outputs of one chunk).
    unavoidable = 2 * x.nbytes + dy.nbytes
    for run in (
        lambda: im2col_backend.forward(x, w, None, geom, workspace_bytes=cap),
        lambda: im2col_backend.backward(dy, x, w, geom, workspace_bytes=cap),
    ):
        tracemalloc.start()
        try:
            run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= cap + unavoidable, (peak / 2**20, cap / 2**20, unavoidable / 2**20)
