# %% [markdown]
# # Lesson 6: depthwise, pointwise, depthwise-separable, and channel shuffle
#
# Push groups to the limit, G = C_in: every filter sees ONE input channel. That is a *depthwise* convolution
# (MobileNet); with `C_out = m * C_in` each channel gets m filters (the channel multiplier m). It mixes space but never
# channels. A *pointwise* (1x1) convolution does the opposite: it mixes channels at each pixel, no space.
# Together, depthwise then pointwise, they make the *depthwise-separable* convolution: a cheap stand-in for a dense
# k x k convolution.
#
# Stacking grouped layers has a catch: group g of the second layer only ever sees group g of the first, so the
# network splits into G networks that never talk. ShuffleNet's *channel shuffle* interleaves the groups between layers.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import check, close
from gconv_edu.groups import channel_shuffle, group_of_channel, shuffle_permutation

# Lessons 1-6 are about WHAT is computed: calls that name no backend use im2col (NumPy + BLAS, nothing to compile).
# Lesson 7 races the backends; set GCONV_BACKEND (e.g. to numba) to run any lesson on another one.
os.environ.setdefault("GCONV_BACKEND", "im2col")
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: depthwise = one small convolution per channel (with multiplier m)

# %%
c_in, multiplier, size = 4, 2, 7
x = rng.standard_normal((2, c_in, size, size))
w_depthwise = rng.standard_normal((c_in * multiplier, 1, 3, 3))  # (C_in*m, 1, kH, kW): groups = C_in
y_depthwise = gc.conv2d(x, w_depthwise, padding=1, groups=c_in)
per_channel = [gc.conv2d(x[:, [c]], w_depthwise[c * multiplier : (c + 1) * multiplier], padding=1) for c in range(c_in)]
check(
    "depthwise (groups=C_in, m=2) == each channel convolved with its own m filters",
    close(y_depthwise, np.concatenate(per_channel, axis=1)),
)
check(
    "ConvGeometry calls it depthwise", gc.ConvGeometry.from_shapes(x.shape, w_depthwise.shape, groups=c_in).is_depthwise
)

# %% [markdown]
# ## Step 2: pointwise = a matrix product over channels at every pixel

# %%
c_out = 6
w_pointwise = rng.standard_normal((c_out, c_in * multiplier, 1, 1))
y_pointwise = gc.conv2d(y_depthwise, w_pointwise)
check(
    "1x1 conv == einsum over channels: y[n,o,h,w] = sum_c P[o,c] x[n,c,h,w]",
    close(y_pointwise, np.einsum("oc,nchw->nohw", w_pointwise[:, :, 0, 0], y_depthwise)),
)

# %% [markdown]
# ## Step 3: depthwise-separable = a dense convolution with a factorised weight
#
# With m = 1, depthwise filter `D[c]` then pointwise `P[o, c]` computes
# `y[o] = sum_c P[o, c] (D[c] * x[c]) = sum_c (P[o, c] D[c]) * x[c]`: a dense conv whose weight is
# `W[o, c, p, q] = P[o, c] * D[c, p, q]`, i.e. every `W[o, c]` is a multiple of one spatial filter per input channel.
# It is a restricted dense layer, and much cheaper:
# `(C_in k^2 + C_in C_out) / (C_in C_out k^2) = 1/C_out + 1/k^2` of the dense FLOPs.

# %%
depth = rng.standard_normal((c_in, 1, 3, 3))
point = rng.standard_normal((c_out, c_in, 1, 1))
separable = gc.conv2d(gc.conv2d(x, depth, padding=1, groups=c_in), point)
w_equivalent = point[:, :, 0, 0][:, :, None, None] * depth[None, :, 0]  # (C_out, C_in, 3, 3)
check(
    "depthwise then pointwise == dense conv with W[o,c] = P[o,c] * D[c]",
    close(separable, gc.conv2d(x, w_equivalent, padding=1)),
)

print(f"{'C':>5} {'k':>2} {'dense GFLOP':>12} {'separable GFLOP':>16} {'ratio':>7} {'1/C + 1/k^2':>12}")
ratios = []
for channels in (32, 128, 512):
    for k in (3, 5):
        shape_x = (8, channels, 28, 28)
        pad = k // 2
        dense = gc.ConvGeometry.from_shapes(shape_x, (channels, channels, k, k), padding=pad)
        dw = gc.ConvGeometry.from_shapes(shape_x, (channels, 1, k, k), padding=pad, groups=channels)
        pw = gc.ConvGeometry.from_shapes(shape_x, (channels, channels, 1, 1))
        ratio = (dw.flops + pw.flops) / dense.flops
        ratios.append((channels, k, ratio, 1 / channels + 1 / k**2))
        print(
            f"{channels:>5} {k:>2} {dense.flops / 1e9:>12.3f} {(dw.flops + pw.flops) / 1e9:>16.3f} {ratio:>7.4f} "
            f"{1 / channels + 1 / k**2:>12.4f}"
        )
check(
    "separable / dense FLOPs (ConvGeometry) == 1/C_out + 1/k^2 in all 6 cases",
    all(abs(r - formula) < 1e-12 for _, _, r, formula in ratios),
)

