"""Direct convolution loops compiled by Numba: parallel over what each thread owns, no races, no atomics.

The same definition as :mod:`gconv_edu.backends.naive`, with the loops reordered for the machine::

    y[n, k, oh, ow] = b[k] + sum_{c,p,q} w[k, c, p, q] * x[n, ci, oh*sh + p*dil_h - pad_top, ow*sw + q*dil_w - pad_left]

with ``ci = g*in_per_group + c`` the absolute input channel of in-group channel ``c`` (``g = k // out_per_group``).
Output size: ``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out).

Who owns what (so that no two threads ever write the same element):

* forward: one task per (sample n, block of filters of one group) writes ``y[n, block]``;
* dx:      one task per (sample n, block of input channels of one group) writes ``dx[n, block]``;
* dw, db:  one task per block of filters writes ``dw[block]`` and ``db[block]``.

A block is 4 channels when both group sizes are multiples of 4 (and rows are contiguous), else 1.

Every innermost loop runs along a contiguous row (``ow``, an output column), so LLVM turns it into SIMD code. Padding is
never materialised: for each kernel column ``q`` the range of output columns whose input column lies inside the image
is computed once (:func:`_valid_range`), so the innermost loop has no bounds test. Every sum runs on one thread in a
fixed order, so results are bit-identical for any thread count. dw and db sum N*H_out*W_out terms: in the array's dtype
for about :data:`FLUSH_TERMS` terms, then into float64 totals (a float32 running sum over 10^6 terms loses ~1e-5).

Speed-ups, each measured (forward+backward, float32, N=8, one thread; README "Speed"):

* 4x4 register blocks: 4 filters x 4 channels per pass over a row (forward, dx), a 4x4 outer product (dw);
* pointwise layers (1x1, stride 1, no padding) see each plane as ONE row of H*W: long SIMD loops (:func:`_one_row`);
* 3-wide kernels with stride 1 on the unblocked path (depthwise 3x3) add their three taps in one pass
  (:func:`_three_taps`, :func:`_three_dots`).

Numba's thread count is whatever the caller set with ``numba.set_num_threads``; kernels are compiled on first use
(``cache=True`` stores them next to this file, or in ``NUMBA_CACHE_DIR``).

Threading layer (:func:`choose_threading_layer`, at import): GNU OpenMP, Numba's pick on Linux without TBB, hangs a
``multiprocessing`` pool forked after Numba ran, so the default is Numba's "forksafe": TBB where it loads (``pip install
tbb``), else "workqueue"; a user's ``NUMBA_THREADING_LAYER(_PRIORITY)`` is left alone. Workqueue aborts the process if
two Python threads enter it at once, so launches hold a lock unless the layer is thread-safe.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba
import numpy as np
from numba import njit, prange
from numba.np.ufunc import parallel as _numba_parallel

from ..arrays import empty, padded
from ..geometry import ConvGeometry

DESCRIPTION = "direct loops compiled by Numba (parallel over what each task writes, SIMD along output rows, cached)"

THREAD_SAFE_LAYERS = ("tbb", "omp")  # several Python threads may enter these at once; workqueue: one at a time
_launch_lock = threading.Lock()


def choose_threading_layer() -> str:
    """Make Numba's threading layer fork-safe unless the user chose one; return the setting (or layer) in force.

    Effective until Numba starts its pool (first parallel call, or ``numba.get_num_threads``); importing this calls it.
    """
    if _numba_parallel._is_initialized:  # too late to choose: report what runs
        return numba.threading_layer()
    user_chose = {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"} & set(os.environ)
    if not user_chose and str(numba.config.THREADING_LAYER).lower() == "default":
        numba.config.THREADING_LAYER = "forksafe"  # TBB if it loads, else workqueue (never GNU OpenMP)
    return str(numba.config.THREADING_LAYER)


choose_threading_layer()


def _one_caller_unless_thread_safe() -> contextlib.AbstractContextManager:
    """What a kernel launch runs under: the lock unless the running layer is thread-safe (tbb, omp)."""
    if not _numba_parallel._is_initialized:
        choose_threading_layer()  # again: a change of NUMBA_* variables since import makes Numba reload its config
        return _launch_lock
    return contextlib.nullcontext() if numba.threading_layer() in THREAD_SAFE_LAYERS else _launch_lock


BLOCK = 4  # register block: channels (and filters) handled together per pass over a row, when group sizes allow
FLUSH_TERMS = 512  # dw, db: terms summed in the array's dtype before a flush into float64 totals (< 0.2% extra adds)
# Only "contract": lets LLVM fuse w*x + y into one FMA instruction (one rounding instead of two). No reassociation
# (sums keep their order) and no nnan/ninf (NaN and inf propagate as IEEE says).
FASTMATH = {"contract"}
# The weight gradient's dot products also get "reassoc": a float sum only becomes SIMD code if it may be split into
# per-lane partial sums. The order depends on the SIMD width, never on the thread count; still no nnan/ninf.
DOT_FASTMATH = {"contract", "reassoc"}


def availability() -> str | None:
    return None  # Numba is a dependency of the package: always available


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


@njit(cache=True, inline="always")
def _four_filters(weight, k, c, p, q):
    """(w[k, c, p, q], w[k+1, c, p, q], w[k+2, c, p, q], w[k+3, c, p, q]): one tap of one channel in four filters."""
    return weight[k, c, p, q], weight[k + 1, c, p, q], weight[k + 2, c, p, q], weight[k + 3, c, p, q]


def _blocked(in_per_group: int, out_per_group: int, stride_w: int) -> bool:
    """Whether the 4x4 register block applies: both group sizes divisible by 4, contiguous rows (stride 1)."""
    return in_per_group % BLOCK == 0 and out_per_group % BLOCK == 0 and stride_w == 1


_blocked_jit = njit(cache=True, inline="always")(_blocked)


def uses_register_blocks(geom: ConvGeometry) -> bool:
    """True when the kernels run their 4x4 register blocks on this geometry (else the one-channel loops)."""
    return _blocked(geom.in_channels_per_group, geom.out_channels_per_group, geom.stride[1])


def _is_pointwise(geom: ConvGeometry) -> bool:
    """1x1, stride 1, no padding: output pixel (oh, ow) reads input pixel (oh, ow) only."""
    return geom.kernel_area == 1 and geom.stride == (1, 1) and geom.padding == (0, 0, 0, 0)


def row_length(geom: ConvGeometry) -> int:
    """Length of the innermost loops: W_out, or H*W for a pointwise layer (see :func:`_one_row`)."""
    return geom.out_h * geom.out_w if _is_pointwise(geom) else geom.out_w


# --------------------------------------------------------------------------- three-tap rows (3-wide kernels)
@njit(cache=True, inline="always")
def _interior(out_len, in_len, shift0, shift1, shift2):  # pragma: no cover - compiled
    """Positions t in [lo, hi) where all three taps ``t + shift`` lie inside [0, in_len); (out_len, out_len) if none."""
    lo0, hi0 = _valid_range(out_len, in_len, 1, shift0)
    lo1, hi1 = _valid_range(out_len, in_len, 1, shift1)
    lo2, hi2 = _valid_range(out_len, in_len, 1, shift2)
    lo, hi = max(lo0, lo1, lo2), min(hi0, hi1, hi2)
    if lo >= hi:
        lo = hi = out_len  # no interior: the edge loop then covers the whole row
    return max(0, lo), hi  # max(0, .): tells LLVM lo >= 0 (see _first_input), so the pass over [lo, hi) vectorises


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _three_taps(out, on, oc, orow, inp, i_n, ic, irow, weights, shifts, out_len, in_len):  # pragma: no cover
    """out[on, oc, orow, t] += sum_q weights[q] * inp[i_n, ic, irow, t + shifts[q]] over the three taps of a row.

    The special case for 3-wide kernels with stride 1 (depthwise 3x3 above all): where all three taps are inside the
    row, ONE pass adds them, so ``out`` is loaded and stored once instead of three times. The forward pass calls it with
    (y, x, shifts q*dil_w - pad_left), dx with (dx, dy, the negated shifts): the same gather, seen from either side.
    The few edge positions (padding) get a plain loop with a bounds test per tap.
    """
    lo, hi = _interior(out_len, in_len, shifts[0], shifts[1], shifts[2])
    start0 = _first_input(lo, 1, shifts[0])
    start1 = _first_input(lo, 1, shifts[1])
    start2 = _first_input(lo, 1, shifts[2])
    w0, w1, w2 = weights
    for t in range(hi - lo):
        out[on, oc, orow, lo + t] += (
            w0 * inp[i_n, ic, irow, start0 + t]
            + w1 * inp[i_n, ic, irow, start1 + t]
            + w2 * inp[i_n, ic, irow, start2 + t]
        )
    for u in range(out_len - (hi - lo)):  # the edges: a handful of positions, the padding's width on each side
        t = _edge(u, lo, hi)
        for q in range(3):
            source = t + shifts[q]
            if 0 <= source < in_len:
                out[on, oc, orow, t] += weights[q] * inp[i_n, ic, irow, source]


@njit(cache=True, inline="always")
def _edge(u, lo, hi):  # pragma: no cover - compiled
    return u if u < lo else u + hi - lo  # the u-th position outside [lo, hi): 0, ..., lo-1, then hi, hi+1, ...


@njit(cache=True, inline="always", fastmath=DOT_FASTMATH)
def _three_dots(dy, n, k, oh, x, ci, row, total, c, p, shifts, out_w, width):  # pragma: no cover - compiled
    """total[0, c, p, q] += sum_ow dy[n, k, oh, ow] * x[n, ci, row, ow + shifts[q]], q = 0, 1, 2 (one pass over dy)."""
    lo, hi = _interior(out_w, width, shifts[0], shifts[1], shifts[2])
    start0 = _first_input(lo, 1, shifts[0])
    start1 = _first_input(lo, 1, shifts[1])
    start2 = _first_input(lo, 1, shifts[2])
    s0, s1, s2 = total[0, c, p, 0], total[0, c, p, 1], total[0, c, p, 2]
    for t in range(hi - lo):
        d = dy[n, k, oh, lo + t]
        s0 += d * x[n, ci, row, start0 + t]
        s1 += d * x[n, ci, row, start1 + t]
        s2 += d * x[n, ci, row, start2 + t]
    total[0, c, p, 0], total[0, c, p, 1], total[0, c, p, 2] = s0, s1, s2
    for u in range(out_w - (hi - lo)):
        ow = _edge(u, lo, hi)
        for q in range(3):
            source = ow + shifts[q]
            if 0 <= source < width:
                total[0, c, p, q] += dy[n, k, oh, ow] * x[n, ci, row, source]


# --------------------------------------------------------------------------- forward
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _forward_kernel(x, weight, bias, y, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover
    """y[n, k] for every (n, block of output channels); x, weight contiguous, bias (C_out,), y uninitialised.

    Each task starts its planes from the bias itself: no serial pass over y before the parallel work.

    4x4 register block: four filters x four input channels per pass over a row, so each x element loaded feeds four
    filters and each y element stored has summed four channels (16 FMAs per 8 loads + 4 stores, instead of 1 per 2+1).
    """
    n_batch, c_in, height, width = x.shape
    c_out, in_per_group, k_h, k_w = weight.shape
    out_h, out_w = y.shape[2], y.shape[3]
    out_per_group = c_out // (c_in // in_per_group)
    block = BLOCK if _blocked_jit(in_per_group, out_per_group, stride_w) else 1
    blocks_per_sample = c_out // block
    for task in prange(n_batch * blocks_per_sample):
        n = task // blocks_per_sample
        k = (task % blocks_per_sample) * block  # first output channel of this block (all in one group)
        first_in = (k // out_per_group) * in_per_group  # first input channel of that group
        for f in range(block):
            y[n, k + f] = bias[k + f]
        for oh in range(out_h):
            for c in range(0, in_per_group, block):
                ci = first_in + c
                for p in range(k_h):
                    row = oh * stride_h + p * dil_h - pad_top
                    if row < 0 or row >= height:
                        continue  # this kernel row reads padding (zeros)
                    if block == 1 and k_w == 3 and stride_w == 1:
                        shifts = (-pad_left, dil_w - pad_left, 2 * dil_w - pad_left)
                        taps = (weight[k, c, p, 0], weight[k, c, p, 1], weight[k, c, p, 2])
                        _three_taps(y, n, k, oh, x, n, ci, row, taps, shifts, out_w, width)
                        continue
                    for q in range(k_w):
                        offset = q * dil_w - pad_left
                        lo, hi = _valid_range(out_w, width, stride_w, offset)
                        start = _first_input(lo, stride_w, offset)
                        if block == BLOCK:
                            a0, a1 = _four_filters(weight, k, c, p, q), _four_filters(weight, k, c + 1, p, q)
                            a2, a3 = _four_filters(weight, k, c + 2, p, q), _four_filters(weight, k, c + 3, p, q)
                            for t in range(hi - lo):
                                x0, x1 = x[n, ci, row, start + t], x[n, ci + 1, row, start + t]
                                x2, x3 = x[n, ci + 2, row, start + t], x[n, ci + 3, row, start + t]
                                y[n, k, oh, lo + t] += a0[0] * x0 + a1[0] * x1 + a2[0] * x2 + a3[0] * x3
                                y[n, k + 1, oh, lo + t] += a0[1] * x0 + a1[1] * x1 + a2[1] * x2 + a3[1] * x3
                                y[n, k + 2, oh, lo + t] += a0[2] * x0 + a1[2] * x1 + a2[2] * x2 + a3[2] * x3
                                y[n, k + 3, oh, lo + t] += a0[3] * x0 + a1[3] * x1 + a2[3] * x2 + a3[3] * x3
                        elif stride_w == 1:  # contiguous input row: the case LLVM vectorises
                            w0 = weight[k, c, p, q]
                            for t in range(hi - lo):
                                y[n, k, oh, lo + t] += w0 * x[n, ci, row, start + t]
                        else:
                            w0 = weight[k, c, p, q]
                            for t in range(hi - lo):
                                y[n, k, oh, lo + t] += w0 * x[n, ci, row, start + t * stride_w]


# --------------------------------------------------------------------------- backward
@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _backward_input_kernel(dy, weight, dx, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover
    """dx[n, c] for every (n, block of input channels): each dy row sends ``w * dy`` back to the input row it read.

    The same 4x4 block as the forward pass, transposed: four input channels x four filters per pass over a row.
    """
    n_batch, c_in, height, width = dx.shape
    c_out, in_per_group, k_h, k_w = weight.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    out_per_group = c_out // (c_in // in_per_group)
    block = BLOCK if _blocked_jit(in_per_group, out_per_group, stride_w) else 1
    blocks_per_sample = c_in // block
    for task in prange(n_batch * blocks_per_sample):
        n = task // blocks_per_sample
        ci = (task % blocks_per_sample) * block  # first input channel of this block (all in one group)
        g, c = ci // in_per_group, ci % in_per_group  # group, and position of the channel inside the group's filters
        for f in range(block):
            dx[n, ci + f] = 0.0  # each task clears its own planes (dx arrives uninitialised)
        for k in range(g * out_per_group, (g + 1) * out_per_group, block):
            for oh in range(out_h):
                for p in range(k_h):
                    row = oh * stride_h + p * dil_h - pad_top
                    if row < 0 or row >= height:
                        continue
                    if block == 1 and k_w == 3 and stride_w == 1:
                        shifts = (pad_left, pad_left - dil_w, pad_left - 2 * dil_w)  # dx column -> dy column
                        taps = (weight[k, c, p, 0], weight[k, c, p, 1], weight[k, c, p, 2])
                        _three_taps(dx, n, ci, row, dy, n, k, oh, taps, shifts, width, out_w)
                        continue
                    for q in range(k_w):
                        offset = q * dil_w - pad_left
                        lo, hi = _valid_range(out_w, width, stride_w, offset)
                        start = _first_input(lo, stride_w, offset)
                        if block == BLOCK:
                            b0, b1 = _four_filters(weight, k, c, p, q), _four_filters(weight, k, c + 1, p, q)
                            b2, b3 = _four_filters(weight, k, c + 2, p, q), _four_filters(weight, k, c + 3, p, q)
                            for t in range(hi - lo):
                                d0, d1 = dy[n, k, oh, lo + t], dy[n, k + 1, oh, lo + t]
                                d2, d3 = dy[n, k + 2, oh, lo + t], dy[n, k + 3, oh, lo + t]
                                dx[n, ci, row, start + t] += b0[0] * d0 + b0[1] * d1 + b0[2] * d2 + b0[3] * d3
                                dx[n, ci + 1, row, start + t] += b1[0] * d0 + b1[1] * d1 + b1[2] * d2 + b1[3] * d3
                                dx[n, ci + 2, row, start + t] += b2[0] * d0 + b2[1] * d1 + b2[2] * d2 + b2[3] * d3
                                dx[n, ci + 3, row, start + t] += b3[0] * d0 + b3[1] * d1 + b3[2] * d2 + b3[3] * d3
                        elif stride_w == 1:
                            w0 = weight[k, c, p, q]
                            for t in range(hi - lo):
                                dx[n, ci, row, start + t] += w0 * dy[n, k, oh, lo + t]
                        else:
                            w0 = weight[k, c, p, q]
                            for t in range(hi - lo):
                                dx[n, ci, row, start + t * stride_w] += w0 * dy[n, k, oh, lo + t]


@njit(parallel=True, cache=True, fastmath=DOT_FASTMATH)
def _backward_weight_kernel(dy, x, dw, db, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):  # pragma: no cover
    """dw[k] and db[k] for every block of output channels: dot products of dy rows with shifted x rows.

    4x4 register block: four filters x four input channels, 16 running sums fed by 8 loads per column (a 4x4 outer
    product, the micro-kernel of a GEMM). The sums are reassociated (``DOT_FASTMATH``) so that LLVM keeps them as SIMD
    partial sums; each dw[k] is still summed by one thread in one fixed order.

    Blocked accumulation: ``total``/``bias_total`` (the array's dtype, what the SIMD loops add into) take at most
    about FLUSH_TERMS terms per entry, then are added into the float64 ``total64``/``bias64`` and cleared.
    """
    n_batch, c_in, height, width = x.shape
    c_out, in_per_group, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    out_per_group = c_out // (c_in // in_per_group)
    block = BLOCK if _blocked_jit(in_per_group, out_per_group, stride_w) else 1
    for task in prange(c_out // block):
        k = task * block  # first filter of this block (all in one group)
        first_in = (k // out_per_group) * in_per_group
        total = np.zeros((block, in_per_group, k_h, k_w), dtype=dw.dtype)  # total[filter in block, c, p, q]
        bias_total = np.zeros(block, dtype=dw.dtype)
        total64 = np.zeros((block, in_per_group, k_h, k_w), dtype=np.float64)
        bias64 = np.zeros(block, dtype=np.float64)
        terms = 0  # terms each entry of total has taken since the last flush (at most out_w per row)
        for n in range(n_batch):
            for oh in range(out_h):
                if terms >= FLUSH_TERMS:
                    _flush(total, total64, bias_total, bias64)
                    terms = 0
                terms += out_w
                for f in range(block):
                    bias_sum = bias_total[f]
                    for ow in range(out_w):
                        bias_sum += dy[n, k + f, oh, ow]
                    bias_total[f] = bias_sum
                for c in range(0, in_per_group, block):
                    ci = first_in + c
                    for p in range(k_h):
                        row = oh * stride_h + p * dil_h - pad_top
                        if row < 0 or row >= height:
                            continue
                        if block == 1 and k_w == 3 and stride_w == 1:
                            shifts = (-pad_left, dil_w - pad_left, 2 * dil_w - pad_left)
                            _three_dots(dy, n, k, oh, x, ci, row, total, c, p, shifts, out_w, width)
                            continue
                        for q in range(k_w):
                            offset = q * dil_w - pad_left
                            lo, hi = _valid_range(out_w, width, stride_w, offset)
                            start = _first_input(lo, stride_w, offset)
                            if block == BLOCK:
                                _outer_product_4x4(dy, x, total, n, k, oh, lo, ci, row, start, hi - lo, c, p, q)
                            elif stride_w == 1:
                                partial = total[0, c, p, q]
                                for t in range(hi - lo):
                                    partial += dy[n, k, oh, lo + t] * x[n, ci, row, start + t]
                                total[0, c, p, q] = partial
                            else:
                                partial = total[0, c, p, q]
                                for t in range(hi - lo):
                                    partial += dy[n, k, oh, lo + t] * x[n, ci, row, start + t * stride_w]
                                total[0, c, p, q] = partial
        _flush(total, total64, bias_total, bias64)
        dw[k : k + block] = total64
        db[k : k + block] = bias64


@njit(cache=True, inline="always")
def _flush(total, total64, bias_total, bias64):  # pragma: no cover - compiled
    """Add the partial sums into the float64 totals and clear them (one block of dw/db's long sums)."""
    total64 += total
    bias64 += bias_total
    total[...] = 0.0
    bias_total[...] = 0.0


@njit(cache=True, inline="always", fastmath=DOT_FASTMATH)
def _outer_product_4x4(dy, x, total, n, k, oh, lo, ci, row, start, length, c, p, q):  # pragma: no cover - compiled
    """total[f, c+b, p, q] += sum_t dy[n, k+f, oh, lo+t] * x[n, ci+b, row, start+t]  for f, b in 0..3."""
    s00, s01, s02, s03 = total[0, c, p, q], total[0, c + 1, p, q], total[0, c + 2, p, q], total[0, c + 3, p, q]
    s10, s11, s12, s13 = total[1, c, p, q], total[1, c + 1, p, q], total[1, c + 2, p, q], total[1, c + 3, p, q]
    s20, s21, s22, s23 = total[2, c, p, q], total[2, c + 1, p, q], total[2, c + 2, p, q], total[2, c + 3, p, q]
    s30, s31, s32, s33 = total[3, c, p, q], total[3, c + 1, p, q], total[3, c + 2, p, q], total[3, c + 3, p, q]
    for t in range(length):
        d0, d1 = dy[n, k, oh, lo + t], dy[n, k + 1, oh, lo + t]
        d2, d3 = dy[n, k + 2, oh, lo + t], dy[n, k + 3, oh, lo + t]
        x0, x1 = x[n, ci, row, start + t], x[n, ci + 1, row, start + t]
        x2, x3 = x[n, ci + 2, row, start + t], x[n, ci + 3, row, start + t]
        s00, s01, s02, s03 = s00 + d0 * x0, s01 + d0 * x1, s02 + d0 * x2, s03 + d0 * x3
        s10, s11, s12, s13 = s10 + d1 * x0, s11 + d1 * x1, s12 + d1 * x2, s13 + d1 * x3
        s20, s21, s22, s23 = s20 + d2 * x0, s21 + d2 * x1, s22 + d2 * x2, s23 + d2 * x3
        s30, s31, s32, s33 = s30 + d3 * x0, s31 + d3 * x1, s32 + d3 * x2, s33 + d3 * x3
    total[0, c, p, q], total[0, c + 1, p, q], total[0, c + 2, p, q], total[0, c + 3, p, q] = s00, s01, s02, s03
    total[1, c, p, q], total[1, c + 1, p, q], total[1, c + 2, p, q], total[1, c + 3, p, q] = s10, s11, s12, s13
    total[2, c, p, q], total[2, c + 1, p, q], total[2, c + 2, p, q], total[2, c + 3, p, q] = s20, s21, s22, s23
    total[3, c, p, q], total[3, c + 1, p, q], total[3, c + 2, p, q], total[3, c + 3, p, q] = s30, s31, s32, s33


# --------------------------------------------------------------------------- entry points
def _geometry_args(geom: ConvGeometry) -> tuple[int, ...]:
    (stride_h, stride_w), (dil_h, dil_w) = geom.stride, geom.dilation
    top, _, left, _ = geom.padding  # bottom/right padding only shows up in H_out, W_out (the output's shape)
    return stride_h, stride_w, dil_h, dil_w, top, left


def _one_row(array: np.ndarray, geom: ConvGeometry, longest: int | None = None) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H/r, r*W) when the layer is pointwise (1x1, stride 1, no padding), else ``array``.

    A pointwise layer maps pixel to pixel, so a whole plane can be one row (r = H): the innermost loops then run over
    H*W elements instead of W (28 -> 784 for ShuffleNet's layer), which is what SIMD loops need to pay off. With
    ``longest``, rows take the most image rows r (a divisor of H) that keep them at most ``longest`` long (at least
    one image row): dw and db's dot products run one row at a time, and their blocked sums flush between rows.
    A view of a contiguous array: writing to it writes the array.
    """
    if not _is_pointwise(geom):
        return array
    n, c, h, w = array.shape
    rows_per_row = h
    if longest is not None and h * w > longest:
        rows_per_row = next(r for r in range(max(1, min(h, longest // w)), 0, -1) if h % r == 0)
    return array.reshape(n, c, h // rows_per_row, rows_per_row * w)


def _operands(*arrays: np.ndarray) -> list[np.ndarray]:
    """C-contiguous, writeable arrays (copies where not): a read-only one would compile every kernel anew for it."""
    return [np.require(array, requirements=("C", "W")) for array in arrays]


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
    """y = conv2d(x, weight) + bias with the direct loops.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out),
    ``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out).
    """
    if any(geom.padding) and not np.isfinite(weight).all():
        # The loops skip taps that fall on the padding; the definition multiplies them by 0, and inf * 0 is NaN. With
        # a non-finite weight (rare, and cheap to test) pad x for real so those taps are computed.
        x, geom = padded(np, x, geom.pad_widths), geom.with_explicit_padding()
    x, weight, bias = _operands(x, weight, np.zeros(geom.out_channels, dtype=x.dtype) if bias is None else bias)
    y = empty(np, "y (N, C_out, H_out, W_out)", geom.y_shape, x.dtype)  # the kernel writes every element
    with _one_caller_unless_thread_safe():
        _forward_kernel(_one_row(x, geom), weight, bias, _one_row(y, geom), *_geometry_args(geom))
    return y


def backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients with the direct loops.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).
    """
    dy, x, weight = _operands(dy, x, weight)
    dx, dw, db = _backward(dy, x, weight, geom)
    if any(geom.padding) and not np.isfinite(db).all():
        # db sums dy, so it tells for free whether dy holds inf/NaN: then dw's taps over the padding must give
        # inf * 0 = NaN as the definition does, and the loops skip them. Redo it on x padded for real.
        dx_padded, dw, db = _backward(dy, padded(np, x, geom.pad_widths), weight, geom.with_explicit_padding())
        dx = dx_padded[geom.interior].copy()  # (N, C_in, H, W): the padding's gradient dropped
    return dx, dw, db


def _backward(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray, geom: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx = empty(np, "dx (N, C_in, H, W)", geom.x_shape, x.dtype)  # the kernel clears it, in parallel
    dw = empty(np, "dw (C_out, C_in/G, kH, kW)", geom.weight_shape, x.dtype)
    db = empty(np, "db (C_out,)", (geom.out_channels,), x.dtype)
    args = _geometry_args(geom)
    with _one_caller_unless_thread_safe():
        _backward_input_kernel(_one_row(dy, geom), weight, _one_row(dx, geom), *args)
        # dw, db: rows of at most 4*FLUSH_TERMS, so that their blocked sums flush often enough (module docstring)
        longest = 4 * FLUSH_TERMS
        _backward_weight_kernel(_one_row(dy, geom, longest), _one_row(x, geom, longest), dw, db, *args)
    return dx, dw, db
