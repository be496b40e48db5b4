"""Wrong on purpose: returns the input itself when groups = 1 (the docstring asks for a new array)."""


def channel_shuffle(x, groups):
    if groups == 1:
        return x  # BUG: the caller's array, not a new one
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    return channel_shuffle(dy, dy.shape[1] // groups)
