"""Right: a correct ex5 whose self-test helper imports gconv_edu inside a function that only the ``__main__`` block
calls (the grader never runs it). It must score full marks."""


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    return channel_shuffle(dy, dy.shape[1] // groups)


def _self_test():
    import numpy as np

    from gconv_edu.groups import channel_shuffle as reference

    x = np.random.default_rng(0).standard_normal((2, 6, 3, 3))
    print(np.array_equal(channel_shuffle(x, 3), reference(x, 3)))


if __name__ == "__main__":
    _self_test()
