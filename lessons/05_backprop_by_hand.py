# %% [markdown]
# # Lesson 5: backpropagation by hand
#
# Training needs, for a loss L and the upstream gradient `dy = dL/dy`, the three gradients `dx`, `dw`, `db`.
# Start from the forward definition (one channel, stride 1, no padding):
#
# `y[i, j] = b + sum_{p, q} w[p, q] * x[i + p, j + q]`
#
# Each `y[i, j]` depends on `w[p, q]` through `x[i + p, j + q]`, on `x[i + p, j + q]` through `w[p, q]`, on `b`
# with slope 1. The chain rule sums over every output that used a variable:
#
# - `db = sum_{i, j} dy[i, j]`
# - `dw[p, q] = sum_{i, j} dy[i, j] * x[i + p, j + q]`: correlate the input with the upstream gradient;
# - `dx[i + p, j + q] += dy[i, j] * w[p, q]`: every output sends `dy * w` back to its window (windows overlap,
#   hence `+=`); equivalently a "full" convolution of dy with the flipped filter.
#
# With groups, the sums only run over the channels of one group, so **the gradients never leave their group**.
# Each step is checked by central finite differences: `(L(t + eps) - L(t - eps)) / (2 eps)`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import check, close
from gconv_edu.gradcheck import numeric_gradient, relative_error
from gconv_edu.groups import block_diagonal_weight, group_of_channel

# Lessons 1-6 are about WHAT is computed: calls that name no backend use im2col (NumPy + BLAS, nothing to compile).
# Lesson 7 races the backends; set GCONV_BACKEND (e.g. to numba) to run any lesson on another one.
os.environ.setdefault("GCONV_BACKEND", "im2col")
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: one channel, written out

# %%
x = rng.standard_normal((5, 6))
w = rng.standard_normal((3, 2))
b = np.array([0.3])  # (1,): one filter, one bias
out_h, out_w = 5 - 3 + 1, 6 - 2 + 1
dy = rng.standard_normal((out_h, out_w))  # a random upstream gradient: all ones would hide transposed indices


