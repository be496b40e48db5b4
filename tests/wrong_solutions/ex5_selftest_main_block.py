"""Right: a correct ex5 with a self-test that imports gconv_edu, only under ``if __name__ == "__main__":`` (never run
by the grader). It must score full marks."""

from __future__ import annotations


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    return channel_shuffle(dy, dy.shape[1] // groups)


if __name__ == "__main__":  # a quick self-test against the reference, as lessons/exercises/README.md suggests
    import numpy as np

    from gconv_edu.groups import channel_shuffle as reference

    x = np.random.default_rng(0).standard_normal((2, 6, 3, 3))
    print(np.array_equal(channel_shuffle(x, 3), reference(x, 3)))
