# %% [markdown]
# # Lesson 1: convolution, step by step
#
# A convolution layer (as deep learning uses the word: a cross-correlation, no kernel flip) slides a small filter
# over an image and, at every position, takes the dot product of the filter with the window under it.
# We build it up in four steps, and every step is checked against the previous one:
#
# 1. one channel, one filter, written as two loops;
# 2. the output-size formula (stride, padding, dilation);
# 3. many input channels: the filter is a 3-D block, and the dot product sums over channels too;
# 4. many filters: one output channel each, which is the naive loop of `gconv_edu.backends.naive`.
#
# Lesson 2 then splits the channels into groups.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import check, close
from gconv_edu.geometry import conv_output_size

# Lessons 1-6 are about WHAT is computed: calls that name no backend use im2col (NumPy + BLAS, nothing to compile).
# Lesson 7 races the backends; set GCONV_BACKEND (e.g. to numba) to run any lesson on another one.
os.environ.setdefault("GCONV_BACKEND", "im2col")
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: one channel, one filter
#
# `y[i, j] = sum_{p, q} w[p, q] * x[i + p, j + q]`: the filter's top-left corner visits every position where the
# whole filter still fits on the image. A 5x5 image and a 3x3 filter give a 3x3 output.

# %%
# Small integers you can follow by hand: a dark left side, a bright right side, an edge that bends. Every window
# differs, so every output differs (a ramp image would give the same response everywhere).
image = np.array(
    [
        [1, 1, 2, 8, 9],
        [0, 1, 6, 9, 9],
        [1, 5, 8, 9, 8],
        [2, 3, 4, 5, 9],
        [1, 2, 2, 3, 4],
    ],
    dtype=np.float64,
)
kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])  # a Sobel filter: horizontal change


