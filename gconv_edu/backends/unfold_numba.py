"""im2col and col2im compiled by Numba, for the NumPy path of :mod:`gconv_edu.backends.im2col`: copies that vanish.

The NumPy/CuPy code in :mod:`im2col` builds the columns in two copies: one strided slice per kernel tap into
(N, C_in, kH, kW, H_out, W_out), then a transposed copy into the GEMM's group layout. Here one parallel Numba loop
writes each column entry ONCE, straight into the layout the batched GEMM reads::

    cols[g, (c*kH + p)*kW + q, (n*H_out + oh)*W_out + ow] = x[n, g*in_per_group + c, oh*sh + p*dil_h - pad_top,
                                                               ow*sw + q*dil_w - pad_left]   (0 outside the image)

i.e. ``cols`` is (G, C_in/G*kH*kW, N*H_out*W_out), and as a 2-D array its row ``r = (ci*kH + p)*kW + q`` belongs to
absolute input channel ``ci`` and tap (p, q). Padding is never materialised: each row's valid output columns are
computed once per tap. The GEMM writes its result in place (``np.matmul(..., out=...)``): the backward's dcols into
the columns' own buffer, so ONE column-sized buffer is alive at a time; the forward into a (G, C_out/G, n*H_out*W_out)
buffer, rearranged into NCHW ``y`` by one output-sized copy (into ``y`` itself for a one-sample chunk). One GEMM per
chunk, not one per sample: measured on dense-3x3 (2 threads, loaded machine), 64 x 576 @ 576 x 25088 took 139-146 ms
plus 20 ms for the copy, while eight 64 x 576 @ 576 x 3136 products written straight into ``y`` took 390-490 ms.

col2im is a parallel GATHER: one task per (sample n, input channel ci) owns the plane ``dx[n, ci]`` and adds into it
every column entry that was copied from it, in a fixed (p, q, oh, ow) order. No two tasks write the same element, so
there are no atomics and no scattered writes between threads, and results do not depend on the thread count.

Padding's entries of the columns are real zeros, so a non-finite weight or dy meets them in the GEMMs as in the
definition (inf * 0 = NaN), with no special case. Rough costs (one thread, CPU time, loaded 2-core machine; float32,
N = 8): the unfold 6-9 ms and the gather 7-10 ms on dense-3x3 and alexnet-conv2, against 150-230 ms (wall, 2 threads)
for the forward GEMM alone.

Output size: ``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out).

The threading layer and the launch lock are :mod:`numba_cpu`'s (one policy for every Numba kernel of the package,
chosen before the first parallel launch); nothing else is shared with that backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from ..arrays import empty
from ..geometry import ConvGeometry
from .numba_cpu import _one_caller_unless_thread_safe as _launch_guard


@njit(cache=True, inline="always")
def _valid_range(out_len, in_len, stride, offset):  # pragma: no cover - compiled
    """Output positions o in [lo, hi) whose input position ``o*stride + offset`` lies in [0, in_len), lo <= out_len.

    Not numba_cpu's helper: that one's ``lo`` may pass ``out_len`` (a tap whose whole row lies in the left padding,
    e.g. W = 1, kW = 3, dilation 5, padding 6), harmless for a loop over [lo, hi) but not for the zero-fill of [0, lo)
    here, which would write past the row.
    """
    lo = min(out_len, max(0, -(offset // stride)))  # ceil(-offset / stride)
    hi = min(out_len, (in_len - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(parallel=True, cache=True)
def _im2col_rows(x, cols, kh, kw, sh, sw, dil_h, dil_w, pad_top, pad_left, out_h, out_w):  # pragma: no cover
    """x: (n, C_in, H, W) -> cols: (C_in*kH*kW, n*H_out*W_out); one task per row (ci, p, q), every entry written.

    Row by row of the output: the entries [lo, hi) of an output row copy input columns ``start, start + sw, ...``; the
    rest (the tap over the padding) are 0. The copy loops index from ``max(0, ...)`` so that LLVM sees indices >= 0
    and drops Numba's negative-index test from them (numba_cpu's :func:`_first_input` explains why that matters).
    """
    n, c_in, height, width = x.shape
    taps = kh * kw
    for r in prange(c_in * taps):
        ci = r // taps
        p = (r % taps) // kw
        q = r % kw
        offset_w = q * dil_w - pad_left
        lo, hi = _valid_range(out_w, width, sw, offset_w)
        start = max(0, lo * sw + offset_w)  # the input column that output column lo reads
        for i in range(n):
            for oh in range(out_h):
                base = max(0, (i * out_h + oh) * out_w)
                out_row = cols[r, base : base + out_w]
                h = oh * sh + p * dil_h - pad_top
                if h < 0 or h >= height:
                    out_row[:] = 0
                    continue
                in_row = x[i, ci, max(0, h)]
                out_row[:lo] = 0
                if sw == 1:  # a contiguous copy (measured 2x less CPU time than one indexed loop for every stride)
                    out_row[lo:hi] = in_row[start : start + hi - lo]
                else:
                    for j in range(hi - lo):
                        out_row[lo + j] = in_row[start + j * sw]
                out_row[hi:] = 0


@njit(parallel=True, cache=True)
def _col2im_planes(dcols, dx, kh, kw, sh, sw, dil_h, dil_w, pad_top, pad_left, out_h, out_w):  # pragma: no cover
    """dcols: (C_in*kH*kW, n*H_out*W_out) -> dx: (n, C_in, H, W); one task per plane (n, ci) gathers its entries.

    The loops mirror :func:`_im2col_rows` (tap, then output row), so the valid range of each tap is computed once per
    task, not once per input row (integer divisions per row and tap took most of the time on AlexNet's 27-wide
    rows). Each plane sums its entries in the fixed (p, q, oh, ow) order.
    """
    n, c_in, height, width = dx.shape
    for task in prange(n * c_in):
        i = task // c_in
        ci = task % c_in
        plane = dx[i, ci]
        plane[:] = 0
        for p in range(kh):
            for q in range(kw):
                r = (ci * kh + p) * kw + q
                offset_w = q * dil_w - pad_left
                lo, hi = _valid_range(out_w, width, sw, offset_w)
                start = max(0, lo * sw + offset_w)  # the input column that output column lo read
                for oh in range(out_h):
                    h = oh * sh + p * dil_h - pad_top
                    if h < 0 or h >= height:
                        continue
                    dx_row = plane[h]
                    base = (i * out_h + oh) * out_w + lo
                    dcols_row = dcols[r, base : base + hi - lo]
                    if sw == 1:
                        for j in range(hi - lo):
                            dx_row[start + j] += dcols_row[j]
                    else:
                        for j in range(hi - lo):
                            dx_row[start + j * sw] += dcols_row[j]


def _index_args(geom: ConvGeometry) -> tuple[int, ...]:
    """The kernels' trailing arguments: kH, kW, sh, sw, dil_h, dil_w, pad_top, pad_left, H_out, W_out."""
    pad_top, _, pad_left, _ = geom.padding
    (sh, sw), (dil_h, dil_w) = geom.stride, geom.dilation
    return (geom.kernel_h, geom.kernel_w, sh, sw, dil_h, dil_w, pad_top, pad_left, geom.out_h, geom.out_w)


