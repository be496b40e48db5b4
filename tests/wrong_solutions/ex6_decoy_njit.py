"""Wrong on purpose (abuse): @njit on a one-line helper; the convolution's loops run in NumPy/Python."""

import numba
import numpy as np


@numba.njit
def _add_bias(y, bias):
    return y + bias


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    n, _, h, w = x.shape
    c_out, in_per_group, k_h, k_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    out_h = (h + 2 * ph - dh * (k_h - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (k_w - 1) - 1) // sw + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_per_group = c_out // groups
    y = np.zeros((n, c_out, out_h, out_w), dtype=x.dtype)
    for g in range(groups):
        ins = xpad[:, g * in_per_group : (g + 1) * in_per_group]
        outs = slice(g * out_per_group, (g + 1) * out_per_group)
        for p in range(k_h):
            for q in range(k_w):
                patch = ins[:, :, p * dh : p * dh + sh * (out_h - 1) + 1 : sh, q * dw : q * dw + sw * (out_w - 1) + 1 : sw]
                y[:, outs] += np.einsum("ncij,kc->nkij", patch, weight[outs, :, p, q])
    if bias is not None:
        y = _add_bias(y, bias.reshape(1, -1, 1, 1)).astype(x.dtype)
    else:
        y = _add_bias(y, np.zeros((1, 1, 1, 1), dtype=x.dtype))
    return y