def correlate_one_channel(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x: (H, W), w: (kH, kW) -> y: (H - kH + 1, W - kW + 1); stride 1, no padding."""
    out_h, out_w = x.shape[0] - w.shape[0] + 1, x.shape[1] - w.shape[1] + 1
    y = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[i : i + w.shape[0], j : j + w.shape[1]]
            y[i, j] = np.sum(window * w)
    return y


y_by_hand = correlate_one_channel(image, kernel)
print("image:\n", image, "\nkernel:\n", kernel, "\noutput:\n", y_by_hand)
# The library wants batches of multi-channel images: (N, C, H, W) and (C_out, C_in, kH, kW).
y_library = gc.conv2d(image[None, None], kernel[None, None], backend="naive")[0, 0]
check("two loops == gc.conv2d(backend='naive') on one channel", close(y_by_hand, y_library))
# By hand for output (1, 2): the window x[1:4, 2:5] times the filter, summed.
window_12 = image[1:4, 2:5]
print(f"y[1, 2] = sum({window_12.tolist()} * {kernel.tolist()}) = {np.sum(window_12 * kernel):.0f}")
check("y[1, 2] == the sum over its window, by hand", close(y_by_hand[1, 2], np.sum(window_12 * kernel)))
distinct = len(np.unique(y_by_hand))
print(f"{distinct} distinct values among the {y_by_hand.size} outputs; strongest edge response {y_by_hand.min():.0f}")
check("windows that differ give outputs that differ (not one constant response)", distinct > 1)

# %% [markdown]
# ## Step 2: the output size
#
# Padding adds zeros around the image, stride skips positions, dilation spreads the filter's taps apart (the filter
# then covers `dilation*(k-1) + 1` pixels). The number of positions along one axis is
#
# `H_out = (H + 2*padding - dilation*(kH - 1) - 1) // stride + 1`
#
# (integer division: a last window that would stick out past the padded image is dropped).

# %%
print(f"{'H':>3} {'k':>2} {'stride':>6} {'pad':>4} {'dil':>4} -> {'H_out':>5}")
agreements = []
for size, k, stride, pad, dilation in [
    (5, 3, 1, 0, 1),
    (5, 3, 1, 1, 1),
    (7, 3, 2, 0, 1),
    (7, 3, 2, 1, 1),
    (8, 3, 3, 0, 1),
    (7, 3, 1, 0, 2),
    (9, 2, 2, 1, 3),
]:
    by_formula = (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    x = rng.standard_normal((1, 1, size, size))
    w = rng.standard_normal((1, 1, k, k))
    y = gc.conv2d(x, w, stride=stride, padding=pad, dilation=dilation, backend="naive")
    print(f"{size:>3} {k:>2} {stride:>6} {pad:>4} {dilation:>4} -> {by_formula:>5}")
    agreements.append(by_formula == conv_output_size(size, k, stride, pad, pad, dilation) == y.shape[2] == y.shape[3])
check("formula == geometry.conv_output_size == the shape the naive loop produces, in all 7 settings", all(agreements))

# %% [markdown]
# ### Figure: the sliding window
#
# Top: two output pixels and the windows they read. Bottom: the same idea with stride 2, padding 1 and dilation 2
# (the two colours are the windows of the first two output pixels of a row: how far apart they start is the stride,
# how spread out they are is the dilation, the grey zeros are padding).

# %%
first, second = viz.WINDOW_PALETTE[:2]  # two window positions: not groups, so not a group colour


def window_mask(shape: tuple[int, int], top: int, left: int, k: int, dilation: int = 1) -> np.ndarray:
    """(rows, columns) boolean: the taps of a k x k filter with the given dilation, corner at (top, left)."""
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + dilation * (k - 1) + 1 : dilation, left : left + dilation * (k - 1) + 1 : dilation] = True
    return mask


fig = plt.figure(figsize=(11, 6.4))
top_ax = fig.add_axes((0.0, 0.52, 1.0, 0.42))
draw = viz.draw_grid
draw(
    top_ax,
    image,
    (0, 0),
    [(window_mask((5, 5), 0, 0, 3), first), (window_mask((5, 5), 1, 2, 3), second)],
    label="input x (5x5)",
)
draw(top_ax, kernel, (7, 1), label="filter w (3x3)")
out_first = np.zeros((3, 3), dtype=bool)
out_first[0, 0] = True
out_second = np.zeros((3, 3), dtype=bool)
out_second[1, 2] = True
draw(top_ax, y_by_hand, (12, 1), [(out_first, first), (out_second, second)], label="output y (3x3)")
top_ax.text(6, 2.5, "*", fontsize=20, ha="center", va="center")
top_ax.text(11, 2.5, "=", fontsize=20, ha="center", va="center")
top_ax.text(
    15.5,
    0.3,
    f"y[0,0] = sum(w * first window) = {y_by_hand[0, 0]:.0f}\ny[1,2] = sum(w * second window) = {y_by_hand[1, 2]:.0f}",
    fontsize=8,
    va="top",
)
top_ax.set_xlim(-0.5, 19)
top_ax.set_ylim(-1.2, 6)
top_ax.set_aspect("equal")
top_ax.axis("off")
top_ax.set_title(
    "Each output pixel is the dot product of the filter with one window: 5x5 input, 3x3 filter -> 3x3", fontsize=11
)

cases = [("stride 2", 7, 0, 2, 1), ("padding 1", 5, 1, 1, 1), ("dilation 2", 7, 0, 1, 2)]
for index, (name, size, pad, stride, dilation) in enumerate(cases):
    ax = fig.add_axes((0.02 + index * 0.33, 0.0, 0.3, 0.45))
    padded = np.pad(np.arange(size * size).reshape(size, size), pad, constant_values=-1)
    out = conv_output_size(size, 3, stride, pad, pad, dilation)
    masks = [
        (window_mask(padded.shape, 0, 0, 3, dilation), first),
        (window_mask(padded.shape, 0, stride, 3, dilation), second),
    ]
    if pad:
        masks.append((padded < 0, viz.NEUTRAL))
    draw(ax, padded, (0, 0), masks, fmt="{:.0f}")
    for text in ax.texts:
        if text.get_text() == "-1":
            text.set_text("0")  # padding cells hold zeros
    ax.set_xlim(-0.2, padded.shape[1] + 0.2)
    ax.set_ylim(-0.2, padded.shape[0] + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{name}: {size}x{size} input, 3x3 filter -> {out}x{out} output", fontsize=10)
viz.save(fig, "01_sliding_window.png")

# %% [markdown]
# ## Step 3: many input channels
#
# A colour image has 3 channels. The filter becomes a (C_in, kH, kW) block and the dot product runs over channels
# as well: `y[i, j] = sum_{c, p, q} w[c, p, q] * x[c, i + p, j + q]`, which is the sum of one single-channel
# correlation per channel.

# %%
x3 = rng.standard_normal((3, 6, 7))  # (C_in, H, W): H != W on purpose, so a swapped axis would show
w3 = rng.standard_normal((3, 3, 2))  # (C_in, kH, kW): a non-square filter, for the same reason
y_sum_of_channels = sum(correlate_one_channel(x3[c], w3[c]) for c in range(3))
y3 = gc.conv2d(x3[None], w3[None], backend="naive")[0, 0]
print("output shape:", y3.shape, "(6-3+1, 7-2+1)")
check("3-channel conv == sum over channels of one-channel convs", close(y_sum_of_channels, y3))

# %% [markdown]
# ## Step 4: many filters, a batch: the naive loop
#
# `C_out` filters give `C_out` output channels; a batch of `N` images gives `N` outputs. The textbook loop nest is
# (image n, filter k, output row i, output column j), a dot product inside. That is `gconv_edu.backends.naive.forward`
# (read it: it is 20 lines, and it already has the group loop that lesson 2 explains). The fast backends compute the
# same function; here we check `im2col` (lesson 4) against it.

# %%
x = rng.standard_normal((2, 3, 8, 9))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
y_loop = np.zeros((2, 4, 6, 7))
for n in range(2):
    for k in range(4):
        y_loop[n, k] = sum(correlate_one_channel(x[n, c], w[k, c]) for c in range(3)) + b[k]
y_naive = gc.conv2d(x, w, b, backend="naive")
y_im2col = gc.conv2d(x, w, b, backend="im2col")
check("our loop (images x filters x channels) == naive backend", close(y_loop, y_naive))
check("naive backend == im2col backend", close(y_naive, y_im2col))
geometry = gc.ConvGeometry.from_shapes(x.shape, w.shape, b.shape)
print(geometry.describe())
print(
    f"multiply-adds: N*C_out*H_out*W_out*C_in*kH*kW = 2*4*6*7*3*3*3 = {2 * 4 * 6 * 7 * 27} = geometry.macs = "
    f"{geometry.macs}"
)
check("multiply-add count matches ConvGeometry.macs", geometry.macs == 2 * 4 * 6 * 7 * 27)

# %% [markdown]
# ## Summary
#
# - A convolution layer is a dot product between each filter and each window; the output size is
#   `(H + 2p - d(k-1) - 1) // s + 1`.
# - With C_in input channels every filter has C_in * kH * kW weights and reads every input channel.
#   Lesson 2 asks: what if each filter read only some of the channels?
#
# **Exercise:** `exercises/ex1_naive_forward.py` (beside this lesson; write the loop yourself, with stride, padding,
# dilation and, after lesson 2, groups); grade it with `gconv-edu grade exercises/ex1_naive_forward.py` in a course
# folder (`gconv-edu course DIR`), or `gconv-edu grade lessons/exercises/ex1_naive_forward.py` from the root of a
# checkout.

# %%
print("\nExercise: exercises/ex1_naive_forward.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex1_naive_forward.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex1_naive_forward.py")