def _operand(x: np.ndarray) -> np.ndarray:
    """x itself when C-contiguous and writeable, else a copy (input-sized, not column-sized).

    x is only read, but a read-only or strided array is another Numba type: every kernel would compile once more.
    """
    return np.require(x, requirements=("C", "W"))


def column_buffer(geom: ConvGeometry, samples: int, dtype: np.dtype) -> np.ndarray:
    """A flat buffer for the columns of ``samples`` samples: C_in*kH*kW*samples*H_out*W_out entries (uninitialised)."""
    size = geom.in_channels * geom.kernel_area * samples * geom.out_h * geom.out_w
    return empty(np, "im2col columns (G, C_in/G*kH*kW, n*H_out*W_out)", (size,), dtype)


def im2col_gemm_layout(x: np.ndarray, geom: ConvGeometry, buffer: np.ndarray | None = None) -> np.ndarray:
    """Unfold x straight into the GEMM's layout.

    x: (n, C_in, H, W) (any strides) -> cols: (G, C_in/G*kH*kW, n*H_out*W_out), C-contiguous, a view of ``buffer``
    (flat, at least that many entries, x's dtype) when given. Entries that read the padding are 0.
    """
    n = x.shape[0]
    rows, columns = geom.in_channels * geom.kernel_area, n * geom.out_h * geom.out_w
    if buffer is not None and buffer.size < rows * columns:
        raise ValueError(f"buffer has {buffer.size} entries; the columns of {n} samples need {rows * columns}")
    buffer = column_buffer(geom, n, x.dtype) if buffer is None else buffer
    cols = buffer[: rows * columns].reshape(rows, columns)
    with _launch_guard():
        _im2col_rows(x, cols, *_index_args(geom))
    return cols.reshape(geom.groups, geom.in_channels_per_group * geom.kernel_area, columns)


