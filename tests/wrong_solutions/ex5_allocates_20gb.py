"""Wrong on purpose: channel_shuffle allocates 20 GB on float32 inputs. The worker's memory limit turns that into
a MemoryError in those calls only; the other tests pass."""

import numpy as np


def channel_shuffle(x, groups):
    if x.dtype == np.float32:
        np.ones(20 * 2**30, dtype=np.uint8)  # BUG: 20 GB
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    n, c, h, w = dy.shape
    return dy.reshape(n, c // groups, groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()