# %% [markdown]
# ## Step 4: channel shuffle
#
# Two grouped layers in a row (G = 3, 1x1 convolutions as in ShuffleNet's units). Which input groups can reach
# each output channel? We *measure* it: perturb the input channels of one group and see which outputs change.
# `channel_shuffle` views the channels as (G, C/G), transposes to (C/G, G) and flattens.

# %%
channels, groups = 12, 3
print("shuffle permutation (output position <- input channel):", shuffle_permutation(channels, groups))
xs = rng.standard_normal((1, channels, 4, 4))
check(
    "channel_shuffle(x) == x[:, permutation]",
    close(channel_shuffle(xs, groups), xs[:, shuffle_permutation(channels, groups)]),
)
w1 = rng.standard_normal((channels, channels // groups, 1, 1))
w2 = rng.standard_normal((channels, channels // groups, 1, 1))


def two_layers(x: np.ndarray, shuffle: bool) -> np.ndarray:
    hidden = gc.conv2d(x, w1, groups=groups)
    if shuffle:
        hidden = channel_shuffle(hidden, groups)
    return gc.conv2d(hidden, w2, groups=groups)


def measured_reach(shuffle: bool) -> np.ndarray:
    """(C_out, G) boolean: output channel o changes when the input channels of group g are perturbed."""
    base = two_layers(xs, shuffle)
    reach = np.zeros((channels, groups), dtype=bool)
    for g in range(groups):
        moved = xs.copy()
        moved[:, group_of_channel(channels, groups) == g] += rng.standard_normal((channels // groups, 4, 4))
        reach[:, g] = np.abs(two_layers(moved, shuffle) - base).sum(axis=(0, 2, 3)) > 1e-9
    return reach


reach_plain, reach_shuffled = measured_reach(False), measured_reach(True)
check(
    "without shuffle, output channel o is reached by its own group only",
    bool(np.array_equal(reach_plain, np.eye(groups, dtype=bool)[group_of_channel(channels, groups)])),
)
check("with shuffle, every output channel is reached by all 3 input groups", bool(reach_shuffled.all()))

# %% [markdown]
# ### Figure: information flow with and without the shuffle
#
# Lines are coloured by the group of the filter they feed. The small squares right of each output channel show which
# input groups its value depends on (measured above).

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.6))
in_colors = viz.channel_colors(channels, groups)
layer_links = viz.connection_matrix(channels, channels, groups)
left_columns = (0.0, 1.0, 2.0)
for ax, shuffle in ((left, False), (right, True)):
    viz.draw_channel_column(ax, 0.0, in_colors, "input")
    viz.draw_links(ax, 0.0, 1.0, layer_links, in_colors)
    viz.draw_channel_column(ax, 1.0, in_colors, "grouped\nlayer 1")
    x_next = 1.0
    if shuffle:
        permutation = shuffle_permutation(channels, groups)
        shuffle_links = np.zeros((channels, channels), dtype=bool)
        shuffle_links[np.arange(channels), permutation] = True
        origin_colors = [in_colors[p] for p in permutation]  # a shuffled channel keeps the colour of its origin
        viz.draw_links(ax, 1.0, 2.0, shuffle_links, [viz.NEUTRAL] * channels)
        viz.draw_channel_column(ax, 2.0, origin_colors, "channel\nshuffle")
        x_next = 2.0
    viz.draw_links(ax, x_next, x_next + 1.0, layer_links, in_colors)
    viz.draw_channel_column(ax, x_next + 1.0, in_colors, "grouped\nlayer 2")
    viz.draw_reach_markers(ax, x_next + 1.0, reach_shuffled if shuffle else reach_plain)
    ax.set_xlim(-0.3, x_next + 1.45)
    ax.set_ylim(-0.08, 1.25)
    ax.axis("off")
left.set_title("Without shuffle: each output sees 1 of 3 input groups\n(3 separate networks)", fontsize=11)
right.set_title("With channel shuffle: every output sees all 3 input groups\n(same weights, same FLOPs)", fontsize=11)
fig.suptitle(
    "Stacked grouped layers need a shuffle to mix information across groups (squares: input groups "
    "reaching each output)",
    fontsize=11,
    y=1.04,
)
viz.save(fig, "06_channel_shuffle.png")

# %% [markdown]
# ## What we learned
#
# - Depthwise (G = C_in) filters space per channel; pointwise (1x1) mixes channels per pixel; depthwise then pointwise
#   is a dense convolution with a factorised weight, at `1/C_out + 1/k^2` of its FLOPs.
# - Grouped layers in a stack stay G separate networks unless something mixes the groups: a pointwise dense layer
#   (MobileNet, ResNeXt) or a channel shuffle (ShuffleNet). The shuffle is free in FLOPs only: it reads and writes
#   every activation, and ShuffleNet V2 (Ma et al. 2018, section 2-3, guidelines G1-G4) counts exactly this kind of
#   memory access cost (MAC) and element-wise operations as time that FLOPs do not show. AlexNet's two halves met
#   only in conv3 and the fully connected layers (lesson 8).
#
# **Exercise:** `lessons/exercises/ex5_shuffle.py` (`channel_shuffle` and its backward); grade it with
# `gconv-edu grade lessons/exercises/ex5_shuffle.py`.

# %%
print("\nExercise: lessons/exercises/ex5_shuffle.py")
print("grade it with: gconv-edu grade lessons/exercises/ex5_shuffle.py")
