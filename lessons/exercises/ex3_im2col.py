"""Exercise 3: im2col, and the grouped forward pass as ONE batched matrix product over the groups.

Grade it with:  gconv-edu grade lessons/exercises/ex3_im2col.py
Use NumPy only; do not import gconv_edu.
"""

from __future__ import annotations


def im2col(x, kernel_size, stride, padding, dilation):
    """Copy every (dilated, strided) window of the zero-padded input into a column.

    Inputs:
        x: (N, C, H, W); kernel_size: (kH, kW); stride: (sh, sw); padding: (ph, pw) on each side; dilation: (dh, dw)
    Returns:
        cols: (N, C*kH*kW, H_out*W_out) with x's dtype, rows ordered (channel, kernel row, kernel column):
            cols[n, (c*kH + p)*kW + q, i*W_out + j] = xpad[n, c, i*sh + p*dh, j*sw + q*dw]
        H_out = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1, W_out likewise.
    Hint: one strided slice of xpad per kernel tap (p, q) fills every output pixel at once.
    """
    raise NotImplementedError("ex3: im2col")


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """The same function as ex1's conv2d_forward, computed with im2col and one batched matrix product.

    Inputs: as in ex1 (x (N, C_in, H, W), weight (C_out, C_in // G, kH, kW), bias (C_out,) or None, pairs, groups).
    Returns: y (N, C_out, H_out, W_out) with x's dtype.
    Idea: cols (N, C_in*kH*kW, L) -> (N, G, C_in/G*kH*kW, L) (a group's rows are contiguous, channels come first);
          weight -> (G, C_out/G, C_in/G*kH*kW);  then
          (N, G, C_out/G, L) = (G, C_out/G, C_in/G*kH*kW) @ (N, G, C_in/G*kH*kW, L)   -- np.matmul broadcasts over N
    """
    raise NotImplementedError("ex3: conv2d_forward")
