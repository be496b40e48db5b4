"""Reference solution of ex2: channel groups and what a grouped convolution costs."""

from __future__ import annotations


def group_slices(c_in: int, c_out: int, groups: int) -> list[tuple[slice, slice]]:
    """Per group g: (input channels [g*C_in/G, (g+1)*C_in/G), output channels [g*C_out/G, (g+1)*C_out/G))."""
    in_per_group, out_per_group = c_in // groups, c_out // groups
    return [
        (slice(g * in_per_group, (g + 1) * in_per_group), slice(g * out_per_group, (g + 1) * out_per_group))
        for g in range(groups)
    ]


def conv_cost(
    c_in: int, c_out: int, kernel_size: tuple[int, int], out_size: tuple[int, int], groups: int, bias: bool = True
) -> tuple[int, int]:
    """(parameters, multiply_adds) for one sample.

    parameters = C_out * (C_in/G) * kH * kW (+ C_out with bias)
    multiply_adds = C_out * H_out * W_out * (C_in/G) * kH * kW
    """
    k_h, k_w = kernel_size
    out_h, out_w = out_size
    weights_per_filter = (c_in // groups) * k_h * k_w
    parameters = c_out * weights_per_filter + (c_out if bias else 0)
    return parameters, c_out * out_h * out_w * weights_per_filter
