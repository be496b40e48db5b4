"""Exercise 2: which channels each group owns, and what a grouped convolution costs.

Grade it with:  gconv-edu grade lessons/exercises/ex2_groups.py
Use only Python (and NumPy if you like); do not import gconv_edu.
"""

from __future__ import annotations


def group_slices(c_in: int, c_out: int, groups: int) -> list[tuple[slice, slice]]:
    """The channels each group owns, one (input_channel_slice, output_channel_slice) pair per group, in group order.

    Group g owns input channels [g*C_in/G, (g+1)*C_in/G) and output channels [g*C_out/G, (g+1)*C_out/G).

    Inputs:
        c_in, c_out: numbers of input and output channels; groups: G, which divides both.
    Returns:
        [(slice(in_start, in_stop), slice(out_start, out_stop)) for g in range(G)]
        e.g. group_slices(4, 6, 2) has 2 pairs; the first is (slice(0, 2), slice(0, 3)).
    """
    raise NotImplementedError("ex2: group_slices")


def conv_cost(
    c_in: int, c_out: int, kernel_size: tuple[int, int], out_size: tuple[int, int], groups: int, bias: bool = True
) -> tuple[int, int]:
    """Parameters and multiply-adds of one grouped convolution layer, for ONE sample.

    Inputs:
        c_in, c_out: channels; kernel_size: (kH, kW); out_size: (H_out, W_out); groups: G; bias: whether it has one.
    Returns:
        (parameters, multiply_adds):
        parameters    = C_out * (C_in / G) * kH * kW  (+ C_out if bias)
        multiply_adds = C_out * H_out * W_out * (C_in / G) * kH * kW   (each output value sums C_in/G * kH * kW
                        products; bias additions are not counted)
    """
    raise NotImplementedError("ex2: conv_cost")
