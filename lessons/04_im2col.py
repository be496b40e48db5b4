# %% [markdown]
# # Lesson 4: im2col, and the grouped product as one batched GEMM
#
# The naive loop does one small dot product per output pixel. Computers are fastest at one big matrix product
# (GEMM, tuned in BLAS for decades). *im2col* rewrites the convolution as one: copy every window of the input into
# a column, and the convolution becomes `(filters) @ (columns)`.
#
# - columns: `(C_in * kH * kW, H_out * W_out)` per image, rows ordered (channel, kernel row, kernel column);
# - filters: the weight reshaped to `(C_out, C_in/G * kH * kW)`.
#
# With groups, the rows of the column matrix come in G bands (one per group of input channels) and the product is
# block-diagonal: G independent GEMMs of size `(C_out/G) x (C_in/G*kH*kW) x (H_out*W_out)`, which NumPy's `matmul`
# runs as ONE batched call over a leading G axis. The price: the column matrix holds every input pixel up to
# kH*kW times.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.backends import im2col as im2col_backend
from gconv_edu.configs import layer_table
from gconv_edu.course import check, close
from gconv_edu.groups import block_diagonal_weight

# Lessons 1-6 are about WHAT is computed: calls that name no backend use im2col (NumPy + BLAS, nothing to compile).
# Lesson 7 races the backends; set GCONV_BACKEND (e.g. to numba) to run any lesson on another one.
os.environ.setdefault("GCONV_BACKEND", "im2col")
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: unfold the windows into columns

