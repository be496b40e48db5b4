"""im2col / col2im and the grouped product as ONE batched GEMM, written once for any array module.

Every function takes the array module ``xp`` (NumPy here, CuPy in :mod:`gconv_edu.backends.cupy_gpu`) and uses only
what both have: ``pad``, strided slicing, ``reshape``/``transpose``, ``matmul`` and ``sum``.

The idea: copy every (dilated, strided) window of the input into a column, so the convolution becomes a matrix
product. With groups the product is block-diagonal, so it is one *batched* GEMM over the G groups::

    # (G, C_out/G, N*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, N*H_out*W_out)

Output size: ``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out). The index rules
(pad widths, the input slice of each kernel tap, the interior crop) are :class:`ConvGeometry`'s.

NumPy arrays take the compiled path (:mod:`gconv_edu.backends.unfold_numba`): Numba writes each column entry once,
straight into the GEMM's layout, col2im is a parallel gather, and the GEMMs write in place (``out=``). CuPy arrays
(and ``compiled=False``) take the portable path below, written against ``xp``.

Workspace: the column matrix holds kH*kW copies of the (padded) input. On the portable path, rearranging it into the
GEMM's group layout (or dcols back into col2im's) copies it once more, so at most :data:`COLUMN_BUFFERS` = 2
column-sized buffers are alive at once; the compiled path writes the layout directly and reuses the columns' buffer
for dcols, so :data:`COMPILED_COLUMN_BUFFERS` = 1 (a chunk may hold twice the samples under the same cap). The batch
is processed in chunks so that those buffers stay under ``workspace_bytes`` (default
:data:`DEFAULT_WORKSPACE_BYTES` = 256 MiB, or the environment variable ``GCONV_IM2COL_WORKSPACE_MB``); a single sample
larger than the cap is still processed, alone. The variable is checked where it is read, before any work: a value that
is not a finite number > 0 (``nan``, ``inf``, ``-1``, ``lots``) is a ValueError naming it.
"""

from __future__ import annotations

import math
import os
from types import ModuleType
from typing import Any

import numpy as np

from ..arrays import allocating, empty, padded, zeros
from ..geometry import ConvGeometry

DESCRIPTION = "im2col + one batched GEMM over groups (NumPy/BLAS), batch chunked to bound the workspace"
DEFAULT_WORKSPACE_BYTES = 256 * 2**20
COLUMN_BUFFERS = 2  # the columns and their rearranged copy (forward); dcols and its rearranged copy (backward)
COMPILED_COLUMN_BUFFERS = 1  # unfold_numba: the columns, written in the GEMM's layout; dcols overwrite them

Array = Any  # numpy.ndarray or cupy.ndarray


def availability() -> str | None:
    """None: always available (NumPy only)."""
    return None


def workspace_limit() -> int:
    """The column-buffer cap in bytes: ``GCONV_IM2COL_WORKSPACE_MB`` (MiB, a finite number > 0) if set, else 256 MiB.

    Raises ValueError naming the variable for anything else (junk, ``nan``, ``inf``, zero or negative).
    """
    value = os.environ.get("GCONV_IM2COL_WORKSPACE_MB")
    if value is None:
        return DEFAULT_WORKSPACE_BYTES
    try:
        megabytes = float(value)
    except ValueError:
        raise ValueError(f"GCONV_IM2COL_WORKSPACE_MB={value!r} must be a number of MiB") from None
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"GCONV_IM2COL_WORKSPACE_MB={value!r} must be a finite number of MiB > 0")
    return max(1, int(megabytes * 2**20))


