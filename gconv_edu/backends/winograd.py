"""Winograd's minimal filtering for 3x3, stride-1 layers: fewer multiplications per output (Lavin & Gray 2016).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), section 4: ``F(m x m, 3 x 3)`` computes
an m x m tile of outputs from an alpha x alpha tile of inputs, ``alpha = m + 2``, as ::

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (.) the element-wise product; g: one 3x3 filter; d: one input tile

Summed over the input channels, the element-wise products become, for each of the alpha^2 tile positions ``e``, one
matrix product over channels, so the whole layer is ONE batched GEMM over (tile position x group)::

    # (alpha^2, G, C_out/G, T) = (alpha^2, G, C_out/G, C_in/G) @ (alpha^2, G, C_in/G, T)    T = N * tiles_h * tiles_w

with ``alpha^2`` = 16 for F(2x2, 3x3) and 36 for F(4x4, 3x3): 16/4 = 4 and 36/16 = 2.25 multiplications per output
and input channel instead of 9. The transforms are additions and a few multiplications by small constants; they run
in Numba, parallel over (sample, channel) planes, in two steps per plane:

1. gather: ``gathered[s, j, R, tw] = x[R*m + s - pad_top, tw*m + j - pad_left]`` (zero outside the image), i.e. for
   each row phase ``s`` and tile column ``j`` the plane of every tile's entry, read with unsigned strided indices (no
   negative-index checks in the loop);
2. the two small products (rows, then columns) as fused multiply-add chains over ALL tiles of the plane at once,
   ``dst[t] = sum_q c_q * src_q[t]``: contiguous stride-1 loops, sliced so that Numba drops its index checks and
   LLVM vectorises them, written straight into the GEMM's (alpha^2, C, T) layout. Only the nonzero entries of B^T,
   A^T (and A) are used, in the matrices' column order (as the plain sums would).

The output transform is the same in reverse (products over all tiles, then a strided scatter, cropped). The batch runs
in chunks of samples (:func:`batch_chunk`, a few MiB) through V and M buffers allocated once, so the GEMM reads V from
cache and each page is touched once. Measured (dense-3x3, float32, 1 thread, loaded machine): the input transform
of one sample takes ~0.9 ms (F2; ~4.4 GB/s of x read and V written), against ~1.6 ms per sample before this layout
(tile-row loops); still about 10x a cache-warm copy of V: the transforms remain about half of forward+backward.

Layouts (tile-major): U (alpha^2, C_out, C_in/G), V (alpha^2, C_in, T), M (alpha^2, C_out, T), with
``t = (n * tiles_h + th) * tiles_w + tw`` (n: the sample within its chunk) and ``tiles_h = ceil(H_out / m)``; tiles
past H_out / W_out read zeros and are cropped (tile remainders). Padding is never materialised: rows and columns
outside the image read as zero. Output size (stride 1, dilation 1): ``H_out = H + pad_top + pad_bottom - 2``
(likewise W_out).

Backward (hand-written):

* dx is the same algorithm on dy with the flipped, in/out-transposed filter of each group
  (``w'[g*in_per_group + c, k, p, q] = w[g*out_per_group + k, c, 2 - p, 2 - q]``), padding ``2 - pad`` per side;
* dw in Winograd form: ``dw = G^T [ sum_t (A dY_t A^T) (.) (B^T d_t B) ] G``, the sum over tiles being one batched
  GEMM ``# (alpha^2, G, C_out/G, C_in/G) = (alpha^2, G, C_out/G, T) @ (alpha^2, G, T, C_in/G)``; db = sum of dy.

Precision: the filter transform is computed in float64 and rounded once; the input transform of F(4x4, 3x3) scales
values by up to 4 * 5 per axis, so its float32 error is larger (measured: see README / lesson 11). The tile is
:data:`DEFAULT_TILE`, or the environment variable ``GCONV_WINOGRAD_TILE`` (2 or 4, checked where read).

Non-finite data: Winograd mixes every value of an input tile into every output of the tile, so an inf would reach
outputs whose windows do not contain it (and inf - inf = NaN). Inputs holding inf or NaN (a cheap test) are computed
by the im2col backend instead, which follows the definition.
"""

