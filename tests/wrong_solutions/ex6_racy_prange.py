"""Wrong on purpose: a data race. prange over the input channel, every thread adding into the same output value.
Right with 1-3 channels per group (the visible cases) most of the time; wrong at C_in/G = 64 (a hidden case)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True)
def _conv_loops(xpad, weight, y, sh, sw, dh, dw, groups):
    """y[n, k, i, j] = sum_{c, p, q} xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] * weight[k, c, p, q] (y pre-zeroed)."""
    n, c_out, out_h, out_w = y.shape
    in_per_group, k_h, k_w = weight.shape[1], weight.shape[2], weight.shape[3]
    out_per_group = c_out // groups
    for b in range(n):
        for k in range(c_out):
            first_channel = (k // out_per_group) * in_per_group
            for i in range(out_h):
                for j in range(out_w):
                    for c in numba.prange(in_per_group):  # BUG: threads race on y[b, k, i, j]
                        for p in range(k_h):
                            for q in range(k_w):
                                y[b, k, i, j] += (
                                    xpad[b, first_channel + c, i * sh + p * dh, j * sw + q * dw] * weight[k, c, p, q]
                                )


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """x (N, C_in, H, W), weight (C_out, C_in/G, kH, kW), bias (C_out,) or None -> y (N, C_out, H_out, W_out)."""
    n, _, h, w = x.shape
    c_out, _, k_h, k_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h = (h + 2 * ph - dh * (k_h - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (k_w - 1) - 1) // sw + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    _conv_loops(xpad, weight, y, sh, sw, dh, dw, groups)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y
