"""A wrong ex4: im2col-based backward whose col2im overwrites instead of accumulating (overlapping windows lose)."""

import numpy as np


def im2col(xpad, k_h, k_w, sh, sw, dh, dw, out_h, out_w):
    n, c = xpad.shape[:2]
    cols = np.empty((n, c, k_h, k_w, out_h, out_w), dtype=xpad.dtype)
    for p in range(k_h):
        for q in range(k_w):
            cols[:, :, p, q] = xpad[:, :, p * dh : p * dh + sh * (out_h - 1) + 1 : sh, q * dw : q * dw + sw * (out_w - 1) + 1 : sw]
    return cols


def col2im(cols, padded_shape, sh, sw, dh, dw):
    n, c, k_h, k_w, out_h, out_w = cols.shape
    xpad = np.zeros(padded_shape, dtype=cols.dtype)
    for p in range(k_h):
        for q in range(k_w):
            # BUG: '=' instead of '+=': where windows overlap, only the last tap's contribution survives
            xpad[:, :, p * dh : p * dh + sh * (out_h - 1) + 1 : sh, q * dw : q * dw + sw * (out_w - 1) + 1 : sw] = cols[:, :, p, q]
    return xpad


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups):
    n, c_in, h, w = x.shape
    c_out, cg, k_h, k_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h, out_w = dy.shape[2:]
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = im2col(xpad, k_h, k_w, sh, sw, dh, dw, out_h, out_w)
    cols = cols.reshape(n, groups, cg * k_h * k_w, out_h * out_w)  # (N, G, Cg*kH*kW, L)
    w_g = weight.reshape(groups, c_out // groups, cg * k_h * k_w)  # (G, K, R)
    dy_g = dy.reshape(n, groups, c_out // groups, out_h * out_w)  # (N, G, K, L)
    dweight = np.einsum("ngkl,ngrl->gkr", dy_g, cols).reshape(weight.shape)
    dcols = np.einsum("gkr,ngkl->ngrl", w_g, dy_g).reshape(n, c_in, k_h, k_w, out_h, out_w)
    dxpad = col2im(dcols, xpad.shape, sh, sw, dh, dw)
    dx = dxpad[:, :, ph : ph + h, pw : pw + w].copy()
    return dx, dweight.astype(x.dtype), dy.sum(axis=(0, 2, 3))
