# %% [markdown]
# # Lesson 9: do filter groups specialise? The question, and what an untrained network already shows
#
# The seed article's boldest claims are not about cost:
#
# 1. AlexNet's first-layer filters "were divided into two distinct categories": one GPU learned black-and-white
#    filters, the other colour filters;
# 2. "Due to low correlation between filters in different filter groups, each group learns a unique representation."
#
# Both are claims about *trained* networks. Before training anything, we must know what an untrained network already
# looks like under the same measurements, or we will credit learning with what the architecture (or the measurement)
# does by itself. That is what this lesson measures; lesson 10 trains the networks and compares against these
# baselines. The measurements:
#
# - **colour selectivity index** of an RGB filter: the share of its energy outside the luminance direction
#   (1, 1, 1)/sqrt(3): 0 for a black-and-white filter, 1 for a pure colour-opponent one;
# - **within/between ratio**: mean |correlation| between filters of the same group over the mean between groups.

# %%
import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import check, close
from gconv_edu.data import make_images
from gconv_edu.groups import block_diagonal_weight

FAST = viz.fast_mode()
SEEDS = range(3 if FAST else 8)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1: correlation between filters of a grouped layer, in weight space, is zero by construction
#
# "Correlation between filters" often means the cosine between weight vectors. But a filter of group 0 and one of
# group 1 read *different input channels*: written as dense filters (lesson 2), their non-zero entries never overlap,
# so their cosine is exactly 0, for random weights as much as for trained ones. A block-diagonal correlation matrix in
# weight space is the architecture, not learning.

