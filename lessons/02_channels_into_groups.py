# %% [markdown]
# # Lesson 2: how channels partition into groups
#
# In lesson 1 every filter read every input channel. A *grouped* convolution cuts
# the C_in input channels into G equal groups and the C_out filters into G equal groups; the filters of group g read
# only the input channels of group g. Group g owns
#
# - input channels `[g*C_in/G, (g+1)*C_in/G)`, output channels `[g*C_out/G, (g+1)*C_out/G)`,
# - and each of its filters has shape `(C_in/G, kH, kW)`: the weight tensor is `(C_out, C_in/G, kH, kW)`.
#
# AlexNet (Krizhevsky et al. 2012, section 3.2) did this without naming it: its conv2, conv4 and conv5 kernels "take
# input only from those kernel maps ... which reside on the same GPU". "Filter groups" is a later name (Ioannou et
# al. 2017, "Deep Roots"); PyTorch and Caffe call the parameter `groups`.
#
# G = 1 is the ordinary (dense) convolution; G = C_in is *depthwise* (one input channel per filter, lesson 6).
# We check two equivalent views: G independent small convolutions, and one dense convolution whose weight is zero
# outside G diagonal blocks.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import check, close
from gconv_edu.groups import block_diagonal_weight, group_slices

# Lessons 1-6 are about WHAT is computed: calls that name no backend use im2col (NumPy + BLAS, nothing to compile).
# Lesson 7 races the backends; set GCONV_BACKEND (e.g. to numba) to run any lesson on another one.
os.environ.setdefault("GCONV_BACKEND", "im2col")
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: which channels belong to which group

# %%
c_in, c_out = 8, 8
for groups in (1, 2, 4, 8):
    slices = group_slices(c_in, c_out, groups)
    owned = ", ".join(
        f"g{g}: in {s_in.start}..{s_in.stop - 1} -> out {s_out.start}..{s_out.stop - 1}"
        for g, (s_in, s_out) in enumerate(slices)
    )
    print(f"G={groups}: {owned}")
check(
    "the group slices cover every channel exactly once (G=4)",
    sorted(i for s, _ in group_slices(8, 8, 4) for i in range(s.start, s.stop)) == list(range(8)),
)

# %% [markdown]
# ### Figure: the channel-to-filter connections
#
# Each line is one `kH x kW` slice of weights, `weight[k, c]`: filter k reading input channel c of its group (a
# filter is `C_in/G` such slices stacked). With G groups the
# diagram falls apart into G disconnected pieces, and the number of lines (the weights) drops by G.

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 4.2))
for ax, groups in zip(axes, (1, 2, 4, 8)):
    name = "dense" if groups == 1 else ("depthwise" if groups == c_in else f"{groups} groups")
    links = c_out * c_in // groups
    viz.draw_connections(ax, c_in, c_out, groups, title=f"G={groups} ({name}): {links} connections")
fig.suptitle(
    "Filters connect only to the input channels of their own group: G groups cut the connections by G", fontsize=12
)
viz.save(fig, "02_group_connections.png")

# %% [markdown]
# ### Figure: filters as blocks of depth slabs
#
# Lesson 1's filter is a 3-D block: one `kH x kW` slab per input channel it reads. Drawn in depth, an input of
# C_in = 8 channels is 8 slabs; a dense filter spans all 8, a filter of a G-group layer spans only the `C_in/G` slabs
# of its own group, at its group's depth (dashed: the channels it never reads). The drawing is made from the
# non-zero channels of each filter in the dense (block-diagonal) form of a random grouped weight.

