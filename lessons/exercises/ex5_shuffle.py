"""Exercise 5: ShuffleNet's channel shuffle and its gradient.

Grade it with:  gconv-edu grade lessons/exercises/ex5_shuffle.py
Use NumPy only; do not import gconv_edu.
"""

from __future__ import annotations


def channel_shuffle(x, groups):
    """Interleave the channels of the G groups so the next grouped layer mixes information across groups.

    Inputs:  x (N, C, H, W); groups G dividing C.
    Returns: y (N, C, H, W), a new array: view the channels as a (G, C/G) grid, transpose it to (C/G, G), flatten.
             Output channel k*G + g is input channel g*(C/G) + k. E.g. C=6, G=2: y takes channels 0, 3, 1, 4, 2, 5.
    """
    raise NotImplementedError("ex5: channel_shuffle")


def channel_shuffle_backward(dy, groups):
    """Gradient of channel_shuffle: dy (N, C, H, W) -> dx (N, C, H, W).

    A permutation's gradient routes each value back where it came from: the inverse permutation.
    """
    raise NotImplementedError("ex5: channel_shuffle_backward")
