"""The textbook definition of grouped convolution, loop by loop (tiny sizes only).

This is the code to read first. Nothing is optimised that would hurt clarity: one Python loop per index, and a dot
product over the (dilated) window of the filter's own group.

    y[n, k, oh, ow] = b[k] + sum_{c, p, q} w[k, c, p, q] * xpad[n, g*in_per_group + c, oh*sh + p*dil_h, ow*sw + q*dil_w]

where ``g = k // out_per_group`` is the filter's group, ``in_per_group = C_in/G`` its number of input channels and
``ci = g*in_per_group + c`` the absolute input channel. Output size:
``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out).
The index rules (padding, the window of an output pixel, the interior crop) are :class:`ConvGeometry`'s.
"""

from __future__ import annotations

import numpy as np

from ..arrays import padded, zeros
from ..geometry import ConvGeometry

DESCRIPTION = "textbook loops in Python (batch, group, filter, output row, output column)"


def availability() -> str | None:
    """None: always available (NumPy only)."""
    return None


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
    """y = conv2d(x, weight) + bias.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    """
    y = zeros(np, "y (N, C_out, H_out, W_out)", geom.y_shape, x.dtype)
    xpad = padded(np, x, geom.pad_widths)  # zeros around: (N, C_in, H + pad_top + pad_bottom, W + pad_left + pad_right)
    in_per_group, out_per_group = geom.in_channels_per_group, geom.out_channels_per_group
    for n in range(geom.batch):
        for g in range(geom.groups):
            group_inputs = slice(g * in_per_group, (g + 1) * in_per_group)  # the only channels this group's filters see
            for k in range(g * out_per_group, (g + 1) * out_per_group):
                for oh in range(geom.out_h):
                    for ow in range(geom.out_w):
                        rows, cols = geom.window(oh, ow)
                        window = xpad[n, group_inputs, rows, cols]  # (C_in/G, kH, kW)
                        y[n, k, oh, ow] = np.sum(window * weight[k])
                        if bias is not None:
                            y[n, k, oh, ow] += bias[k]
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
    xpad = padded(np, x, geom.pad_widths)  # zeros around: (N, C_in, H + pad_top + pad_bottom, W + pad_left + pad_right)
    dxpad = zeros(np, "dx, padded (float64 accumulator)", xpad.shape, np.float64)
    dw = np.zeros(weight.shape)
    db = np.zeros(geom.out_channels)
    in_per_group, out_per_group = geom.in_channels_per_group, geom.out_channels_per_group
    for n in range(geom.batch):
        for g in range(geom.groups):
            group_inputs = slice(g * in_per_group, (g + 1) * in_per_group)
            for k in range(g * out_per_group, (g + 1) * out_per_group):
                for oh in range(geom.out_h):
                    for ow in range(geom.out_w):
                        rows, cols = geom.window(oh, ow)
                        grad = dy[n, k, oh, ow]
                        dxpad[n, group_inputs, rows, cols] += grad * weight[k]
                        dw[k] += grad * xpad[n, group_inputs, rows, cols]
                        db[k] += grad
    dx = dxpad[geom.interior]  # drop the padding's gradient: (N, C_in, H, W)
    return dx.astype(x.dtype), dw.astype(weight.dtype), db.astype(dy.dtype)
