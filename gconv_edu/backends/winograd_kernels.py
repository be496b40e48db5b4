"""The compiled kernels of :mod:`gconv_edu.backends.winograd`: the input, output and filter transforms (and the
filter transform's adjoint, for dw) as parallel Numba loops, and the blockwise finiteness test. The algorithm, the
matrices and the layouts are explained in :mod:`winograd`; these functions only run it."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FASTMATH = {"contract"}  # FMA only: no reassociation, NaN/inf kept (as numba_cpu)


# --------------------------------------------------------------------------- compiled transforms
@njit(cache=True)
def _all_finite(bits, exponent):  # pragma: no cover - compiled
    """Whether no entry of a float array, seen as unsigned integers ``bits``, has its exponent field all ones.

    That field all ones is exactly inf or NaN. Counted per block of 4096 entries (integer SIMD: ~5x faster than
    np.isfinite per entry, measured), so a non-finite value stops the scan early.
    """
    for start in range(0, bits.size, 4096):
        block = bits[start : start + 4096]
        count = 0
        for i in range(block.size):
            count += (block[i] & exponent) == exponent
        if count:
            return False
    return True


_EXPONENT_BITS = {np.dtype(np.float32): (np.uint32, 0x7F800000), np.dtype(np.float64): (np.uint64, 0x7FF0000000000000)}


@njit(cache=True, fastmath=FASTMATH)
def _combine(dst, start, src, offsets, coefficients, count, length, init):
    d = dst[start : start + length]
    o0, c0 = offsets[0], coefficients[0]
    s0 = src[o0 : o0 + length]
    if count == 1:
        for t in range(length):
            d[t] = init + c0 * s0[t]
        return
    s1, c1 = src[offsets[1] : offsets[1] + length], coefficients[1]
    if count == 2:
        for t in range(length):
            d[t] = init + c0 * s0[t] + c1 * s1[t]
        return
    s2, c2 = src[offsets[2] : offsets[2] + length], coefficients[2]
    if count == 3:
        for t in range(length):
            d[t] = init + c0 * s0[t] + c1 * s1[t] + c2 * s2[t]
        return
    s3, c3 = src[offsets[3] : offsets[3] + length], coefficients[3]
    if count == 4:
        for t in range(length):
            d[t] = init + c0 * s0[t] + c1 * s1[t] + c2 * s2[t] + c3 * s3[t]
        return
    s4, c4 = src[offsets[4] : offsets[4] + length], coefficients[4]
    for t in range(length):
        d[t] = init + c0 * s0[t] + c1 * s1[t] + c2 * s2[t] + c3 * s3[t] + c4 * s4[t]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _tile_transform(x, columns, coefficients, counts, patch, step, tiles_h, tiles_w, pad_top, pad_left, out):
    """out[a*alpha + b, ci, t] = sum_{i,j} L[a, i] L[b, j] x[n, ci, th*step + i - pad_top, tw*step + j - pad_left].

    x: (N, C, H, W); L: (alpha, patch) as sparse rows; out: (alpha^2, C, N*tiles_h*tiles_w). Entries outside x read
    as zero (padding, tile remainders). Input transform: L = B^T, patch = alpha; dy's for dw: L = A, patch = m.
    """
    batch, channels, height, width = x.shape
    alpha = columns.shape[0]
    rows = tiles_h + (patch - 1) // step  # rows of each row phase
    per = tiles_h * tiles_w
    flat_out = out.reshape(-1)
    total = out.shape[2]
    zero = coefficients[0, 0] * 0  # of x's dtype
    flat_x = x.reshape(-1)
    lows = np.empty(patch, np.int64)
    highs = np.empty(patch, np.int64)
    for j in range(patch):  # the tiles whose column j lies inside the image
        lows[j] = max(0, -((j - pad_left) // step))
        highs[j] = max(lows[j], min(tiles_w, (width - 1 + pad_left - j) // step + 1))
    for task in prange(batch * channels):
        n, ci = task // channels, task % channels
        # gathered[s, j, R, tw] = x[n, ci, R*step + s - pad_top, tw*step + j - pad_left] (zero outside the image)
        gathered = np.zeros((step, patch, rows, tiles_w), x.dtype)
        flat_gathered = gathered.reshape(-1)
        ustep = np.uint64(step)  # unsigned indices: no negative-index checks in the strided reads
        for s in range(step):
            for big in range(rows):
                r = big * step + s - pad_top
                if r < 0 or r >= height:
                    continue
                for j in range(patch):
                    lo, hi = lows[j], highs[j]
                    if hi <= lo:
                        continue
                    start = np.uint64(((s * patch + j) * rows + big) * tiles_w + lo)
                    first = np.uint64(task * height * width + r * width + lo * step + j - pad_left)  # all >= 0
                    for u in range(hi - lo):
                        flat_gathered[start + np.uint64(u)] = flat_x[first + np.uint64(u) * ustep]
        vertical = np.empty((alpha, patch, per), x.dtype)  # (L d)[a, j] of every tile of the plane
        flat_vertical = vertical.reshape(-1)
        offsets = np.empty(columns.shape[1], np.int64)
        for a in range(alpha):
            for j in range(patch):
                for q in range(counts[a]):
                    i = columns[a, q]
                    offsets[q] = ((i % step * patch + j) * rows + i // step) * tiles_w
                _combine(
                    flat_vertical, (a * patch + j) * per, flat_gathered, offsets, coefficients[a], counts[a], per, zero
                )
        for a in range(alpha):
            for b in range(alpha):
                for q in range(counts[b]):
                    offsets[q] = (a * patch + columns[b, q]) * per
                _combine(
                    flat_out,
                    ((a * alpha + b) * channels + ci) * total + n * per,
                    flat_vertical,
                    offsets,
                    coefficients[b],
                    counts[b],
                    per,
                    zero,
                )


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _output_transform(m, columns, coefficients, counts, tile, tiles_h, tiles_w, bias, y):
    """y[n, k, th*m + i, tw*m + j] = bias[k] + (A^T M_t A)[i, j], cropped to (H_out, W_out).

    m: (alpha^2, C_out, T); A^T: (tile, alpha) as sparse rows; bias: (C_out,); y: (N, C_out, H_out, W_out).
    """
    batch, out_channels, out_h, out_w = y.shape
    alpha = tile + 2
    per = tiles_h * tiles_w
    total = m.shape[2]
    flat_m = m.reshape(-1)
    zero = coefficients[0, 0] * 0  # of m's dtype
    for task in prange(batch * out_channels):
        n, k = task // out_channels, task % out_channels
        horizontal = np.empty((alpha, tile, per), m.dtype)
        flat_h = horizontal.reshape(-1)
        offsets = np.empty(columns.shape[1], np.int64)
        for a in range(alpha):
            for j in range(tile):
                for q in range(counts[j]):
                    offsets[q] = ((a * alpha + columns[j, q]) * out_channels + k) * total + n * per
                _combine(flat_h, (a * tile + j) * per, flat_m, offsets, coefficients[j], counts[j], per, zero)
        plane = np.empty((tile, tile, per), m.dtype)
        flat_plane = plane.reshape(-1)
        for i in range(tile):
            for j in range(tile):
                for q in range(counts[i]):
                    offsets[q] = (columns[i, q] * tile + j) * per
                _combine(flat_plane, (i * tile + j) * per, flat_h, offsets, coefficients[i], counts[i], per, bias[k])
        utile = np.uint64(tile)  # unsigned indices: no negative-index checks in the strided writes
        for th in range(tiles_h):
            for i in range(min(tile, out_h - th * tile)):
                row = y[n, k, th * tile + i]
                for j in range(tile):
                    src = plane[i, j, th * tiles_w : (th + 1) * tiles_w]
                    dst = row[j:]
                    for tw in range((out_w - j + tile - 1) // tile):
                        dst[np.uint64(tw) * utile] = src[tw]


@njit(parallel=True, cache=True)
def _filter_transform(weight, g, u):  # pragma: no cover - compiled
    """u[a*alpha + b, k, c] = (G w[k, c] G^T)[a, b], summed in float64 and rounded once.

    weight: (C_out, C_in/G, 3, 3); g: (alpha, 3) float64; u: (alpha^2, C_out, C_in/G).
    """
    out_channels, in_per_group = weight.shape[0], weight.shape[1]
    alpha = g.shape[0]
    for task in prange(out_channels * in_per_group):
        k, c = task // in_per_group, task % in_per_group
        left = np.zeros((alpha, 3))  # G @ w[k, c]
        for a in range(alpha):
            for p in range(3):
                for q in range(3):
                    left[a, q] += g[a, p] * weight[k, c, p, q]
        for a in range(alpha):
            for b in range(alpha):
                u[a * alpha + b, k, c] = left[a, 0] * g[b, 0] + left[a, 1] * g[b, 1] + left[a, 2] * g[b, 2]


@njit(parallel=True, cache=True)
def _filter_adjoint(u, g, dw):  # pragma: no cover - compiled
    """dw[k, c] = G^T U[., k, c] G (the adjoint of :func:`_filter_transform`), in float64, rounded once.

    u: (alpha^2, C_out, C_in/G); g: (alpha, 3) float64; dw: (C_out, C_in/G, 3, 3).
    """
    out_channels, in_per_group = dw.shape[0], dw.shape[1]
    alpha = g.shape[0]
    for task in prange(out_channels * in_per_group):
        k, c = task // in_per_group, task % in_per_group
        right = np.zeros((alpha, 3))  # U G
        for a in range(alpha):
            for b in range(alpha):
                value = np.float64(u[a * alpha + b, k, c])
                for q in range(3):
                    right[a, q] += value * g[b, q]
        for p in range(3):
            for q in range(3):
                total = 0.0
                for a in range(alpha):
                    total += g[a, p] * right[a, q]
                dw[k, c, p, q] = total
