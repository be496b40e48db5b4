"""Direct convolution loops compiled by Numba: parallel over what each thread owns, no races, no atomics.

The same definition as :mod:`gconv_edu.backends.naive`, with the loops reordered for the machine::

    y[n, k, i, j] = b[k] + sum_{c, p, q} w[k, c, p, q] * x[n, g*Cg + c, i*sh + p*dh - pad_top, j*sw + q*dw - pad_left]

Output size: ``H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1`` (likewise W_out).

Who owns what (so that no two threads ever write the same element):

* forward: one task per (sample n, block of output channels of one group) writes ``y[n, block]``;
* dx:      one task per (sample n, input channel c) writes ``dx[n, c]``;
* dw, db:  one task per output channel k writes ``dw[k]`` and ``db[k]``.

Every innermost loop runs along a contiguous row (``j``, an output column), so LLVM turns it into SIMD code. Padding is
never materialised: for each kernel column ``q`` the range of output columns whose input column lies inside the image
is computed once (:func:`_valid_range`), so the innermost loop has no bounds test. Accumulation happens in the arrays'
dtype, in a fixed order that does not depend on the number of threads (results are bit-identical for 1 and 2 threads).

Numba's thread count is whatever the caller set with ``numba.set_num_threads``; kernels are compiled on first use
(``cache=True`` stores them next to this file, or in ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import numpy as np

from ..geometry import ConvGeometry

DESCRIPTION = "direct loops compiled by Numba (parallel over samples x channels, SIMD along output rows, cached)"

try:
    import numba
    from numba import njit, prange

    _IMPORT_ERROR: str | None = None
except ImportError as error:  # the backend reports why it is unavailable instead of breaking the package
    numba = None
    _IMPORT_ERROR = f"numba not importable ({error})"

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return (lambda function: function) if not args or not callable(args[0]) else args[0]

    prange = range

# Output channels one forward task computes together: each input row loaded is reused for this many filters.
CHANNEL_BLOCK = 4
# Only "contract": lets LLVM fuse w*x + y into one FMA instruction (one rounding instead of two). No reassociation
# (sums keep their order, so results do not depend on the thread count) and no nnan/ninf (NaN and inf propagate).
FASTMATH = {"contract"}


def availability() -> str | None:
    """None when Numba imports, else why not."""
    return _IMPORT_ERROR


# --------------------------------------------------------------------------- index helpers
@njit(cache=True, inline="always")
def _valid_range(out_len: int, in_len: int, stride: int, offset: int) -> tuple[int, int]:
    """Output positions o in [lo, hi) whose input position ``o*stride + offset`` lies in [0, in_len)."""
    lo = max(0, -(offset // stride))  # ceil(-offset / stride) for stride > 0
    hi = min(out_len, (in_len - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True, inline="always")
def _first_input(lo: int, stride: int, offset: int) -> int:
    """Input position read by output position ``lo``: ``lo*stride + offset``, which :func:`_valid_range` made >= 0.

    The ``max(0, ...)`` changes nothing but tells LLVM the index is not negative. Without it Numba's negative-index
    wraparound test stays in the innermost loop and LLVM does not vectorise it.
    """
    return max(0, lo * stride + offset)


# --------------------------------------------------------------------------- forward
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _forward_kernel(x, weight, y, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover - compiled
    """y[n, k] for every (n, block of output channels); x, weight contiguous, y zero-filled or holding the bias."""
    n_batch, c_in, height, width = x.shape
    c_out, cin_g, k_h, k_w = weight.shape
    out_h, out_w = y.shape[2], y.shape[3]
    cout_g = c_out // (c_in // cin_g)
    block = CHANNEL_BLOCK if cout_g % CHANNEL_BLOCK == 0 else 1
    blocks_per_sample = c_out // block
    for task in prange(n_batch * blocks_per_sample):
        n = task // blocks_per_sample
        k = (task % blocks_per_sample) * block  # first output channel of this block (all in one group)
        first_in = (k // cout_g) * cin_g  # first input channel of that group
        for i in range(out_h):
            for c in range(cin_g):
                ci = first_in + c
                for p in range(k_h):
                    row = i * stride_h + p * dil_h - pad_top
                    if row < 0 or row >= height:
                        continue  # this kernel row reads padding (zeros)
                    for q in range(k_w):
                        offset = q * dil_w - pad_left
                        lo, hi = _valid_range(out_w, width, stride_w, offset)
                        start = _first_input(lo, stride_w, offset)
                        if block == 1:
                            w0 = weight[k, c, p, q]
                            if stride_w == 1:  # contiguous input row: the case LLVM vectorises
                                for j in range(hi - lo):
                                    y[n, k, i, lo + j] += w0 * x[n, ci, row, start + j]
                            else:
                                for j in range(hi - lo):
                                    y[n, k, i, lo + j] += w0 * x[n, ci, row, start + j * stride_w]
                        elif stride_w == 1:
                            w0, w1 = weight[k, c, p, q], weight[k + 1, c, p, q]
                            w2, w3 = weight[k + 2, c, p, q], weight[k + 3, c, p, q]
                            for j in range(hi - lo):
                                value = x[n, ci, row, start + j]
                                y[n, k, i, lo + j] += w0 * value
                                y[n, k + 1, i, lo + j] += w1 * value
                                y[n, k + 2, i, lo + j] += w2 * value
                                y[n, k + 3, i, lo + j] += w3 * value
                        else:
                            # four filters share every load of x (register blocking over output channels)
                            w0, w1 = weight[k, c, p, q], weight[k + 1, c, p, q]
                            w2, w3 = weight[k + 2, c, p, q], weight[k + 3, c, p, q]
                            for j in range(hi - lo):
                                value = x[n, ci, row, start + j * stride_w]
                                y[n, k, i, lo + j] += w0 * value
                                y[n, k + 1, i, lo + j] += w1 * value
                                y[n, k + 2, i, lo + j] += w2 * value
                                y[n, k + 3, i, lo + j] += w3 * value


# --------------------------------------------------------------------------- backward
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _backward_input_kernel(dy, weight, dx, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover
    """dx[n, c] for every (n, input channel): each dy row sends ``w * dy`` back to the input row it read."""
    n_batch, c_in, height, width = dx.shape
    c_out, cin_g, k_h, k_w = weight.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    cout_g = c_out // (c_in // cin_g)
    for task in prange(n_batch * c_in):
        n, ci = task // c_in, task % c_in
        g, c = ci // cin_g, ci % cin_g  # group, and position of this channel inside the group's filters
        for k in range(g * cout_g, (g + 1) * cout_g):
            for i in range(out_h):
                for p in range(k_h):
                    row = i * stride_h + p * dil_h - pad_top
                    if row < 0 or row >= height:
                        continue
                    for q in range(k_w):
                        offset = q * dil_w - pad_left
                        lo, hi = _valid_range(out_w, width, stride_w, offset)
                        start = _first_input(lo, stride_w, offset)
                        w0 = weight[k, c, p, q]
                        if stride_w == 1:
                            for j in range(hi - lo):
                                dx[n, ci, row, start + j] += w0 * dy[n, k, i, lo + j]
                        else:
                            for j in range(hi - lo):
                                dx[n, ci, row, start + j * stride_w] += w0 * dy[n, k, i, lo + j]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _backward_weight_kernel(dy, x, dw, db, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover
    """dw[k] and db[k] for every output channel k.

    dw[k, c, p, q] is a dot product over (n, i, j). A float dot product only vectorises if the compiler may reorder
    the additions (``fastmath``); instead each tap gets a row of partial sums ``partial[c, p, q, j]`` (an elementwise
    update, which vectorises as is) that is summed once at the end.
    """
    n_batch, c_in, height, width = x.shape
    c_out, cin_g, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    cout_g = c_out // (c_in // cin_g)
    for k in prange(c_out):
        first_in = (k // cout_g) * cin_g
        partial = np.zeros((cin_g, k_h, k_w, out_w), dtype=dw.dtype)
        partial_bias = np.zeros(out_w, dtype=dw.dtype)
        for n in range(n_batch):
            for i in range(out_h):
                for j in range(out_w):
                    partial_bias[j] += dy[n, k, i, j]
                for c in range(cin_g):
                    ci = first_in + c
                    for p in range(k_h):
                        row = i * stride_h + p * dil_h - pad_top
                        if row < 0 or row >= height:
                            continue
                        for q in range(k_w):
                            offset = q * dil_w - pad_left
                            lo, hi = _valid_range(out_w, width, stride_w, offset)
                            start = _first_input(lo, stride_w, offset)
                            if stride_w == 1:
                                for j in range(hi - lo):
                                    partial[c, p, q, lo + j] += dy[n, k, i, lo + j] * x[n, ci, row, start + j]
                            else:
                                for j in range(hi - lo):
                                    value = x[n, ci, row, start + j * stride_w]
                                    partial[c, p, q, lo + j] += dy[n, k, i, lo + j] * value
        for c in range(cin_g):
            for p in range(k_h):
                for q in range(k_w):
                    dw[k, c, p, q] = partial[c, p, q].sum()
        db[k] = partial_bias.sum()


# --------------------------------------------------------------------------- entry points
def _geometry_args(geom: ConvGeometry) -> tuple[int, ...]:
    (stride_h, stride_w), (dil_h, dil_w) = geom.stride, geom.dilation
    top, _, left, _ = geom.padding  # bottom/right padding only shows up in H_out, W_out (the output's shape)
    return stride_h, stride_w, dil_h, dil_w, top, left


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
    """y = conv2d(x, weight) + bias with the direct loops.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out),
    ``H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1`` (likewise W_out).
    """
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    if bias is None:
        y = np.zeros(geom.y_shape, dtype=x.dtype)
    else:  # start from the bias, so the kernel only accumulates
        y = np.empty(geom.y_shape, dtype=x.dtype)
        y[...] = bias.reshape(1, -1, 1, 1)
    _forward_kernel(x, weight, y, *_geometry_args(geom))
    return y


def backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients with the direct loops.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).
    """
    dy, x, weight = np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(weight)
    dx = np.zeros(geom.x_shape, dtype=x.dtype)
    dw = np.empty(geom.weight_shape, dtype=x.dtype)
    db = np.empty(geom.out_channels, dtype=x.dtype)
    args = _geometry_args(geom)
    _backward_input_kernel(dy, weight, dx, *args)
    _backward_weight_kernel(dy, x, dw, db, *args)
    return dx, dw, db
