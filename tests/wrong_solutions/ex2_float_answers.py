"""Right: ex2 written from the docstring's formulas with true division (C_in / G): integer-valued floats. It must
score full marks."""


def group_slices(c_in, c_out, groups):
    in_per_group, out_per_group = c_in // groups, c_out // groups
    return [
        (slice(g * in_per_group, (g + 1) * in_per_group), slice(g * out_per_group, (g + 1) * out_per_group))
        for g in range(groups)
    ]


def conv_cost(c_in, c_out, kernel_size, out_size, groups, bias=True):
    k_h, k_w = kernel_size
    out_h, out_w = out_size
    parameters = c_out * (c_in / groups) * k_h * k_w + (c_out if bias else 0)
    return parameters, c_out * out_h * out_w * (c_in / groups) * k_h * k_w
