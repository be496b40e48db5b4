"""Reference solution of ex3: im2col and the grouped forward pass as one batched matrix product."""

from __future__ import annotations

import numpy as np


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (N, C*kH*kW, H_out*W_out), rows ordered (channel, kernel row, kernel column):
    cols[n, (c*kH + p)*kW + q, i*W_out + j] = xpad[n, c, i*sh + p*dh, j*sw + q*dw].
    """
    n, c, h, w = x.shape
    (k_h, k_w), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    out_h = (h + 2 * ph - dh * (k_h - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (k_w - 1) - 1) // sw + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, k_h, k_w, out_h, out_w), dtype=x.dtype)
    for p in range(k_h):
        for q in range(k_w):
            # every output pixel's tap (p, q) at once: a strided slice of the padded input
            cols[:, :, p, q] = xpad[
                :, :, p * dh : p * dh + sh * (out_h - 1) + 1 : sh, q * dw : q * dw + sw * (out_w - 1) + 1 : sw
            ]
    return cols.reshape(n, c * k_h * k_w, out_h * out_w)


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """y (N, C_out, H_out, W_out) = per group g: W_g (C_out/G, C_in/G*kH*kW) @ cols_g (C_in/G*kH*kW, H_out*W_out)."""
    n, _, h, w = x.shape
    c_out, in_per_group, k_h, k_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h = (h + 2 * ph - dh * (k_h - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (k_w - 1) - 1) // sw + 1
    cols = im2col(x, (k_h, k_w), stride, padding, dilation)  # (N, C_in*kH*kW, L)
    # (N, G, C_in/G*kH*kW, L): rows of one group are contiguous because rows are ordered channel first
    cols = cols.reshape(n, groups, in_per_group * k_h * k_w, out_h * out_w)
    w_grouped = weight.reshape(groups, c_out // groups, in_per_group * k_h * k_w)  # (G, C_out/G, C_in/G*kH*kW)
    # (N, G, C_out/G, L) = (G, C_out/G, C_in/G*kH*kW) @ (N, G, C_in/G*kH*kW, L), broadcast over N
    y = np.matmul(w_grouped, cols).reshape(n, c_out, out_h, out_w)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y.astype(x.dtype, copy=False)
