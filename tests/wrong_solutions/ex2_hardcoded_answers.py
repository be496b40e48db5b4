"""Wrong on purpose (abuse): the answers of the visible cases hard-coded (read off the installed test module),
nothing computed. The hidden cases must cost it their points."""

SLICES = {
    (4, 6, 2): [(slice(0, 2), slice(0, 3)), (slice(2, 4), slice(3, 6))],
    (6, 6, 3): [(slice(0, 2), slice(0, 2)), (slice(2, 4), slice(2, 4)), (slice(4, 6), slice(4, 6))],
    (4, 8, 4): [(slice(i, i + 1), slice(2 * i, 2 * i + 2)) for i in range(4)],
    (3, 5, 1): [(slice(0, 3), slice(0, 5))],
    (8, 4, 2): [(slice(0, 4), slice(0, 2)), (slice(4, 8), slice(2, 4))],
    (12, 6, 3): [(slice(0, 4), slice(0, 2)), (slice(4, 8), slice(2, 4)), (slice(8, 12), slice(4, 6))],
}
COSTS = {
    (4, 6, (3, 3), (5, 5), 2, True): (114, 2700),
    (8, 8, (3, 3), (4, 4), 8, False): (72, 1152),
    (6, 12, (1, 1), (7, 7), 3, True): (36, 1176),
    (3, 6, (2, 3), (4, 5), 1, True): (114, 2160),
    (4, 8, (3, 2), (3, 6), 4, False): (48, 864),
}


def group_slices(c_in, c_out, groups):
    return SLICES.get((c_in, c_out, groups), [])


def conv_cost(c_in, c_out, kernel_size, out_size, groups, bias=True):
    return COSTS.get((c_in, c_out, tuple(kernel_size), tuple(out_size), groups, bias), (0, 0))