from __future__ import annotations

import os

import numpy as np

from ..arrays import empty
from ..geometry import ConvGeometry
from . import im2col  # the definition's semantics for non-finite data (module docstring)

# numba_cpu's threading-layer policy and launch lock; its operands rule (C-contiguous, writeable copies where not)
from .numba_cpu import _one_caller_unless_thread_safe, _operands
from .winograd_kernels import (  # noqa: F401 (re-exported: the tests call the kernels through this module)
    _EXPONENT_BITS,
    FASTMATH,
    _all_finite,
    _combine,
    _filter_adjoint,
    _filter_transform,
    _output_transform,
    _tile_transform,
)

DESCRIPTION = "Winograd F(2x2,3x3) / F(4x4,3x3): Numba transforms + one batched GEMM (3x3, stride 1, dilation 1 only)"
TILES = (2, 4)  # m of F(m x m, 3 x 3)
# float32 error relative to max|ref| (float64 reference), dense-3x3 at N = 8: F(4x4, 3x3) y 8.3e-6, dx 6.9e-6,
# dw 1.0e-5, at the project's tolerance 1e-5 (tests/conftest.py RTOL) with no margin; F(2x2, 3x3) y 3.6e-7, dx 3.4e-7,
# dw 9.7e-7 (resnext-g32: F4 <= 4.3e-6, F2 <= 6.9e-7). With dw summed per chunk of samples (batch_chunk), measured
# again on standard normal data: F4 y 6.7e-6, dx 7.2e-6, dw 9.5e-6 (chunks of 2 samples) / 6.5e-6 (of 1, the 4 MiB
# default); F2 y 3.4e-7, dx 3.4e-7, dw 7.2e-7: little margin for F4. So the default is F(2x2, 3x3); F4 is an option
# (lesson 11).
DEFAULT_TILE = 2
TILE_VARIABLE = "GCONV_WINOGRAD_TILE"
SUPPORTED = "supports only 3x3 kernels with stride 1 and dilation 1 (any padding, any groups)"

# --------------------------------------------------------------------------- the transform matrices (section 4.1-4.2)
BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    4: np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        dtype=np.float64,
    ),
}
G = {
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),
    4: np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        dtype=np.float64,
    ),
}
AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64),
}


def availability() -> str | None:
    return None  # Numba and NumPy are dependencies: always available


def supports(geom: ConvGeometry) -> str | None:
    """None when this backend computes ``geom``; else what it supports and what it got (for the ValueError)."""
    got = []
    if (geom.kernel_h, geom.kernel_w) != (3, 3):
        got.append(f"kernel {geom.kernel_h}x{geom.kernel_w}")
    if geom.stride != (1, 1):
        got.append(f"stride {geom.stride}")
    if geom.dilation != (1, 1):
        got.append(f"dilation {geom.dilation}")
    return f"{SUPPORTED}; got {', '.join(got)}" if got else None


def tile_size() -> int:
    """m of F(m x m, 3 x 3): ``GCONV_WINOGRAD_TILE`` (2 or 4) if set and not empty, else :data:`DEFAULT_TILE`."""
    value = os.environ.get(TILE_VARIABLE)
    if not value:
        return DEFAULT_TILE
    if value.strip() not in {str(m) for m in TILES}:
        raise ValueError(f"{TILE_VARIABLE}={value!r} must be one of {', '.join(map(str, TILES))} (F(m x m, 3 x 3))")
    return int(value)


def _check_tile(tile: int | None) -> int:
    if tile is None:
        return tile_size()
    if tile not in TILES:
        raise ValueError(f"tile={tile!r} must be one of {TILES} (F(m x m, 3 x 3))")
    return int(tile)