# %%
groups, channels = 4, 16
w_random = rng.standard_normal((channels, channels // groups, 3, 3))
dense = block_diagonal_weight(w_random, groups).reshape(channels, -1)  # (C_out, C_in*kH*kW)
unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
cosine = unit @ unit.T  # (C_out, C_out)
between = ~viz.connection_matrix(channels, channels, groups)
check("between-group cosines of a RANDOM grouped layer are exactly 0", bool(np.all(cosine[between] == 0)))
within_cosine = np.abs(cosine[~between & ~np.eye(channels, dtype=bool)]).mean()
print(f"mean |cosine| within groups (random weights): {within_cosine:.2f}, between: 0 exactly")

# %% [markdown]
# ## Step 2: correlation of the filters' *responses* on images, before any training
#
# The meaningful comparison is between what filters respond to. Take the first two layers of lesson 10's network
# (conv1: 3 -> 20, 7x7; ReLU; 2x2 max-pool; conv2: 20 -> 32, 3x3 with G groups), random weights, and images from
# `gconv_edu.data` (broad colour blobs and fine grey stripes). The Pearson correlation of conv2's 32 responses over all
# images and positions gives a 32 x 32 matrix and its within/between ratio over the G groups. For G = 1 there are no
# groups: the ratio over the same split of the channels into 2 (or 4) parts is the control. Lesson 10 trains G = 1
# and G = 2 (AlexNet's two towers; G = 4 appears here only to show that the effect grows with G) and tracks the
# inter-layer version (conv1 maps against conv2 responses, as Ioannou et al. 2017 do), with its own untrained
# network per seed as the control.

# %%
images, _ = make_images(64 if FAST else 160, size=16, seed=0)
images = ((images - images.mean(axis=(0, 2, 3), keepdims=True)) / images.std()).astype(np.float64)


def conv2_responses(groups: int, seed: int) -> np.ndarray:
    """(32, N*8*8): conv2's responses of a random conv1 -> ReLU -> max-pool -> conv2 network to the images."""
    weights = np.random.default_rng(seed)
    conv1 = weights.standard_normal((20, 3, 7, 7)) / np.sqrt(3 * 49)  # He-like scale: unit-variance responses
    conv2 = weights.standard_normal((32, 20 // groups, 3, 3)) / np.sqrt(20 // groups * 9)
    hidden = np.maximum(gc.conv2d(images, conv1, padding=3, backend="im2col"), 0.0)  # (N, 20, 16, 16)
    n, c, h, w = hidden.shape
    pooled = hidden.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))  # (N, 20, 8, 8)
    responses = gc.conv2d(pooled, conv2, padding=1, groups=groups, backend="im2col")  # (N, 32, 8, 8)
    return responses.transpose(1, 0, 2, 3).reshape(32, -1)


def within_between_ratio(correlation: np.ndarray, groups: int) -> float:
    """Mean |r| over pairs in the same group (diagonal excluded) / mean |r| over pairs in different groups."""
    same = viz.connection_matrix(len(correlation), len(correlation), groups)
    off_diagonal = ~np.eye(len(correlation), dtype=bool)
    magnitude = np.abs(correlation)
    return float(magnitude[same & off_diagonal].mean() / magnitude[~same].mean())


ratios = {(g, parts): [] for g, parts in ((1, 2), (2, 2), (1, 4), (4, 4))}
grouped_correlations = []  # G=2, per seed, for the figure
for seed in SEEDS:
    for g in (1, 2, 4):
        correlation = np.corrcoef(conv2_responses(g, seed))
        if g == 2:
            grouped_correlations.append(correlation)
        for parts in (2, 4):
            if (g, parts) in ratios:
                ratios[g, parts].append(within_between_ratio(correlation, parts))
for (g, parts), values in ratios.items():
    print(
        f"G={g}, ratio over {parts} parts at initialisation: mean {np.mean(values):.2f} "
        f"(min {np.min(values):.2f}, max {np.max(values):.2f}, {len(values)} seeds)"
    )
grouped_excess = np.mean(ratios[2, 2]) - np.mean(ratios[1, 2])
check(
    "the control (G=1) shows no block structure: its ratio is 1 within 15% on average",
    abs(np.mean(ratios[1, 2]) - 1) < 0.15,
)
print(f"G=2 minus control at initialisation: {grouped_excess:+.2f} -- trained networks must be compared with this")
check(
    "untrained grouped layers already have a within/between ratio above their control (G=2 and G=4)",
    np.mean(ratios[2, 2]) > np.mean(ratios[1, 2]) and np.mean(ratios[4, 4]) > np.mean(ratios[1, 4]),
)

# %% [markdown]
# Why would an *untrained* grouped layer show blocks? Two filters of one group read the same input channels, so
# their responses share every input's own variance (the diagonal of the input covariance); filters of different
# groups share only the covariance *between* channels, which is smaller. Grouping alone makes responses within a
# group more alike than across groups, before any learning.

# %% [markdown]
# ## Step 3: colour selectivity of random filters
#
# For i.i.d. random weights, each pixel's 3 colour weights spread their energy evenly over the 3 directions of colour
# space; the chromatic part is 2 of them, so the index averages 2/3. A "colour tower" and a "grey tower" in a trained
# network must differ by more than random towers of random filters do.


# %%
def colour_selectivity(weight: np.ndarray) -> np.ndarray:
    """(F, 3, kH, kW) -> (F,): chromatic share of each filter's energy, in [0, 1]."""
    luminance = weight.mean(axis=1, keepdims=True)  # (F, 1, kH, kW): the projection on (1, 1, 1)/sqrt(3)
    return ((weight - luminance) ** 2).sum(axis=(1, 2, 3)) / (weight**2).sum(axis=(1, 2, 3))


grey, red_green = np.ones((1, 3, 5, 5)), np.zeros((1, 3, 5, 5))
red_green[0, 0], red_green[0, 1] = 1.0, -1.0
check(
    "index 0 for a black-and-white filter, 1 for a red-minus-green one",
    close(colour_selectivity(grey), 0) and close(colour_selectivity(red_green), 1),
)
many = colour_selectivity(rng.standard_normal((20_000, 3, 7, 7)))  # lesson 10's conv1 filters: 7 x 7 x 3
# The mean of 20,000 indices is within a few thousandths of 2/3 (their standard deviation is printed).
print(f"random 7x7x3 filters: index mean {many.mean():.3f}, standard deviation {many.std():.3f}")
check(f"random filters: mean index {many.mean():.3f} == 2/3 within 0.01", abs(many.mean() - 2 / 3) < 0.01)
halves = many.reshape(1000, 2, 10).mean(axis=2)  # 1000 random conv1 layers of 20 filters, 2 towers of 10
half_gap = np.abs(halves[:, 0] - halves[:, 1])
gap_95 = float(np.percentile(half_gap, 95))
print(
    f"|mean index of tower 0 - tower 1| for random 20-filter layers (towers of 10): median {np.median(half_gap):.3f}, "
    f"95th percentile {gap_95:.3f}"
)

# %%
fig, axes = plt.subplots(2, 2, figsize=(11.5, 9.5))
image = viz.draw_block_matrix(
    axes[0, 0],
    np.abs(cosine),
    groups,
    cmap="Greys",
    vmin=0,
    vmax=1,
    title="Weight space, RANDOM G=4 layer: |cosine| between filters",
)
axes[0, 0].set_xlabel("filter")
axes[0, 0].set_ylabel("filter")
fig.colorbar(image, ax=axes[0, 0], fraction=0.046)
typical = int(np.argmin(np.abs(np.array(ratios[2, 2]) - np.mean(ratios[2, 2]))))  # the seed closest to the mean
image = viz.draw_block_matrix(
    axes[0, 1],
    np.abs(grouped_correlations[typical]),
    2,
    cmap="Greys",
    vmin=0,
    vmax=1,
    title=f"Responses on images, RANDOM G=2 network: |correlation| (ratio {ratios[2, 2][typical]:.2f})",
)
axes[0, 1].set_xlabel("conv2 filter")
axes[0, 1].set_ylabel("conv2 filter")
fig.colorbar(image, ax=axes[0, 1], fraction=0.046)

labels = ["G=1\n(2 parts)", "G=2", "G=1\n(4 parts)", "G=4"]
for position, (key, values) in enumerate(ratios.items()):
    color = viz.NEUTRAL if key[0] == 1 else "black"  # G values, not groups: no group colours here
    axes[1, 0].scatter(
        np.full(len(values), position) + rng.uniform(-0.08, 0.08, len(values)),
        values,
        s=18,
        color=color,
        edgecolors="black",
        linewidths=0.3,
    )
    axes[1, 0].plot([position - 0.25, position + 0.25], [np.mean(values)] * 2, color="black")
axes[1, 0].axhline(1.0, color=viz.NEUTRAL, linestyle=":")
axes[1, 0].set_xticks(range(len(labels)), labels)
axes[1, 0].set_ylabel("within / between mean |correlation|")
axes[1, 0].set_title(
    f"Untrained: within/between ratio per seed (bar: mean); G=2 vs control {grouped_excess:+.2f}", fontsize=10
)

axes[1, 1].hist(many, bins=60, color=viz.NEUTRAL, density=True, label="random filters (7x7x3)")
axes[1, 1].axvline(2 / 3, color="black", linestyle="--", label="2/3 (chromatic share of colour space)")
axes[1, 1].text(
    0.98,
    0.95,
    f"two random towers of 10 filters:\n|difference of mean index| < {gap_95:.3f}\nin 95% of 1000 random layers",
    transform=axes[1, 1].transAxes,
    ha="right",
    va="top",
    fontsize=8,
    bbox={"facecolor": "white", "edgecolor": viz.NEUTRAL},
)
axes[1, 1].set_xlabel("colour selectivity index (0: black-and-white, 1: pure colour)")
axes[1, 1].set_ylabel("density")
axes[1, 1].set_title("Untrained filters are 2/3 'colour' on average, both towers alike", fontsize=10)
axes[1, 1].legend(fontsize=8, loc="upper left")
fig.suptitle(
    f"Before any training, grouping alone makes blocks: weight cosines 0 across groups, response ratio "
    f"{np.mean(ratios[2, 2]):.2f} (G=2) vs {np.mean(ratios[1, 2]):.2f} (G=1); colour: none",
    fontsize=11,
)
fig.tight_layout()
viz.save(fig, "09_specialisation_baselines.png")

# %% [markdown]
# ## What we can say before training
#
# - "Low correlation between filters of different groups" is guaranteed in weight space by the architecture (exactly
#   zero), so it cannot be evidence of learning. Only correlations of *responses* can be.
# - Untrained, the response correlations of a grouped layer ALREADY have a within/between ratio above 1 (the
#   ratios printed above, for G = 2 and G = 4; the control G = 1 sits near 1). Whatever lesson 10 finds after
#   training must be compared with an untrained network, not with 1: a ratio above 1 alone is not evidence of
#   specialisation.
# - Untrained filters have a colour selectivity index near 2/3, and two random towers of 10 differ by less than
#   the 95th-percentile gap printed above: a "colour tower vs grey tower" must exceed it.
#
# **Lesson 10** (`lessons/10_do_groups_specialise.py`) trains the network with G = 1 and G = 2 over at least 8 seeds,
# with rules fixed before training, and measures both claims against untrained controls; it is the end of this story.
#
# **Exercise:** none new; check your backward pass (`gconv-edu grade lessons/exercises/ex4_backward.py`), because
# lesson 10 trains with it, then run lesson 10.

# %%
print("\nNext: lessons/10_do_groups_specialise.py trains the networks and compares against these baselines.")
print("Exercise: none new; check your backward pass with gconv-edu grade lessons/exercises/ex4_backward.py")