# %%
slab_filters = 4
fig, axes = plt.subplots(3, 1, figsize=(12, 9.5))
for ax, groups in zip(axes, (1, 2, 4)):
    w_random = rng.standard_normal((slab_filters, c_in // groups, 3, 3))  # (C_out, C_in/G, kH, kW)
    spans = np.abs(block_diagonal_weight(w_random, groups)).sum(axis=(2, 3)) > 0  # (C_out, C_in): slab k reads c
    check(
        f"G={groups}: each filter spans exactly C_in/G = {c_in // groups} input channels, those of its group",
        bool(np.array_equal(spans, viz.connection_matrix(c_in, slab_filters, groups)))
        and bool(np.all(spans.sum(axis=1) == w_random.shape[1])),
    )
    viz.draw_slab_stack(ax, (0.0, 0.0), viz.channel_colors(c_in, groups), size=2.2)
    ax.text(1.9, -0.45, f"input x: C_in = {c_in} slabs (H x W)", ha="center", va="top", fontsize=9)
    filter_colors = viz.channel_colors(slab_filters, groups)
    for k in range(slab_filters):
        left = 5.5 + 3.2 * k
        colors = [filter_colors[k] if spans[k, c] else None for c in range(c_in)]
        viz.draw_slab_stack(ax, (left, 0.6), colors, size=1.0)
        ax.text(
            left + 1.3,
            -0.45,
            f"filter {k}: {int(spans[k].sum())} x 3 x 3\n(channels "
            f"{np.flatnonzero(spans[k]).min()}..{np.flatnonzero(spans[k]).max()})",
            ha="center",
            va="top",
            fontsize=8,
        )
    name = "dense" if groups == 1 else f"{groups} groups"
    ax.text(-0.6, 1.6, f"G={groups}\n({name})", ha="right", va="center", fontsize=11)
    ax.set_xlim(-2.2, 5.5 + 3.2 * slab_filters)
    ax.set_ylim(-1.4, 3.9)
    ax.set_aspect("equal")
    ax.axis("off")
fig.suptitle(
    "A filter is a (C_in/G) x kH x kW block: with G groups it spans only its group's C_in/G input slabs "
    "(dashed: never read)",
    fontsize=12,
)
viz.save(fig, "02_filter_slabs.png")

# %% [markdown]
# ## Step 2: a grouped convolution is G independent convolutions
#
# Slice the input channels and the filters of each group, convolve each group on its own with `groups=1`, and stack
# the outputs along the channel axis. That is the definition; `gc.conv2d(..., groups=G)` must agree.

# %%
groups = 4
x = rng.standard_normal((2, c_in, 7, 6))
weight = rng.standard_normal((c_out, c_in // groups, 3, 3))  # (C_out, C_in/G, kH, kW)
bias = rng.standard_normal(c_out)
pieces = [
    gc.conv2d(x[:, s_in], weight[s_out], bias[s_out], padding=1, backend="im2col")
    for s_in, s_out in group_slices(c_in, c_out, groups)
]
y_pieces = np.concatenate(pieces, axis=1)
y_grouped = gc.conv2d(x, weight, bias, padding=1, groups=groups, backend="naive")
print("weight shape", weight.shape, "-> output shape", y_grouped.shape)
check("concatenation of G separate convolutions == gc.conv2d(groups=4, backend='naive')", close(y_pieces, y_grouped))

# %% [markdown]
# ## Step 3: the weight as a block-diagonal matrix
#
# Look at one kernel tap (p, q): the dense weight `W[:, :, p, q]` is a C_out x C_in matrix that maps the input
# channels to the output channels. Grouping keeps only the G diagonal blocks of size (C_out/G) x (C_in/G) and
# forces the rest to zero. `gconv_edu.groups.block_diagonal_weight` writes that dense weight out, so a dense
# convolution (G = 1) with it must give the grouped result.

# %%
dense_weight = block_diagonal_weight(weight, groups)  # (C_out, C_in, kH, kW)
y_dense = gc.conv2d(x, dense_weight, bias, padding=1, groups=1, backend="im2col")
check("grouped conv == dense conv with the block-diagonal weight", close(y_grouped, y_dense))
zero_share = float(np.mean(dense_weight == 0))
print(f"share of the dense weight that is structurally zero: {zero_share:.2f} (= 1 - 1/G = {1 - 1 / groups:.2f})")
check("a fraction 1 - 1/G of the dense weight is zero", abs(zero_share - (1 - 1 / groups)) < 1e-12)
nonzero_per_row = np.count_nonzero(dense_weight[:, :, 0, 0], axis=1)
check("every filter (row) has exactly C_in/G non-zero entries per tap", bool(np.all(nonzero_per_row == c_in // groups)))

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.7))
for ax, g in zip(axes, (1, 2, 4, 8)):
    w_g = rng.standard_normal((c_out, c_in // g, 3, 3))
    magnitude = np.abs(block_diagonal_weight(w_g, g)).sum(axis=(2, 3))  # (C_out, C_in): weight mass per channel pair
    viz.draw_block_matrix(
        ax, magnitude, g, title=f"G={g}: {c_out * c_in // g} of {c_out * c_in} channel pairs", mask_zeros=True
    )
fig.suptitle(
    "As a C_out x C_in matrix the grouped weight is block-diagonal (grey: sum of |w| over the 3x3 taps; "
    "white: always 0)",
    fontsize=11,
)
viz.save(fig, "02_block_diagonal_weight.png")

# %% [markdown]
# ## Step 4: the structure is kept by the layer's shape, not by its values
#
# If the dense layer is trained with the block-diagonal weight, does the gradient stay inside the blocks? The
# gradient of an entry is the correlation of its input channel with its output channel's upstream gradient, which is
# not zero in general. So a dense layer *initialised* block-diagonal would drift out of it: grouping is a constraint
# kept by the layer's shape, not by the initial values. Lesson 5 derives these gradients.

# %%
dy = rng.standard_normal(y_dense.shape)
_, dw_dense, _ = gc.conv2d_backward(dy, x, dense_weight, padding=1)
_, dw_grouped, _ = gc.conv2d_backward(dy, x, weight, padding=1, groups=groups)
off_block = block_diagonal_weight(np.ones_like(weight), groups) == 0
print(f"dense gradient, largest |dw| outside the blocks: {np.abs(dw_dense[off_block]).max():.2f}")
check(
    "the dense gradient inside the blocks == the grouped gradient",
    close(block_diagonal_weight(dw_grouped, groups)[~off_block], dw_dense[~off_block]),
)
check(
    "the dense gradient outside the blocks is not zero (a dense layer would leave the block structure)",
    np.abs(dw_dense[off_block]).max() > 1e-3,
)

# %% [markdown]
# ## Summary
#
# - Group g: inputs `[g*C_in/G, (g+1)*C_in/G)`, outputs `[g*C_out/G, (g+1)*C_out/G)`; weight `(C_out, C_in/G, kH, kW)`.
# - grouped conv == G separate convolutions == dense conv with a block-diagonal weight (1 - 1/G of it zero).
#
# **Exercise:** `exercises/ex2_groups.py` (beside this lesson: `group_slices` and `conv_cost`; lesson 3 has the cost
# formulas), then add groups to your loop in `ex1_naive_forward.py`. Grade with
# `gconv-edu grade exercises/ex2_groups.py exercises/ex1_naive_forward.py` in a course folder (`gconv-edu course DIR`),
# or `gconv-edu grade lessons/exercises/ex2_groups.py lessons/exercises/ex1_naive_forward.py` from the root of a
# checkout.

# %%
print("\nExercise: exercises/ex2_groups.py, and groups in ex1_naive_forward.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR):")
print("    gconv-edu grade exercises/ex2_groups.py exercises/ex1_naive_forward.py")
print("from the root of a checkout:")
print("    gconv-edu grade lessons/exercises/ex2_groups.py lessons/exercises/ex1_naive_forward.py")
