"""Right: a correct ex5 that prints 4 MB of debug output to stderr per call. It must score full marks."""

import sys


def channel_shuffle(x, groups):
    print("debug " * 700_000, file=sys.stderr)  # about 4 MB
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    return channel_shuffle(dy, dy.shape[1] // groups)