def forward_one(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return gc.conv2d(x[None, None], w[None, None], b, backend="naive")[0, 0]


def loss() -> float:
    return float(np.sum(forward_one(x, w, b) * dy))  # L = sum(y * dy), so that dL/dy = dy


db = dy.sum()
dw = np.zeros_like(w)
dx = np.zeros_like(x)
for i in range(out_h):
    for j in range(out_w):
        dw += dy[i, j] * x[i : i + 3, j : j + 2]
        dx[i : i + 3, j : j + 2] += dy[i, j] * w
for name, analytic, variable in (("dx", dx, x), ("dw", dw, w), ("db", np.array([db]), b)):
    numeric = numeric_gradient(loss, variable, eps=1e-6)  # perturbs x, w or b in place, one entry at a time
    error = relative_error(analytic, numeric)
    check(f"{name} by hand == finite differences (relative error {error:.1e})", error < 1e-7)

# %% [markdown]
# ## Step 2: dx is a full convolution with the flipped filter
#
# The scatter loop above is what backends implement with `col2im` (lesson 4). The same numbers come out of a
# forward convolution: pad dy by (kH - 1, kW - 1) and correlate with the filter rotated by 180 degrees.

# %%
dy_padded = np.pad(dy, ((2, 2), (1, 1)))
dx_full_conv = forward_one(dy_padded, w[::-1, ::-1].copy(), np.zeros(1))
check("dx == full correlation of dy with the flipped filter", close(dx, dx_full_conv))
dw_correlation = gc.conv2d(x[None, None], dy[None, None], backend="naive")[0, 0]
check("dw == correlation of x with dy (dy used as the filter)", close(dw, dw_correlation))

# %% [markdown]
# ## Step 2b: stride > 1: spread dy out with zeros, then convolve
#
# With stride s the output pixel `(i, j)` read the window at `(s*i, s*j)`, so `dx[s*i + p, s*j + q] += dy[i, j] *
# w[p, q]`. That is Step 2's rule applied to a *spread* dy: put `dy[i, j]` at `(s*i, s*j)` of a zero array (s - 1
# zeros between neighbours), pad by `k - 1`, correlate with the flipped filter. Rows or columns the forward pass
# never read (when s does not divide `H - k`) get zero gradient: pad them on at the bottom/right. This map, dy -> dx,
# is the **transposed convolution** (`gc.conv_transpose2d`), the convolution's adjoint: `<conv(a), b> =
# <a, conv_transpose(b)>`. Exercise 4 needs exactly this for its strided cases.

# %%
stride = 2
x_s = rng.standard_normal((7, 8))
w_s = rng.standard_normal((3, 3))
y_s = gc.conv2d(x_s[None, None], w_s[None, None], stride=stride)[0, 0]  # (3, 3)
dy_s = rng.standard_normal(y_s.shape)
dx_library, _, _ = gc.conv2d_backward(dy_s[None, None], x_s[None, None], w_s[None, None], stride=stride)
dx_scatter = np.zeros_like(x_s)  # Step 1's scatter rule, with the window of (i, j) starting at (s*i, s*j)
for i in range(y_s.shape[0]):
    for j in range(y_s.shape[1]):
        dx_scatter[stride * i : stride * i + 3, stride * j : stride * j + 3] += dy_s[i, j] * w_s
check("Step 1's scatter rule with stride 2 == the library's dx", close(dx_scatter, dx_library[0, 0]))
spread = np.zeros(((y_s.shape[0] - 1) * stride + 1, (y_s.shape[1] - 1) * stride + 1))  # (5, 5)
spread[::stride, ::stride] = dy_s
dx_spread = forward_one(np.pad(spread, 2), w_s[::-1, ::-1].copy(), np.zeros(1))  # (7, 7): columns 0..6
never_read = x_s.shape[1] - dx_spread.shape[1]  # column 7 was never inside a window
dx_spread = np.pad(dx_spread, ((0, x_s.shape[0] - dx_spread.shape[0]), (0, never_read)))
print(f"x {x_s.shape}, y {y_s.shape}, dy spread {spread.shape}, {never_read} column(s) never read by the forward pass")
check(
    "stride-2 dx == spread dy with zeros, then full correlation with the flipped filter",
    close(dx_spread, dx_library[0, 0]),
)
dx_transposed = gc.conv_transpose2d(dy_s[None, None], w_s[None, None], None, stride, 0, (0, never_read))[0, 0]
check("... == gc.conv_transpose2d(dy, w, stride=2, output_padding=(0, 1))", close(dx_transposed, dx_library[0, 0]))
# The adjoint identity on a grouped, padded, strided layer (PyTorch's positional order: bias, stride, padding,
# output_padding, groups).
weight_t = rng.standard_normal((6, 2, 3, 3))  # conv 4 -> 6 channels in 2 groups; its transpose maps 6 -> 4
a_t = rng.standard_normal((2, 4, 9, 10))
conv_a = gc.conv2d(a_t, weight_t, stride=2, padding=1, groups=2)  # (2, 6, 5, 5)
b_t = rng.standard_normal(conv_a.shape)
transpose_b = gc.conv_transpose2d(b_t, weight_t, None, 2, 1, (0, 1), 2)
check("conv_transpose2d restores the input's shape", transpose_b.shape == a_t.shape)
check(
    "<conv(a), b> == <a, conv_transpose(b)>: the transpose is the adjoint",
    close(np.sum(conv_a * b_t), np.sum(a_t * transpose_b), rtol=1e-12),
)

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), gridspec_kw={"width_ratios": [3, 5, 3, 8]})
shown = (
    (dy_s, f"dy ({dy_s.shape[0]} x {dy_s.shape[1]})"),
    (spread, f"dy spread with zeros (stride {stride}): {spread.shape[0]} x {spread.shape[1]}"),
    (w_s[::-1, ::-1], "filter flipped 180 degrees"),
    (
        dx_spread,
        f"dx = full correlation ({dx_spread.shape[0]} x {dx_spread.shape[1]};\n"
        f"last {never_read} column(s) never read: 0)",
    ),
)
for index, (ax, (values, title)) in enumerate(zip(axes, shown)):
    limit = np.abs(values).max()  # each panel on its own symmetric scale: red positive, blue negative, white 0
    ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    if index < 2:  # the same numbers, moved: dy[i, j] sits at (s*i, s*j) of the spread array
        for (r, c), value in np.ndenumerate(values):
            if value != 0:
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.tick_params(labelsize=6)
fig.suptitle(
    "Strided backward = transposed convolution: spread dy with zeros, then a full convolution gives dx (checked)",
    fontsize=11,
)
fig.tight_layout()
viz.save(fig, "05_strided_backward.png")

# %% [markdown]
# ## Step 3: many channels, groups, stride, padding: the library's backward
#
# `gc.conv2d_backward(dy, x, w, ...)` returns `(dx, dw, db)`; every backend implements it by hand. Check the naive
# and im2col backends against each other, then `gc.gradcheck` against finite differences (float64, random dy).

