"""Reference solution of ex5: ShuffleNet's channel shuffle and its gradient."""

from __future__ import annotations


def channel_shuffle(x, groups):
    """x (N, C, H, W) -> y (N, C, H, W): view channels as (G, C/G), transpose to (C/G, G), flatten (a new array)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy, groups):
    """dy (N, C, H, W) -> dx (N, C, H, W): the inverse permutation, which is a shuffle with C/G groups."""
    return channel_shuffle(dy, dy.shape[1] // groups)