def _sparse_rows(matrix: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero entries of each row: (columns (rows, most), coefficients in ``dtype``, counts (rows,))."""
    counts = (matrix != 0).sum(axis=1)
    columns = np.zeros((matrix.shape[0], counts.max()), dtype=np.int64)
    coefficients = np.zeros(columns.shape, dtype=dtype)
    for row in range(matrix.shape[0]):
        (nonzero,) = np.nonzero(matrix[row])
        columns[row, : nonzero.size] = nonzero
        coefficients[row, : nonzero.size] = matrix[row, nonzero]
    return columns, coefficients, counts.astype(np.int64)


# --------------------------------------------------------------------------- the algorithm
def _tiles(out_h: int, out_w: int, tile: int) -> tuple[int, int]:
    return -(-out_h // tile), -(-out_w // tile)


# V + M of one chunk of samples, at most: cache-sized, so the GEMM reads V warm and the pages are touched once.
# Measured, dense-3x3 forward+backward, N = 8, 1 thread (NumPy's BLAS too), loaded machine: F2 72 / 74 / 82 / 95 ms
# and F4 68 / 77 / 77 / 77 ms at caps of 4 / 8 / 16 / 32 MiB (chunks of 1 / 1-2 / 2-4 / 5-8 samples).
WORKSPACE_CHUNK_BYTES = 4 * 2**20


def batch_chunk(batch: int, bytes_per_sample: int) -> int:
    """Samples per chunk so that one chunk's two workspaces (V and M; dw: V and A dY A^T) stay under the cap.

    The cap is the smaller of :data:`WORKSPACE_CHUNK_BYTES` and im2col's ``GCONV_IM2COL_WORKSPACE_MB`` limit
    (:func:`im2col.workspace_limit`, validated there); at least one sample, at most the batch. The buffers are allocated
    once and reused chunk after chunk, so they stay warm in cache and their pages are touched once.
    """
    limit = min(WORKSPACE_CHUNK_BYTES, im2col.workspace_limit())
    return max(1, min(batch, limit // max(1, bytes_per_sample)))


def _workspace(name: str, rows: int, per_sample: int, chunk: int, dtype: np.dtype) -> np.ndarray:
    """A flat buffer for ``chunk`` samples of a (rows, chunk * per_sample) workspace (views of its front are used)."""
    return empty(np, name, (rows * chunk * per_sample,), dtype)


def _front(buffer: np.ndarray, rows: int, channels: int, count: int) -> np.ndarray:
    """The C-contiguous (rows, channels, count) view at the start of a flat workspace."""
    return buffer[: rows * channels * count].reshape(rows, channels, count)


def _convolve(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    groups: int,
    pad_top: int,
    pad_left: int,
    out_size: tuple[int, int],
    tile: int,
    output_name: str = "y (N, C_out, H_out, W_out)",
) -> np.ndarray:
    """Stride-1 3x3 grouped convolution by F(tile x tile, 3x3); padding offsets may be negative (a crop).

    x: (N, C_in, H, W); weight: (C_out, C_in/G, 3, 3); bias: (C_out,) -> y: (N, C_out, *out_size).
    The batch runs in chunks (:func:`batch_chunk`) through the same V and M buffers.
    """
    (batch, in_channels), out_channels = x.shape[:2], weight.shape[0]
    in_per_group, out_per_group = in_channels // groups, out_channels // groups
    alpha = tile + 2
    alpha2 = alpha * alpha
    y = empty(np, output_name, (batch, out_channels, *out_size), x.dtype)  # first: a too-large output says so
    tiles_h, tiles_w = _tiles(*out_size, tile)
    per = tiles_h * tiles_w  # tiles of one sample
    u = empty(np, "winograd U (G g G^T of every filter)", (alpha2, out_channels, in_per_group), x.dtype)
    with _one_caller_unless_thread_safe():
        _filter_transform(weight, G[tile], u)
    u = u.reshape(alpha2, groups, out_per_group, in_per_group)
    chunk = batch_chunk(batch, alpha2 * (in_channels + out_channels) * per * x.itemsize)
    v_buffer = _workspace(
        f"winograd V (B^T d B of every tile), F({tile}x{tile},3x3)", alpha2 * in_channels, per, chunk, x.dtype
    )
    m_buffer = _workspace("winograd M (the element-wise stage)", alpha2 * out_channels, per, chunk, x.dtype)
    bt_rows, at_rows = _sparse_rows(BT[tile], x.dtype), _sparse_rows(AT[tile], x.dtype)
    for first in range(0, batch, chunk):
        last = min(batch, first + chunk)
        count = (last - first) * per
        v = _front(v_buffer, alpha2, in_channels, count)
        m = _front(m_buffer, alpha2, out_channels, count)
        with _one_caller_unless_thread_safe():
            _tile_transform(x[first:last], *bt_rows, alpha, tile, tiles_h, tiles_w, pad_top, pad_left, v)
        # (alpha^2, G, C_out/G, T) = (alpha^2, G, C_out/G, C_in/G) @ (alpha^2, G, C_in/G, T)
        np.matmul(
            u,
            v.reshape(alpha2, groups, in_per_group, count),
            out=m.reshape(alpha2, groups, out_per_group, count),
        )
        with _one_caller_unless_thread_safe():
            _output_transform(m, *at_rows, tile, tiles_h, tiles_w, bias, y[first:last])
    return y


def _finite(*arrays: np.ndarray) -> bool:
    """Whether every entry of the (C-contiguous) arrays is finite."""
    for array in arrays:
        if array.dtype not in _EXPONENT_BITS:
            if not np.isfinite(array).all():
                return False
            continue
        unsigned, exponent = _EXPONENT_BITS[array.dtype]
        if not _all_finite(array.reshape(-1).view(unsigned), unsigned(exponent)):
            return False
    return True


def forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry, tile: int | None = None
) -> np.ndarray:
    """y = conv2d(x, weight) + bias by F(m x m, 3x3), m = ``tile`` (default :func:`tile_size`).

    x: (N, C_in, H, W); weight: (C_out, C_in/G, 3, 3); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out),
    ``H_out = H + pad_top + pad_bottom - 2`` (stride 1, dilation 1), likewise W_out.
    """
    tile = _check_tile(tile)
    if (reason := supports(geom)) is not None:
        raise ValueError(f"backend='winograd' {reason}")
    x, weight = _operands(x, weight)
    if not _finite(x, weight):
        return im2col.forward(x, weight, bias, geom)  # the definition: inf reaches only its own windows
    bias = np.zeros(geom.out_channels, x.dtype) if bias is None else np.ascontiguousarray(bias)
    top, _, left, _ = geom.padding
    return _convolve(x, weight, bias, geom.groups, top, left, (geom.out_h, geom.out_w), tile)


def flipped_transposed(weight: np.ndarray, groups: int) -> np.ndarray:
    """dx's filter: (C_out, C_in/G, 3, 3) -> (C_in, C_out/G, 3, 3), per group transposed and rotated by 180 degrees.

    ``w'[g*in_per_group + c, k, p, q] = w[g*out_per_group + k, c, 2 - p, 2 - q]``.
    """
    out_channels, in_per_group, k_h, k_w = weight.shape
    grouped = weight.reshape(groups, out_channels // groups, in_per_group, k_h, k_w)
    # (G, C_out/G, C_in/G, 3, 3) -> (G, C_in/G, C_out/G, 3, 3), taps reversed
    return np.ascontiguousarray(grouped.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]).reshape(
        groups * in_per_group, out_channels // groups, k_h, k_w
    )


def backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry, tile: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients, hand-written (module docstring): dx by Winograd on the flipped filter, dw in Winograd form.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, 3, 3)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, 3, 3), db: (C_out,).
    """
    tile = _check_tile(tile)
    if (reason := supports(geom)) is not None:
        raise ValueError(f"backend='winograd' {reason}")
    dy, x, weight = _operands(dy, x, weight)
    if not _finite(dy, x, weight):
        return im2col.backward(dy, x, weight, geom)
    top, _, left, _ = geom.padding
    groups = geom.groups
    # dx: a stride-1 convolution of dy, padded by k - 1 - pad = 2 - pad (negative: a crop), output (H, W)
    no_bias = np.zeros(geom.in_channels, x.dtype)
    dx_filter = flipped_transposed(weight, groups)
    dx = _convolve(dy, dx_filter, no_bias, groups, 2 - top, 2 - left, x.shape[2:], tile, "dx (N, C_in, H, W)")
    dw = _weight_gradient(dy, x, geom, tile)
    db = dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(x.dtype)
    return dx, dw, db