# %%
options = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=3)
xg = rng.standard_normal((2, 6, 7, 8))
wg = rng.standard_normal((9, 2, 3, 2))
yg = gc.conv2d(xg, wg, **options)
dyg = rng.standard_normal(yg.shape)
naive = gc.conv2d_backward(dyg, xg, wg, **options, backend="naive")
fast = gc.conv2d_backward(dyg, xg, wg, **options, backend="im2col")
for name, a, c in zip(("dx", "dw", "db"), naive, fast):
    check(f"{name}: naive backward == im2col backward", close(a, c))
for backend in ("naive", "im2col"):
    result = gc.gradcheck(xg, wg, rng.standard_normal(9), **options, backend=backend, max_entries=40)
    print(f"  {backend}: {result}")
    check(f"gradcheck passes for the {backend} backend (G=3, stride (2,1), padding 1, dilation (1,2))", result.passed)

# %% [markdown]
# ## Step 4: which gradients stay inside a group
#
# Measure it instead of believing it: send an upstream gradient into ONE output channel k (dy zero elsewhere) and
# see which input channels receive a gradient; perturb ONE input channel c and see which filters' gradients change.
# For a dense layer both maps are full; for G groups they are block-diagonal: a group is a separate network for both
# passes.

# %%
channels, size = 8, 6


