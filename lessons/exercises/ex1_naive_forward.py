"""Exercise 1: the grouped convolution's forward pass, with explicit loops.

Grade it with:  gconv-edu grade lessons/exercises/ex1_naive_forward.py
Use NumPy only; do not import gconv_edu (the grader gives no credit for a file that does).
"""

from __future__ import annotations


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """Grouped 2-D convolution (cross-correlation, as in PyTorch), NCHW, with explicit loops.

    Inputs:
        x:        (N, C_in, H, W), float32 or float64
        weight:   (C_out, C_in // groups, kH, kW), same dtype
        bias:     (C_out,) or None
        stride:   (sh, sw); padding: (ph, pw) zeros on EACH side; dilation: (dh, dw) -- pairs of ints
        groups:   G, dividing C_in and C_out
    Returns:
        y: (N, C_out, H_out, W_out) with x's dtype, where
            H_out = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1      W_out = (W + 2*pw - dw*(kW - 1) - 1) // sw + 1
        and, for output channel k in group g = k // (C_out/G), with Cg = C_in/G and xpad the zero-padded x:
            y[n, k, i, j] = bias[k] + sum_{c < Cg, p < kH, q < kW}
                                xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] * weight[k, c, p, q]
    Do not modify x, weight or bias.
    """
    raise NotImplementedError("ex1: conv2d_forward")
