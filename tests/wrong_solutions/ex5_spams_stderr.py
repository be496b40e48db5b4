"""Wrong on purpose: 64 MB written to stderr per call. The grader keeps only a few MB of a worker's stderr."""

import os


def channel_shuffle(x, groups):
    chunk = b"x" * (1 << 20)
    for _ in range(64):
        os.write(2, chunk)
    raise ValueError("wrote 64 MB")


def channel_shuffle_backward(dy, groups):
    raise NotImplementedError
