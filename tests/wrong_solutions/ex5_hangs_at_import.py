"""Wrong on purpose: importing never finishes. One timeout must zero the exercise, not one timeout per test."""

while True:
    pass


def channel_shuffle(x, groups):
    raise NotImplementedError


def channel_shuffle_backward(dy, groups):
    raise NotImplementedError
