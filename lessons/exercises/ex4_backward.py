"""Exercise 4: the backward pass of the grouped convolution.

Grade it with:  gconv-edu grade lessons/exercises/ex4_backward.py
Use NumPy only; do not import gconv_edu.
"""

from __future__ import annotations


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups):
    """Gradients of a loss L through ex1's conv2d_forward, given dy = dL/dy.

    Inputs:
        dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in // G, kH, kW)
        stride, padding, dilation: (h, w) pairs; groups: G
    Returns:
        (dx, dw, db) with the shapes of x, weight and (C_out,), in the inputs' dtype. With g = k // (C_out/G),
        Cg = C_in/G and xpad the zero-padded x:
            dw[k, c, p, q] = sum_{n, i, j} dy[n, k, i, j] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]
            dxpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] += dy[n, k, i, j] * weight[k, c, p, q]   (windows overlap:
                                                                                                   ACCUMULATE)
            dx = dxpad without the padding;  db[k] = sum_{n, i, j} dy[n, k, i, j]   (sums, not means)
    Do not modify the inputs.
    """
    raise NotImplementedError("ex4: conv2d_backward")