def gradient_reach(groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(C_out, C_in) maps: |dx[c]| from dy on channel k only; |change of dw[k]| when x[c] is perturbed."""
    xs = rng.standard_normal((1, channels, size, size))
    ws = rng.standard_normal((channels, channels // groups, 3, 3))
    shape = gc.conv2d(xs, ws, padding=1, groups=groups).shape
    dx_reach = np.zeros((channels, channels))
    dw_reach = np.zeros((channels, channels))
    dy_all = rng.standard_normal(shape)
    _, dw_base, _ = gc.conv2d_backward(dy_all, xs, ws, padding=1, groups=groups)
    for k in range(channels):
        dy_k = np.zeros(shape)
        dy_k[:, k] = dy_all[:, k]
        dx_k, _, _ = gc.conv2d_backward(dy_k, xs, ws, padding=1, groups=groups)
        dx_reach[k] = np.abs(dx_k).sum(axis=(0, 2, 3))
    for c in range(channels):
        x_moved = xs.copy()
        x_moved[:, c] += rng.standard_normal((size, size))  # random, so the change differs per channel
        _, dw_moved, _ = gc.conv2d_backward(dy_all, x_moved, ws, padding=1, groups=groups)
        dw_reach[:, c] = np.abs(dw_moved - dw_base).sum(axis=(1, 2, 3))
    return dx_reach, dw_reach


for groups in (1, 2, 4):
    dx_reach, dw_reach = gradient_reach(groups)
    inside = viz.connection_matrix(channels, channels, groups)
    check(
        f"G={groups}: dx and dw reach exactly the channels of their own group",
        bool(np.all((dx_reach > 1e-12) == inside) and np.all((dw_reach > 1e-12) == inside)),
    )

# %% [markdown]
# ### Figure: the gradients themselves
#
# Send dy into output channel 0 only and draw |dx| of every input channel as an image: dense, every channel gets a
# gradient; with G = 4, only the 2 channels of group 0 do, the other 6 are exactly zero. Right: dw written out as
# the dense (C_out, C_in) grid of 3x3 tiles: a grouped layer has gradients (and weights) only in the diagonal
# tiles; the white tiles do not exist in its weight tensor.

# %%
source_filter = 0
xs = rng.standard_normal((1, channels, size, size))
dy_all = rng.standard_normal((1, channels, size, size))  # padding 1 keeps the size
dy_one = np.zeros_like(dy_all)
dy_one[:, source_filter] = dy_all[:, source_filter]
shown_groups = (1, 4)
gradients = {}
for groups in shown_groups:
    ws = rng.standard_normal((channels, channels // groups, 3, 3))
    dx_one, _, _ = gc.conv2d_backward(dy_one, xs, ws, padding=1, groups=groups)
    _, dw_all, _ = gc.conv2d_backward(dy_all, xs, ws, padding=1, groups=groups)
    dw_dense_layout = block_diagonal_weight(dw_all, groups)  # (C_out, C_in, 3, 3), zero outside the group tiles
    # The previous steps' view (lesson 2): the same layer as a dense conv with the block-diagonal weight has the same
    # gradient in the diagonal tiles.
    _, dw_as_dense, _ = gc.conv2d_backward(dy_all, xs, block_diagonal_weight(ws, groups), padding=1)
    in_tiles = block_diagonal_weight(np.ones_like(ws), groups) == 1
    check(
        f"G={groups}: dw in the diagonal tiles == the dense twin's dw there",
        close(dw_dense_layout, dw_as_dense * in_tiles),
    )
    receiving = np.abs(dx_one[0]).sum(axis=(1, 2)) > 0
    own = group_of_channel(channels, groups) == group_of_channel(channels, groups)[source_filter]
    check(
        f"G={groups}: dy on filter 0 gives dx only on its group's {int(own.sum())} input channels",
        bool(np.array_equal(receiving, own)),
    )
    gradients[groups] = (np.abs(dx_one[0]), np.abs(dw_dense_layout), int(receiving.sum()))

fig = plt.figure(figsize=(14, 6.6))
grid = fig.add_gridspec(
    len(shown_groups), channels + 2, width_ratios=[1] * channels + [0.25, 2.6], wspace=0.12, hspace=0.45
)
dx_limit = max(g[0].max() for g in gradients.values())
cmap = plt.get_cmap("cividis").copy()
cmap.set_bad("white")
for row, groups in enumerate(shown_groups):
    dx_maps, dw_layout, receiving = gradients[groups]
    colors = viz.channel_colors(channels, groups)
    for c in range(channels):
        ax = fig.add_subplot(grid[row, c])
        ax.imshow(np.ma.masked_equal(dx_maps[c], 0), cmap=cmap, vmin=0, vmax=dx_limit)
        if not dx_maps[c].any():
            ax.text(size / 2 - 0.5, size / 2 - 0.5, "0", ha="center", va="center", fontsize=11, color=viz.NEUTRAL)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colors[c])
            spine.set_linewidth(3)
        ax.set_title(f"|dx[c={c}]|", fontsize=8)
        if c == 0:
            ax.set_ylabel(f"G={groups}\n{receiving} of {channels} get dx", fontsize=9)
    ax = fig.add_subplot(grid[row, channels + 1])
    # (C_out*3, C_in*3): tile (k, c) is |dw[k, c]| (3x3)
    mosaic = dw_layout.transpose(0, 2, 1, 3).reshape(channels * 3, channels * 3)
    ax.imshow(np.ma.masked_equal(mosaic, 0), cmap=cmap, interpolation="nearest")
    for line in range(1, channels):
        ax.axhline(line * 3 - 0.5, color="white", linewidth=0.8)
        ax.axvline(line * 3 - 0.5, color="white", linewidth=0.8)
    per_group = channels // groups * 3
    for g in range(groups):
        ax.add_patch(
            plt.Rectangle(
                (g * per_group - 0.5, g * per_group - 0.5),
                per_group,
                per_group,
                fill=False,
                edgecolor=viz.group_color(g),
                linewidth=2.5,
            )
        )
    tiles = int(np.count_nonzero(dw_layout.sum(axis=(2, 3))))
    ax.set_title(f"|dw| as (C_out, C_in) tiles of 3x3: {tiles} of {channels * channels} tiles", fontsize=9)
    ax.set_xticks(np.arange(channels) * 3 + 1, range(channels), fontsize=7)
    ax.set_yticks(np.arange(channels) * 3 + 1, range(channels), fontsize=7)
    ax.set_xlabel("input channel c", fontsize=8)
    ax.set_ylabel("filter k", fontsize=8)
fig.suptitle(
    f"Gradients stay in their group: dy on filter {source_filter} reaches {gradients[4][2]} of {channels} input "
    f"channels with G=4 ({gradients[1][2]} dense); dw lives only in the diagonal tiles",
    fontsize=12,
)
viz.save(fig, "05_gradients_stay_in_group.png")

# %% [markdown]
# ## What we learned
#
# - `db = sum dy`, `dw = x correlated with dy`, `dx = dy scattered back through w` (a full convolution with the
#   flipped filter); all three checked by finite differences.
# - With stride s, dx is the full convolution of dy spread out with s - 1 zeros: the transposed convolution, the
#   convolution's adjoint (checked against `gc.conv_transpose2d` and `<conv(a), b> = <a, conv_transpose(b)>`).
# - With groups, both the forward and the backward pass of group g touch only group g's channels. So a grouped
#   layer split across two GPUs by groups needs no communication in either pass; AlexNet's towers still exchange
#   activations and their gradients at conv3 and at the fully connected layers, which are dense (lesson 8).
#
# **Exercise:** `exercises/ex4_backward.py` (`conv2d_backward` with stride, padding, dilation and groups);
# grade it with `gconv-edu grade exercises/ex4_backward.py` in a course folder (`gconv-edu course DIR`), or `gconv-edu
# grade lessons/exercises/ex4_backward.py` from the root of a checkout.

# %%
print("\nExercise: exercises/ex4_backward.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex4_backward.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex4_backward.py")
