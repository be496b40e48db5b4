"""A wrong ex6: right answers from plain Python loops, no Numba (too slow for real sizes, and not the exercise)."""

from __future__ import annotations


import numpy as np



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
                    total = 0.0
                    for c in range(in_per_group):
                        for p in range(k_h):
                            for q in range(k_w):
                                total += (
                                    xpad[b, first_channel + c, i * sh + p * dh, j * sw + q * dw] * weight[k, c, p, q]
                                )
                    y[b, k, i, j] = total


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