# %%
n, c_in, c_out, groups, size, k = 1, 4, 4, 2, 5, 3
x = rng.standard_normal((n, c_in, size, size))
weight = rng.standard_normal((c_out, c_in // groups, k, k))
geom = gc.ConvGeometry.from_shapes(x.shape, weight.shape, groups=groups)
cols6 = im2col_backend.im2col(x, geom)  # (N, C_in, kH, kW, H_out, W_out)
columns = cols6.reshape(c_in * k * k, geom.out_h * geom.out_w)  # (C_in*kH*kW, H_out*W_out), N = 1
print("input", x.shape, "-> column matrix", columns.shape, f"= ({c_in}*{k}*{k}, {geom.out_h}*{geom.out_w})")
i, j = 1, 2  # output pixel (1, 2) is column i*W_out + j
check(
    "column (1, 2) is the flattened window x[:, :, 1:4, 2:5]",
    close(columns[:, i * geom.out_w + j], x[0, :, i : i + k, j : j + k].reshape(-1)),
)

# %% [markdown]
# ### Figure: which window becomes which column
#
# A tiny case you can read cell by cell: one image of 2 channels, 4x4, whose pixel values are their own labels
# (channel 0 holds 0..15, channel 1 holds 100..115), and a 3x3 filter: 2x2 output pixels, so 2x2 windows. The window
# of output pixel (i, j), flattened in the order (channel, kernel row, kernel column), is column `i*W_out + j`.
# We build the columns by hand from the windows and check them against `im2col`.

# %%
labels = np.stack([np.arange(16), 100 + np.arange(16)]).reshape(1, 2, 4, 4).astype(np.float64)  # (N, C_in, H, W)
label_geom = gc.ConvGeometry.from_shapes(labels.shape, (1, 2, 3, 3))
windows = [(oh, ow) for oh in range(label_geom.out_h) for ow in range(label_geom.out_w)]
columns_by_hand = np.stack([labels[0, :, oh : oh + 3, ow : ow + 3].reshape(-1) for oh, ow in windows], axis=1)
columns_im2col = im2col_backend.im2col(labels, label_geom).reshape(2 * 3 * 3, len(windows))  # (C_in*kH*kW, pixels)
print(f"{len(windows)} windows -> column matrix {columns_im2col.shape}; column 3 = {columns_im2col[:, 3].astype(int)}")
check(
    "window (i, j), flattened (channel, row, column), == column i*W_out + j of im2col",
    np.array_equal(columns_by_hand, columns_im2col),
)

fig, ax = plt.subplots(figsize=(13, 7.2))
window_colors = [viz.WINDOW_PALETTE[index % 2] for index in range(len(windows))]
for index, (oh, ow) in enumerate(windows):
    for channel in range(2):
        mask = np.zeros((4, 4), dtype=bool)
        mask[oh : oh + 3, ow : ow + 3] = True
        viz.draw_grid(
            ax,
            labels[0, channel],
            (2.0 + index * 5.0, 11.0 - channel * 7.0),
            [(mask, window_colors[index])],
            label=f"window ({oh},{ow})\n-> column {index}" if channel == 0 else None,
        )
for channel in range(2):
    ax.text(1.5, 13.0 - channel * 7.0, f"channel {channel}", ha="right", va="center", fontsize=9)
column_x = 25.0
column_masks = []
for index in range(len(windows)):
    mask = np.zeros(columns_im2col.shape, dtype=bool)
    mask[:, index] = True
    column_masks.append((mask, window_colors[index]))
viz.draw_grid(
    ax,
    columns_im2col,
    (column_x, 0.0),
    column_masks,
    label=f"im2col columns ({columns_im2col.shape[0]} x {columns_im2col.shape[1]})",
)
for row in range(columns_im2col.shape[0]):
    channel, tap = divmod(row, 9)
    ax.text(
        column_x - 0.2,
        columns_im2col.shape[0] - 0.5 - row,
        f"c{channel} p{tap // 3} q{tap % 3}",
        ha="right",
        va="center",
        fontsize=6,
    )
for index in range(len(windows)):
    ax.text(column_x + index + 0.5, -0.4, str(index), ha="center", va="top", fontsize=7)
ax.text(column_x + 2, -1.3, "column = i*W_out + j", ha="center", va="top", fontsize=8)
ax.set_xlim(-1.5, column_x + 5)
ax.set_ylim(-2, 19.5)
ax.set_aspect("equal")
ax.axis("off")
ax.set_title(
    f"im2col: the window of output pixel (i, j) becomes column i*W_out + j: {len(windows)} windows of 2x3x3 -> "
    f"a {columns_im2col.shape[0]} x {columns_im2col.shape[1]} matrix (checked against im2col)",
    fontsize=11,
)
viz.save(fig, "04_im2col_unfolding.png")

# %% [markdown]
# ## Step 2: the convolution is now a matrix product
#
# Dense view first: with the block-diagonal weight (lesson 2) reshaped to `(C_out, C_in*kH*kW)`, one GEMM gives the
# output, (C_out, H_out*W_out).

# %%
dense_matrix = block_diagonal_weight(weight, groups).reshape(c_out, c_in * k * k)
y_dense_gemm = (dense_matrix @ columns).reshape(1, c_out, geom.out_h, geom.out_w)
y_naive = gc.conv2d(x, weight, groups=groups, backend="naive")
check("block-diagonal weight @ columns == naive grouped conv", close(y_dense_gemm, y_naive))

# %% [markdown]
# ## Step 3: skip the zeros: one *batched* GEMM over groups
#
# Half of `dense_matrix` is zeros (1 - 1/G in general). Reshape instead: weight `(G, C_out/G, C_in/G*kH*kW)`,
# columns `(G, C_in/G*kH*kW, H_out*W_out)`, and `np.matmul` multiplies group by group.

# %%
weight_grouped = weight.reshape(groups, c_out // groups, c_in // groups * k * k)
columns_grouped = columns.reshape(groups, c_in // groups * k * k, geom.out_h * geom.out_w)
# (G, C_out/G, H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, H_out*W_out)
y_batched = np.matmul(weight_grouped, columns_grouped).reshape(1, c_out, geom.out_h, geom.out_w)
check("batched GEMM over groups == dense GEMM with the block-diagonal weight", close(y_batched, y_dense_gemm))
check(
    "batched GEMM == gc.conv2d(backend='im2col') (which also chunks the batch)",
    close(y_batched, gc.conv2d(x, weight, groups=groups, backend="im2col")),
)
print(
    f"multiply-adds: dense GEMM {dense_matrix.size * columns.shape[1]}, batched {weight.size * columns.shape[1]} "
    f"(= geometry.macs = {geom.macs})"
)
check("the batched GEMM does exactly geometry.macs multiply-adds", weight.size * columns.shape[1] == geom.macs)

# A batch of several images with stride and padding, through the real backend:
xb = rng.standard_normal((3, 6, 9, 8))
wb = rng.standard_normal((9, 2, 3, 2))
options = dict(stride=(2, 1), padding=1, groups=3)
check(
    "im2col backend == naive backend (N=3, G=3, stride (2,1), padding 1, 3x2 kernel)",
    close(gc.conv2d(xb, wb, **options, backend="im2col"), gc.conv2d(xb, wb, **options, backend="naive")),
)

# %% [markdown]
# ### Figure: the product, drawn with its group blocks
#
# Left to right: the dense weight matrix (only its diagonal blocks are non-zero), the column matrix (its row bands
# belong to the groups of input channels), and the output (its row bands are the groups of output channels). Each
# group's block multiplies only its own band of columns: the G products are independent.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [30, 9, 9], "wspace": 0.55})
rows_per_group = c_in // groups * k * k
viz.draw_block_matrix(axes[0], np.abs(dense_matrix), groups, mask_zeros=True)
axes[0].set_xlabel("column-matrix row: (input channel, kernel row, kernel column)")
axes[0].set_title(f"weight as (C_out, C_in*kH*kW) = {dense_matrix.shape}", fontsize=10)
axes[1].imshow(columns, cmap="Greys", aspect="auto", interpolation="nearest")
for g in range(groups):
    band = plt.Rectangle(
        (-0.5, g * rows_per_group - 0.5),
        columns.shape[1],
        rows_per_group,
        fill=False,
        edgecolor=viz.group_color(g),
        linewidth=3,
    )
    axes[1].add_patch(band)
axes[1].set_xlabel("output pixel (i*W_out + j)")
axes[1].set_ylabel("(input channel, kernel row, kernel column)")
axes[1].set_title(f"columns {columns.shape}", fontsize=10)
viz.draw_block_matrix(axes[2], y_naive.reshape(c_out, -1), 1)
for g in range(groups):
    band = plt.Rectangle(
        (-0.5, g * c_out // groups - 0.5),
        columns.shape[1],
        c_out // groups,
        fill=False,
        edgecolor=viz.group_color(g),
        linewidth=3,
    )
    axes[2].add_patch(band)
for ax in axes:
    ax.set_aspect("auto")
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
for left_ax, right_ax, symbol in ((axes[0], axes[1], "@"), (axes[1], axes[2], "=")):
    # halfway between the panels, left of the right panel's y label
    middle = left_ax.get_position().x1 + 0.25 * (right_ax.get_position().x0 - left_ax.get_position().x1)
    fig.text(middle, 0.5, symbol, fontsize=22, ha="center", va="center")
axes[2].set_xlabel("output pixel (i*W_out + j)")
axes[2].set_title(f"output (C_out, H_out*W_out) = {(c_out, geom.out_h * geom.out_w)}", fontsize=10)
fig.suptitle(
    f"im2col: G={groups} groups make the product block-diagonal, i.e. {groups} independent GEMMs (one batched matmul)",
    fontsize=12,
)
viz.save(fig, "04_im2col_gemm.png")

# %% [markdown]
# ## Step 4: the workspace: what the speed costs in memory
#
# The column matrix has `N * C_in * kH * kW * H_out * W_out` entries: with stride 1 and "same" padding, kH*kW
# copies of the input. `gconv_edu`'s im2col backend therefore processes the batch in chunks whose column buffers (the
# columns and their copy rearranged by group: two at a time) fit a cap (`GCONV_IM2COL_WORKSPACE_MB`, default 256 MiB);
# `batch_chunk` says how many images a chunk holds.

# %%
NAMED = layer_table()  # name: (C_in, C_out, k, padding, G, H=W) of the layers `gconv-edu bench` times (batch 8)
names, input_mib, workspace_mib = [], [], []
for name, (ci, co, kk, pad, g, hw) in NAMED.items():
    geo = gc.ConvGeometry.from_shapes((8, ci, hw, hw), (co, ci // g, kk, kk), padding=pad, groups=g)
    workspace = geo.batch * geo.in_channels * geo.kernel_area * geo.out_h * geo.out_w * 4
    chunk = im2col_backend.batch_chunk(geo, 4)
    names.append(name)
    input_mib.append(np.prod(geo.x_shape) * 4 / 2**20)
    workspace_mib.append(workspace / 2**20)
    print(
        f"{name:<18} input {input_mib[-1]:6.1f} MiB  columns {workspace_mib[-1]:7.1f} MiB "
        f"({workspace_mib[-1] / input_mib[-1]:4.1f}x)  -> chunks of {chunk} image(s) under the 256 MiB cap"
    )
check(
    "with stride 1 and 'same' padding the workspace is exactly kH*kW times the input",
    all(abs(w / i - NAMED[nm][2] ** 2) < 1e-9 for nm, i, w in zip(names, input_mib, workspace_mib)),
)

# %%
fig, ax = plt.subplots(figsize=(8.5, 4))
positions = np.arange(len(names))
# One precision for both bars: a 1x1 layer's columns equal its input, and the labels must say so. The columns are
# the im2col backend's workspace: a backend colour (lesson 7's first), not a group's.
viz.bar_labels(ax, ax.bar(positions - 0.2, input_mib, 0.4, color=viz.NEUTRAL, label="input x"), "{:.1f}")
viz.bar_labels(
    ax, ax.bar(positions + 0.2, workspace_mib, 0.4, color=viz.backend_color(0), label="im2col columns"), "{:.1f}"
)
ax.set_xticks(positions, [f"{nm}\n{NAMED[nm][2]}x{NAMED[nm][2]}" for nm in names], fontsize=8)
ax.set_ylabel("MiB (float32, batch 8)")
ratio_by_kernel = {NAMED[nm][2]: w / i for nm, i, w in zip(names, input_mib, workspace_mib)}
ax.set_title(
    "im2col's column buffer is kH*kW times the input: "
    + ", ".join(f"{ratio:.0f}x for {kk}x{kk}" for kk, ratio in sorted(ratio_by_kernel.items(), reverse=True)),
    fontsize=10,
)
ax.legend(fontsize=8)
viz.save(fig, "04_im2col_workspace.png")

# %% [markdown]
# ## What we learned
#
# - im2col turns a (grouped) convolution into one batched GEMM `(G, C_out/G, K) @ (G, K, pixels)`,
#   `K = C_in/G * kH * kW`; the block-diagonal zeros are never multiplied.
# - It buys BLAS speed with kH*kW times the input in workspace. With many groups the per-group GEMMs get thin
#   (K = 9 for depthwise 3x3), and a GEMM that thin is limited by memory, not arithmetic: lesson 7.
#
# **Exercise:** `exercises/ex3_im2col.py` (`im2col` and a grouped `conv2d_forward` with one batched matmul);
# grade it with `gconv-edu grade exercises/ex3_im2col.py` in a course folder (`gconv-edu course DIR`), or `gconv-edu
# grade lessons/exercises/ex3_im2col.py` from the root of a checkout.

# %%
print("\nExercise: exercises/ex3_im2col.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex3_im2col.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex3_im2col.py")
