"""An independent float64 reference for grouped convolution, written apart from every backend.

It uses ``sliding_window_view`` + ``einsum`` and knows nothing of gconv_edu except nothing: padding, output size and
grouping are derived here again on purpose, from the PyTorch definition.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def pads(padding, kernel, dilation, stride):
    """(top, bottom, left, right) for an int, a pair, 'valid' or 'same'."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        assert _pair(stride) == (1, 1)
        out = []
        for k, d in zip(kernel, _pair(dilation)):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _windows(x, kernel, stride, padding, dilation):
    """(N, C, H_out, W_out, kH, kW) windows of the padded input, float64."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    top, bottom, left, right = pads(padding, kernel, dilation, stride)
    xpad = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    extent = ((kernel[0] - 1) * dh + 1, (kernel[1] - 1) * dw + 1)
    windows = sliding_window_view(xpad, extent, axis=(2, 3))  # (N, C, Hp-eh+1, Wp-ew+1, eh, ew)
    return windows[:, :, ::sh, ::sw, ::dh, ::dw], xpad.shape


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    n, _c_in = x.shape[:2]
    c_out, cg, kh, kw = weight.shape
    windows, _ = _windows(x, (kh, kw), stride, padding, dilation)
    oh, ow = windows.shape[2:4]
    windows = windows.reshape(n, groups, cg, oh, ow, kh, kw)
    w = np.asarray(weight, dtype=np.float64).reshape(groups, c_out // groups, cg, kh, kw)
    y = np.einsum("ngchwij,gkcij->ngkhw", windows, w).reshape(n, c_out, oh, ow)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y


def conv2d_backward(dy, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) in float64: dw and db by einsum over the windows; dx by scattering the window gradients."""
    n, c_in, h, w_ = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw_) = _pair(stride), _pair(dilation)
    windows, padded_shape = _windows(x, (kh, kw), stride, padding, dilation)
    oh, ow = windows.shape[2:4]
    dy = np.asarray(dy, dtype=np.float64).reshape(n, groups, c_out // groups, oh, ow)
    wg = np.asarray(weight, dtype=np.float64).reshape(groups, c_out // groups, cg, kh, kw)
    dw = np.einsum("ngkhw,ngchwij->gkcij", dy, windows.reshape(n, groups, cg, oh, ow, kh, kw))
    dwin = np.einsum("ngkhw,gkcij->ngchwij", dy, wg).reshape(n, c_in, oh, ow, kh, kw)
    dxpad = np.zeros(padded_shape)
    for i in range(kh):
        for j in range(kw):
            for r in range(oh):
                dxpad[:, :, r * sh + i * dh, j * dw_ : j * dw_ + sw * (ow - 1) + 1 : sw] += dwin[:, :, r, :, i, j]
    top, _, left, _ = pads(padding, (kh, kw), dilation, stride)
    dx = dxpad[:, :, top : top + h, left : left + w_]
    return dx, dw.reshape(weight.shape), dy.sum(axis=(0, 3, 4)).reshape(c_out)