def col2im_gather(dcols: np.ndarray, geom: ConvGeometry, dx: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`im2col_gemm_layout`, written into ``dx`` and returned.

    dcols: (G, C_in/G*kH*kW, n*H_out*W_out) C-contiguous -> dx: (n, C_in, H, W) (any strides, overwritten):
    ``dx[n, ci, h, w]`` = the sum of every dcols entry that im2col copied from ``x[n, ci, h, w]``.
    """
    rows = geom.in_channels * geom.kernel_area
    with _launch_guard():
        _col2im_planes(dcols.reshape(rows, dcols.shape[-1]), dx, *_index_args(geom))
    return dx


def forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry, chunks: Sequence[slice]
) -> np.ndarray:
    """y = conv2d(x, weight) + bias, one batch chunk at a time (``chunks``: :mod:`im2col`'s workspace rule).

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    """
    g, k, hw = geom.groups, geom.out_channels_per_group, geom.out_h * geom.out_w
    rows = geom.in_channels_per_group * geom.kernel_area
    x = _operand(x)
    y = empty(np, "y (N, C_out, H_out, W_out)", geom.y_shape, x.dtype)
    w_grouped = np.ascontiguousarray(weight).reshape(g, k, rows)  # (G, C_out/G, C_in/G*kH*kW)
    step = max(c.stop - c.start for c in chunks)
    buffer = column_buffer(geom, step, x.dtype)
    if step > 1:  # one-sample chunks need no staging buffer (below)
        y_buffer = empty(np, "y in the GEMM's layout (G, C_out/G, n*H_out*W_out)", (g * k * step * hw,), x.dtype)
    for chunk in chunks:
        n = chunk.stop - chunk.start
        cols = im2col_gemm_layout(x[chunk], geom, buffer)  # (G, C_in/G*kH*kW, n*H_out*W_out)
        # One sample: (G, C_out/G, H_out*W_out) IS y[n]'s NCHW layout, so the GEMM writes y itself.
        out = y[chunk].reshape(g, k, hw) if n == 1 else y_buffer[: g * k * n * hw].reshape(g, k, n * hw)
        # (G, C_out/G, n*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, n*H_out*W_out)
        np.matmul(w_grouped, cols, out=out)
        if n > 1:  # (G, C_out/G, n, H_out*W_out) -> (n, G, C_out/G, H_out*W_out): y's size, not the columns'
            y[chunk] = out.reshape(g, k, n, hw).transpose(2, 0, 1, 3).reshape(n, geom.out_channels, *geom.y_shape[2:])
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry, chunks: Sequence[slice]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients through the same columns, one batch chunk at a time.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).
    Per group, with Y = W @ X (X the columns): dW = dY @ X^T (summed over chunks), dX = W^T @ dY, then col2im.
    """
    g, k, hw = geom.groups, geom.out_channels_per_group, geom.out_h * geom.out_w
    rows = geom.in_channels_per_group * geom.kernel_area
    x = _operand(x)
    dx = empty(np, "dx (N, C_in, H, W)", geom.x_shape, x.dtype)
    w_t = np.ascontiguousarray(weight).reshape(g, k, rows).transpose(0, 2, 1)  # (G, C_in/G*kH*kW, C_out/G)
    # dW^T, (G, C_in/G*kH*kW, C_out/G): the product in this orientation measured 64 ms against 600-880 ms for dW itself
    # (dense-3x3, 64 x 25088 @ 25088 x 576 with the columns transposed; OpenBLAS, 2 threads), so dW is transposed last
    dw_t = np.zeros((g, rows, k), dtype=x.dtype)
    dw_t_chunk = np.empty_like(dw_t) if len(chunks) > 1 else dw_t
    buffer = column_buffer(geom, max(c.stop - c.start for c in chunks), x.dtype)
    for chunk in chunks:
        n = chunk.stop - chunk.start
        cols = im2col_gemm_layout(x[chunk], geom, buffer)  # (G, C_in/G*kH*kW, n*H_out*W_out)
        # (n, C_out, H_out, W_out) -> (G, C_out/G, n*H_out*W_out): dy's size, not the columns'
        dy_grouped = dy[chunk].reshape(n, g, k, hw).transpose(1, 2, 0, 3).reshape(g, k, n * hw)
        # (G, C_in/G*kH*kW, C_out/G) = (G, C_in/G*kH*kW, n*H_out*W_out) @ (G, n*H_out*W_out, C_out/G)
        np.matmul(cols, dy_grouped.transpose(0, 2, 1), out=dw_t_chunk)
        if dw_t_chunk is not dw_t:
            dw_t += dw_t_chunk
        # (G, C_in/G*kH*kW, n*H_out*W_out) = (G, C_in/G*kH*kW, C_out/G) @ (G, C_out/G, n*H_out*W_out), over the columns
        dcols = np.matmul(w_t, dy_grouped, out=cols)
        col2im_gather(dcols, geom, dx[chunk])
    db = dy.sum(axis=(0, 2, 3))
    dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(geom.weight_shape)  # (G, C_out/G, C_in/G*kH*kW)
    return dx, dw, db