def batch_chunk(
    geom: ConvGeometry, itemsize: int, workspace_bytes: int | None = None, buffers: int = COLUMN_BUFFERS
) -> int:
    """How many samples one chunk may hold so that its ``buffers`` column buffers fit the workspace cap (at least 1)."""
    limit = workspace_limit() if workspace_bytes is None else workspace_bytes
    return max(1, min(geom.batch, limit // (buffers * column_bytes_per_sample(geom, itemsize))))


def column_bytes_per_sample(geom: ConvGeometry, itemsize: int) -> int:
    """Bytes of one sample's column matrix: ``C_in * kH * kW * H_out * W_out * itemsize``."""
    return geom.in_channels * geom.kernel_area * geom.out_h * geom.out_w * itemsize


# --------------------------------------------------------------------------- im2col / col2im
def im2col(x: Array, geom: ConvGeometry, xp: ModuleType = np) -> Array:
    """Unfold every window into a column.

    x: (N, C, H, W) -> cols: (N, C, kH, kW, H_out, W_out), where
    ``cols[n, ci, p, q, oh, ow] = xpad[n, ci, oh*sh + p*dil_h, ow*sw + q*dil_w]``.
    One strided slice per kernel tap (:meth:`ConvGeometry.tap`): kH*kW copies, each of the size of the output.
    """
    xpad = padded(xp, x, geom.pad_widths)  # (N, C, H + pad_top + pad_bottom, W + pad_left + pad_right)
    cols = empty(xp, "im2col columns", _columns_shape(geom, x.shape[0]), x.dtype)
    for p in range(geom.kernel_h):
        for q in range(geom.kernel_w):
            rows, columns = geom.tap(p, q)
            cols[:, :, p, q] = xpad[:, :, rows, columns]
    return cols


def col2im(cols: Array, geom: ConvGeometry, xp: ModuleType = np) -> Array:
    """The adjoint of :func:`im2col`: add every column entry back to the input pixel it was copied from.

    cols: (N, C, kH, kW, H_out, W_out) -> x: (N, C, H, W). Windows overlap, so it ACCUMULATES (``+=``);
    overwriting would drop the contributions of all but the last window. Padding's entries are dropped.
    """
    xpad = zeros(xp, "col2im's padded dx", (*cols.shape[:2], *geom.padded_size), cols.dtype)
    for p in range(geom.kernel_h):
        for q in range(geom.kernel_w):
            rows, columns = geom.tap(p, q)
            xpad[:, :, rows, columns] += cols[:, :, p, q]
    return xpad[geom.interior]


def _columns_shape(geom: ConvGeometry, n: int) -> tuple[int, ...]:
    """Shape of the column matrix of n samples: (n, C_in, kH, kW, H_out, W_out)."""
    return (n, geom.in_channels, geom.kernel_h, geom.kernel_w, geom.out_h, geom.out_w)


def _grouped_columns(cols: Array, geom: ConvGeometry) -> Array:
    """(N, C_in, kH, kW, H_out, W_out) -> (G, C_in/G*kH*kW, N*H_out*W_out): the right operand of the batched GEMM."""
    n = cols.shape[0]
    g, rows = geom.groups, geom.in_channels_per_group * geom.kernel_area
    # (N, G, C_in/G*kH*kW, H_out*W_out) -> (G, C_in/G*kH*kW, N, H_out*W_out)
    grouped = cols.reshape(n, g, rows, geom.out_h * geom.out_w).transpose(1, 2, 0, 3)
    with allocating("im2col columns, regrouped for the GEMM", cols.shape, cols.dtype):
        return grouped.reshape(g, rows, n * geom.out_h * geom.out_w)


def _grouped_output(y: Array, geom: ConvGeometry) -> Array:
    """(N, C_out, H_out, W_out) -> (G, C_out/G, N*H_out*W_out), the layout of the GEMM's result."""
    n = y.shape[0]
    g, k = geom.groups, geom.out_channels_per_group
    # (N, G, C_out/G, H_out*W_out) -> (G, C_out/G, N, H_out*W_out)
    return y.reshape(n, g, k, geom.out_h * geom.out_w).transpose(1, 2, 0, 3).reshape(g, k, -1)


def _ungroup_output(y_grouped: Array, geom: ConvGeometry, n: int) -> Array:
    """Inverse of :func:`_grouped_output`: (G, C_out/G, N*H_out*W_out) -> (N, C_out, H_out, W_out)."""
    g, k = geom.groups, geom.out_channels_per_group
    # (G, C_out/G, N, H_out, W_out) -> (N, G, C_out/G, H_out, W_out)
    y = y_grouped.reshape(g, k, n, geom.out_h, geom.out_w).transpose(2, 0, 1, 3, 4)
    return y.reshape(n, geom.out_channels, geom.out_h, geom.out_w)


def _grouped_weight(weight: Array, geom: ConvGeometry) -> Array:
    """(C_out, C_in/G, kH, kW) -> (G, C_out/G, C_in/G*kH*kW): the left operand of the batched GEMM."""
    return weight.reshape(geom.groups, geom.out_channels_per_group, geom.in_channels_per_group * geom.kernel_area)


def _chunks(geom: ConvGeometry, itemsize: int, workspace_bytes: int | None, buffers: int) -> list[slice]:
    step = batch_chunk(geom, itemsize, workspace_bytes, buffers)
    return [slice(start, min(start + step, geom.batch)) for start in range(0, geom.batch, step)]


def _use_compiled(xp: ModuleType, compiled: bool | None) -> bool:
    """Whether to take :mod:`unfold_numba`'s path: by default exactly when the arrays are NumPy's."""
    if compiled is None:
        return xp is np
    if compiled and xp is not np:
        raise ValueError(f"compiled=True needs NumPy arrays (xp=numpy); got xp={xp.__name__}")
    return bool(compiled)


# --------------------------------------------------------------------------- forward / backward
def forward(
    x: Array,
    weight: Array,
    bias: Array | None,
    geom: ConvGeometry,
    xp: ModuleType = np,
    workspace_bytes: int | None = None,
    compiled: bool | None = None,
) -> Array:
    """y = conv2d(x, weight) + bias via im2col and one batched GEMM per batch chunk.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    ``compiled``: the Numba unfold (:mod:`unfold_numba`) or the portable ``xp`` path; None = Numba for NumPy arrays.
    """
    if _use_compiled(xp, compiled):
        from . import unfold_numba

        chunks = _chunks(geom, x.dtype.itemsize, workspace_bytes, COMPILED_COLUMN_BUFFERS)  # before any work
        return unfold_numba.forward(x, weight, bias, geom, chunks)
    chunks = _chunks(geom, x.dtype.itemsize, workspace_bytes, COLUMN_BUFFERS)  # reads GCONV_IM2COL_WORKSPACE_MB
    y = empty(xp, "y (N, C_out, H_out, W_out)", geom.y_shape, x.dtype)
    w_grouped = _grouped_weight(weight, geom)
    for chunk in chunks:
        cols = _grouped_columns(im2col(x[chunk], geom, xp), geom)
        # (G, C_out/G, n*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, n*H_out*W_out)
        y_grouped = xp.matmul(w_grouped, cols)
        y[chunk] = _ungroup_output(y_grouped, geom, chunk.stop - chunk.start)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def backward(
    dy: Array,
    x: Array,
    weight: Array,
    geom: ConvGeometry,
    xp: ModuleType = np,
    workspace_bytes: int | None = None,
    compiled: bool | None = None,
) -> tuple[Array, Array, Array]:
    """Gradients through the same columns.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).

    With Y = W @ X (per group; X the columns): dW = dY @ X^T summed over chunks, dX = W^T @ dY, then col2im.
    ``compiled``: as in :func:`forward`.
    """
    if _use_compiled(xp, compiled):
        from . import unfold_numba

        chunks = _chunks(geom, x.dtype.itemsize, workspace_bytes, COMPILED_COLUMN_BUFFERS)  # before any work
        return unfold_numba.backward(dy, x, weight, geom, chunks)
    chunks = _chunks(geom, x.dtype.itemsize, workspace_bytes, COLUMN_BUFFERS)  # reads GCONV_IM2COL_WORKSPACE_MB
    dx = empty(xp, "dx (N, C_in, H, W)", geom.x_shape, x.dtype)
    w_grouped = _grouped_weight(weight, geom)
    dw_grouped = xp.zeros_like(w_grouped)
    for chunk in chunks:
        n = chunk.stop - chunk.start
        cols = _grouped_columns(im2col(x[chunk], geom, xp), geom)
        dy_grouped = _grouped_output(dy[chunk], geom)  # (G, C_out/G, n*H_out*W_out)
        # (G, C_out/G, C_in/G*kH*kW) += (G, C_out/G, n*H_out*W_out) @ (G, n*H_out*W_out, C_in/G*kH*kW)
        dw_grouped += xp.matmul(dy_grouped, cols.transpose(0, 2, 1))
        del cols  # free before dcols and its copy exist: two column buffers at a time, not three
        # (G, C_in/G*kH*kW, n*H_out*W_out) = (G, C_in/G*kH*kW, C_out/G) @ (G, C_out/G, n*H_out*W_out)
        with allocating("dcols (the columns' gradient)", _columns_shape(geom, n), x.dtype):
            dcols = xp.matmul(w_grouped.transpose(0, 2, 1), dy_grouped)
        # (G, C_in/G, kH, kW, n, H_out, W_out) -> (n, G, C_in/G, kH, kW, H_out, W_out)
        #                                      -> (n, C_in, kH, kW, H_out, W_out)
        dcols = dcols.reshape(
            geom.groups, geom.in_channels_per_group, geom.kernel_h, geom.kernel_w, n, geom.out_h, geom.out_w
        ).transpose(4, 0, 1, 2, 3, 5, 6)
        dx[chunk] = col2im(
            dcols.reshape(n, geom.in_channels, geom.kernel_h, geom.kernel_w, geom.out_h, geom.out_w), geom, xp
        )
    dw = dw_grouped.reshape(geom.weight_shape)
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
