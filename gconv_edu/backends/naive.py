"""The textbook definition of grouped convolution, loop by loop (tiny sizes only).

This is the code to read first. Nothing is optimised that would hurt clarity: one Python loop per index, and a dot
product over the (dilated) window of the filter's own group.

    y[n, k, i, j] = b[k] + sum_{c, p, q} w[k, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]

where ``g = k // (C_out/G)`` is the filter's group and ``Cg = C_in/G`` its number of input channels.
Output size: ``H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1`` (likewise W_out).
"""

from __future__ import annotations

import numpy as np

from ..geometry import ConvGeometry
from .im2col import pad

DESCRIPTION = "textbook loops in Python (batch, group, filter, output row, output column)"


def availability() -> str | None:
    """None: always available (NumPy only)."""
    return None


def _window(geom: ConvGeometry, i: int, j: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that output pixel (i, j) sees, dilation included."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    extent_h, extent_w = geom.dilated_kernel
    return slice(i * sh, i * sh + extent_h, dh), slice(j * sw, j * sw + extent_w, dw)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
    """y = conv2d(x, weight) + bias.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    """
    xpad = pad(x, geom)  # zeros around: (N, C_in, H + top + bottom, W + left + right)
    y = np.zeros(geom.y_shape, dtype=x.dtype)
    cin_g, cout_g = geom.in_channels_per_group, geom.out_channels_per_group
    for n in range(geom.batch):
        for g in range(geom.groups):
            group_inputs = slice(g * cin_g, (g + 1) * cin_g)  # the only channels this group's filters see
            for k in range(g * cout_g, (g + 1) * cout_g):
                for i in range(geom.out_h):
                    for j in range(geom.out_w):
                        rows, cols = _window(geom, i, j)
                        window = xpad[n, group_inputs, rows, cols]  # (C_in/G, kH, kW)
                        y[n, k, i, j] = np.sum(window * weight[k])
                        if bias is not None:
                            y[n, k, i, j] += bias[k]
    return y


def backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of L with respect to x, weight and bias, given dy = dL/dy.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).

    Each output pixel was ``sum(window * w[k])``, so it sends ``dy * w[k]`` back to its window (dx) and
    ``dy * window`` to its filter (dw). Windows overlap, hence ``+=``.

    The sums are accumulated in float64 and cast back at the end: a running float32 sum over N*H_out*W_out terms
    loses digits (one term at a time), which the other backends avoid with pairwise or blocked sums.
    """
    xpad = pad(x, geom)  # zeros around: (N, C_in, H + top + bottom, W + left + right)
    dxpad = np.zeros(xpad.shape)  # float64 accumulators
    dw = np.zeros(weight.shape)
    db = np.zeros(geom.out_channels)
    cin_g, cout_g = geom.in_channels_per_group, geom.out_channels_per_group
    for n in range(geom.batch):
        for g in range(geom.groups):
            group_inputs = slice(g * cin_g, (g + 1) * cin_g)
            for k in range(g * cout_g, (g + 1) * cout_g):
                for i in range(geom.out_h):
                    for j in range(geom.out_w):
                        rows, cols = _window(geom, i, j)
                        grad = dy[n, k, i, j]
                        dxpad[n, group_inputs, rows, cols] += grad * weight[k]
                        dw[k] += grad * xpad[n, group_inputs, rows, cols]
                        db[k] += grad
    top, _, left, _ = geom.padding
    dx = dxpad[:, :, top : top + geom.height, left : left + geom.width]  # drop the padding's gradient
    return dx.astype(x.dtype), dw.astype(weight.dtype), db.astype(dy.dtype)
