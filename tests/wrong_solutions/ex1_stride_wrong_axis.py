"""Wrong on purpose: the vertical stride used for both axes (W_out and the column index)."""

from __future__ import annotations

import numpy as np


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """y[n, k, i, j] = bias[k] + sum_{c, p, q} xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] * weight[k, c, p, q],
    where g = k // (C_out/G) and Cg = C_in/G. Shapes: x (N, C_in, H, W) -> y (N, C_out, H_out, W_out),
    H_out = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1.
    """
    n, _, h, w = x.shape
    c_out, in_per_group, k_h, k_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_per_group = c_out // groups
    out_h = (h + 2 * ph - dh * (k_h - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (k_w - 1) - 1) // sh + 1  # BUG: sh
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    for b in range(n):
        for k in range(c_out):
            g = k // out_per_group
            channels = xpad[b, g * in_per_group : (g + 1) * in_per_group]  # (C_in/G, H + 2ph, W + 2pw)
            for i in range(out_h):
                for j in range(out_w):
                    # (C_in/G, kH, kW): the dilated window under output pixel (i, j)
                    window = channels[
                        :, i * sh : i * sh + dh * (k_h - 1) + 1 : dh, j * sw : j * sw + dw * (k_w - 1) + 1 : dw
                    ]
                    y[b, k, i, j] = np.sum(window * weight[k])
            if bias is not None:
                y[b, k] += bias[k]
    return y
