"""How channels partition into groups.

Group ``g`` owns input channels ``[g*C_in/G, (g+1)*C_in/G)`` and output channels ``[g*C_out/G, (g+1)*C_out/G)``;
its filters see only its own input channels. Seen as a dense ``C_out x C_in`` matrix (per kernel tap), the weight of
a grouped convolution is block-diagonal, and channel shuffle (ShuffleNet) is the permutation that lets the next
grouped layer mix information across groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import array_module


def _check_groups(groups: int, *channels: tuple[str, int]) -> None:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"groups={groups!r} must be a positive int; got {type(groups).__name__}")
    if groups < 1:
        raise ValueError(f"groups={groups} must be a positive int (>= 1)")
    for name, count in channels:
        if count % groups:
            raise ValueError(f"groups={groups} must divide {name}={count}")


def group_slices(in_channels: int, out_channels: int, groups: int) -> list[tuple[slice, slice]]:
    """Per group, the (input channel slice, output channel slice) it owns, in group order."""
    _check_groups(groups, ("C_in", in_channels), ("C_out", out_channels))
    in_per_group, out_per_group = in_channels // groups, out_channels // groups
    return [
        (slice(g * in_per_group, (g + 1) * in_per_group), slice(g * out_per_group, (g + 1) * out_per_group))
        for g in range(groups)
    ]


def block_diagonal_weight(weight: Any, groups: int) -> Any:
    """Expand a grouped weight into the dense weight that computes the same convolution with ``groups=1``.

    weight: (C_out, C_in // groups, kH, kW)  ->  dense: (C_out, C_in, kH, kW), zero outside the diagonal blocks.
    Works for NumPy and CuPy arrays (it uses the array's own module).
    """
    c_out, in_per_group, k_h, k_w = weight.shape
    c_in = in_per_group * groups
    dense = array_module(weight).zeros((c_out, c_in, k_h, k_w), dtype=weight.dtype)
    for in_slice, out_slice in group_slices(c_in, c_out, groups):
        dense[out_slice, in_slice] = weight[out_slice]
    return dense


def group_of_channel(channels: int, groups: int) -> np.ndarray:
    """(channels,) int array: the group each channel belongs to (the colour a figure gives it)."""
    _check_groups(groups, ("channels", channels))
    return np.repeat(np.arange(groups), channels // groups)


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """ShuffleNet's channel order: output channel ``i`` takes input channel ``perm[i]``.

    View the channels as (groups, channels_per_group), transpose to (channels_per_group, groups), flatten:
    consecutive outputs then come from different groups.
    """
    _check_groups(groups, ("channels", channels))
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def channel_shuffle(x: Any, groups: int) -> Any:
    """ShuffleNet channel shuffle. x: (N, C, H, W) -> (N, C, H, W), a new array (never a view of x)."""
    n, c, h, w = x.shape
    _check_groups(groups, ("C (x.shape[1])", c))
    # (N, G, C/G, H, W) -> (N, C/G, G, H, W): channel (g, k) moves to position k*G + g.
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w).copy()


def channel_shuffle_backward(dy: Any, groups: int) -> Any:
    """Gradient of :func:`channel_shuffle`: the inverse permutation. dy: (N, C, H, W) -> dx: (N, C, H, W)."""
    _n, c, _h, _w = dy.shape
    _check_groups(groups, ("C (dy.shape[1])", c))
    # The inverse of shuffling with G groups is shuffling with C/G groups.
    return channel_shuffle(dy, c // groups)