def _weight_gradient(dy: np.ndarray, x: np.ndarray, geom: ConvGeometry, tile: int) -> np.ndarray:
    """dw = G^T [ sum_t (A dY_t A^T) (.) (B^T d_t B) ] G: (C_out, C_in/G, 3, 3); the sum over chunks of the batch."""
    alpha, groups = tile + 2, geom.groups
    alpha2 = alpha * alpha
    in_channels, out_channels = geom.in_channels, geom.out_channels
    in_per_group, out_per_group = geom.in_channels_per_group, geom.out_channels_per_group
    tiles_h, tiles_w = _tiles(geom.out_h, geom.out_w, tile)
    per = tiles_h * tiles_w
    top, _, left, _ = geom.padding
    chunk = batch_chunk(geom.batch, alpha2 * (in_channels + out_channels) * per * x.itemsize)
    v_buffer = _workspace(
        f"winograd V (B^T d B of every tile), F({tile}x{tile},3x3)", alpha2 * in_channels, per, chunk, x.dtype
    )
    d_buffer = _workspace("winograd A dY A^T of every tile", alpha2 * out_channels, per, chunk, x.dtype)
    bt_rows = _sparse_rows(BT[tile], x.dtype)
    a_rows = _sparse_rows(AT[tile].T, x.dtype)  # A = (A^T)^T: (alpha, m)
    mdw = empty(np, "winograd dU", (alpha2, out_channels, in_per_group), x.dtype)
    part = mdw if chunk >= geom.batch else empty(np, "winograd dU of one chunk", mdw.shape, x.dtype)
    for first in range(0, geom.batch, chunk):
        last = min(geom.batch, first + chunk)
        count = (last - first) * per
        v = _front(v_buffer, alpha2, in_channels, count)
        dyt = _front(d_buffer, alpha2, out_channels, count)
        with _one_caller_unless_thread_safe():
            _tile_transform(x[first:last], *bt_rows, alpha, tile, tiles_h, tiles_w, top, left, v)
            _tile_transform(dy[first:last], *a_rows, tile, tile, tiles_h, tiles_w, 0, 0, dyt)
        # (alpha^2, G, C_out/G, C_in/G) = (alpha^2, G, C_out/G, T) @ (alpha^2, G, T, C_in/G)
        np.matmul(
            dyt.reshape(alpha2, groups, out_per_group, count),
            v.reshape(alpha2, groups, in_per_group, count).transpose(0, 1, 3, 2),
            out=(mdw if first == 0 else part).reshape(alpha2, groups, out_per_group, in_per_group),
        )
        if first > 0:
            mdw += part
    dw = empty(np, "dw (C_out, C_in/G, kH, kW)", geom.weight_shape, x.dtype)
    with _one_caller_unless_thread_safe():
        _filter_adjoint(mdw, G[tile], dw)
    return dw
