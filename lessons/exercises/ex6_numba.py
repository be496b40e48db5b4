"""Exercise 6: the grouped forward pass as direct loops compiled with Numba.

Grade it with:  gconv-edu grade lessons/exercises/ex6_numba.py
(the first call of each argument type compiles: the grader allows it extra time). Use NumPy and Numba only.
"""

from __future__ import annotations


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """ex1's conv2d_forward, with its loops in a function decorated with @numba.njit (defined at module level).

    Inputs:  x (N, C_in, H, W), weight (C_out, C_in // G, kH, kW), bias (C_out,) or None, stride/padding/dilation
             (h, w) pairs, groups G.
    Returns: y (N, C_out, H_out, W_out) with x's dtype; H_out = (H + 2*ph - dh*(kH - 1) - 1) // sh + 1, W_out likewise;
             y[n, k, i, j] = bias[k] + sum_{c, p, q} xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw] * weight[k, c, p, q].
    Suggested split: pad with np.pad and handle bias=None here, in Python; pass only arrays and ints to the
    compiled loop function (each new combination of argument types is a new compilation).
    """
    raise NotImplementedError("ex6: conv2d_forward")
