"""Wrong on purpose: dx computed with the kernel flipped (as if the forward pass were a true convolution)."""
from __future__ import annotations

import numpy as np


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups):
    """dy (N, C_out, H_out, W_out), x (N, C_in, H, W), weight (C_out, C_in/G, kH, kW) -> (dx, dw, db).

    With y[n, k, i, j] = sum_{c, p, q} xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] * weight[k, c, p, q] (+ bias[k]):
    dw[k, c, p, q] = sum_{n, i, j} dy[n, k, i, j] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]
    dxpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] += sum_k dy[n, k, i, j] * weight[k, c, p, q]   (accumulate!)
    db[k] = sum_{n, i, j} dy[n, k, i, j];  dx = dxpad without its padding.
    """
    h, w = x.shape[2:]
    c_out, in_per_group, k_h, k_w = weight.shape
    out_per_group = c_out // groups
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h, out_w = dy.shape[2:]
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxpad = np.zeros_like(xpad)
    dweight = np.zeros_like(weight)
    for g in range(groups):
        ins, outs = slice(g * in_per_group, (g + 1) * in_per_group), slice(g * out_per_group, (g + 1) * out_per_group)
        dy_g = dy[:, outs]  # (N, C_out/G, H_out, W_out)
        for p in range(k_h):
            for q in range(k_w):
                rows = slice(p * dh, p * dh + sh * (out_h - 1) + 1, sh)
                columns = slice(q * dw, q * dw + sw * (out_w - 1) + 1, sw)
                patch = xpad[:, ins, rows, columns]  # (N, C_in/G, H_out, W_out)
                # (C_out/G, C_in/G) = sum over n, i, j of dy_g[n, k, i, j] * patch[n, c, i, j]
                dweight[outs, :, p, q] = np.einsum("nkij,ncij->kc", dy_g, patch)
                # (N, C_in/G, H_out, W_out) += sum over k of dy_g[n, k, i, j] * weight[k, c, p, q]
                dxpad[:, ins, rows, columns] += np.einsum("nkij,kc->ncij", dy_g, weight[outs, :, k_h - 1 - p, k_w - 1 - q])  # BUG: flipped
    dx = dxpad[:, :, ph : ph + h, pw : pw + w].copy()
    return dx, dweight, dy.sum(axis=(0, 2, 3))
