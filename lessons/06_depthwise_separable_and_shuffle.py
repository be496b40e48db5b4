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
from gconv_edu.course import check, close, median_seconds
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
# ## Step 5: MobileNet's trade-off: accuracy against multiply-adds
#
# MobileNet (Howard et al. 2017) is conv 3x3 (stride 2), then 13 depthwise-separable pairs (its Table 1), a global
# average pool and a 1000-way classifier. Two knobs shrink it: the width multiplier alpha (every channel count times
# alpha, section 3.3) and the input resolution (section 3.4). Our geometry recomputes the multiply-adds and parameters
# of every variant of Tables 6 and 7 and of Table 4's dense twin (every pair replaced by one dense 3x3), and compares
# them with the paper's; the ImageNet accuracies are the paper's (quoted, not measured here). Table 1 marks the last
# depthwise layer "s2", but its input and output are both 7x7 (the 7x7 average pool follows), so we use stride 1.

# %%
# (C_out, stride) of the 13 depthwise-separable pairs (Howard et al. 2017, Table 1), after the first 3x3 conv 3 -> 32.
MOBILENET_BODY = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
# Quoted from Howard et al. 2017: (ImageNet top-1 accuracy %, million mult-adds, million parameters).
MOBILENET_TABLE6_QUOTED = {1.0: (70.6, 569, 4.2), 0.75: (68.4, 325, 2.6), 0.5: (63.7, 149, 1.3), 0.25: (50.6, 41, 0.5)}
MOBILENET_TABLE7_QUOTED = {224: (70.6, 569, 4.2), 192: (69.1, 418, 4.2), 160: (67.2, 290, 4.2), 128: (64.4, 186, 4.2)}
MOBILENET_TABLE4_QUOTED = {"dense": (71.7, 4866, 29.3), "separable": (70.6, 569, 4.2)}


def mobilenet_cost(alpha: float = 1.0, resolution: int = 224, separable: bool = True) -> tuple[float, float]:
    """(million multiply-adds, million parameters) of MobileNet-`resolution` with width multiplier `alpha`."""

    def layer(c_in: int, c_out: int, k: int, size: int, stride: int = 1, groups: int = 1) -> gc.ConvGeometry:
        shape = (c_out, c_in // groups, k, k)
        return gc.ConvGeometry.from_shapes((1, c_in, size, size), shape, stride=stride, padding=k // 2, groups=groups)

    layers = [layer(3, int(32 * alpha), 3, resolution, stride=2)]
    c_in, size = int(32 * alpha), layers[0].out_h
    for c_out, stride in MOBILENET_BODY:
        c_out = int(c_out * alpha)
        if separable:
            depthwise = layer(c_in, c_in, 3, size, stride, groups=c_in)
            layers += [depthwise, layer(c_in, c_out, 1, depthwise.out_h)]
        else:
            layers.append(layer(c_in, c_out, 3, size, stride))
        c_in, size = c_out, layers[-1].out_h
    macs = sum(g.macs for g in layers) + c_in * 1000  # + the classifier on the pooled c_in features
    params = sum(g.params for g in layers) + c_in * 1000 + 1000  # conv weights (no biases: batch norm follows)
    return macs / 1e6, params / 1e6


print(
    f"{'variant':<22} {'M mult-adds ours':>16} {'paper':>6} {'M params ours':>13} {'paper':>6} {'top-1 % (quoted)':>17}"
)
variants = {}
for alpha, quoted in MOBILENET_TABLE6_QUOTED.items():
    variants[f"{alpha} MobileNet-224"] = (mobilenet_cost(alpha=alpha), quoted)
for resolution, quoted in MOBILENET_TABLE7_QUOTED.items():
    variants[f"1.0 MobileNet-{resolution}"] = (mobilenet_cost(resolution=resolution), quoted)
variants["dense-conv MobileNet"] = (mobilenet_cost(separable=False), MOBILENET_TABLE4_QUOTED["dense"])
for name, ((macs, params), (accuracy, quoted_macs, quoted_params)) in variants.items():
    print(f"{name:<22} {macs:>16.1f} {quoted_macs:>6} {params:>13.2f} {quoted_params:>6} {accuracy:>17}")
check(
    "our multiply-adds match Tables 4, 6 and 7 to the paper's rounding (within 1 M or 1 %)",
    all(abs(m - q) <= max(1.0, 0.01 * q) for (m, _), (_, q, _) in variants.values()),
)
check(
    "our parameters match to the paper's rounding (within 0.1 M)",
    all(abs(p - q) <= 0.1 for (_, p), (_, _, q) in variants.values()),
)
dense_macs, separable_macs = variants["dense-conv MobileNet"][0][0], variants["1.0 MobileNet-224"][0][0]
print(
    f"separable / dense MobileNet: {separable_macs / dense_macs:.3f} of the mult-adds for "
    f"{MOBILENET_TABLE4_QUOTED['dense'][0] - MOBILENET_TABLE4_QUOTED['separable'][0]:.1f} points of accuracy (quoted)"
)

# %%
fig, ax = plt.subplots(figsize=(9.5, 5.2))
# Two knobs, not groups: black and dark grey (the group colours mean groups in every figure of the course).
knob_series = (
    (
        "width multiplier alpha (224x224, Table 6)",
        "black",
        "o",
        "-",
        [f"{a} MobileNet-224" for a in MOBILENET_TABLE6_QUOTED],
    ),
    (
        "resolution (alpha = 1.0, Table 7)",
        "#5A5A5A",
        "s",
        "--",
        [f"1.0 MobileNet-{r}" for r in MOBILENET_TABLE7_QUOTED],
    ),
)
labelled = set()
for series, color, marker, line, names in knob_series:
    points = sorted((variants[name][0][0], variants[name][1][0], name) for name in names)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, linestyle=line, color=color, label=series)
    for macs, accuracy, name in points:
        if name not in labelled:  # 1.0 MobileNet-224 belongs to both series: label it once
            labelled.add(name)
            ax.annotate(
                name.replace(" MobileNet", ""),
                (macs, accuracy),
                xytext=(5, -11),
                textcoords="offset points",
                fontsize=7,
            )
(dense_macs_, _), (dense_accuracy, _, _) = variants["dense-conv MobileNet"]
ax.scatter(
    [dense_macs_],
    [dense_accuracy],
    marker="D",
    color=viz.NEUTRAL,
    edgecolors="black",
    zorder=3,
    label="dense 3x3 convolutions (Table 4)",
)
ax.annotate("dense twin", (dense_macs_, dense_accuracy), xytext=(-60, 6), textcoords="offset points", fontsize=7)
ax.set_xscale("log")
ax.set_xlabel("million multiply-adds (recomputed by our geometry; equal to the paper's to rounding)")
ax.set_ylabel("ImageNet top-1 accuracy, % (quoted from Howard et al. 2017)")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
ax.set_title(
    f"MobileNet: depthwise-separable layers cut mult-adds to {separable_macs / dense_macs:.0%} of the dense twin's "
    f"for {MOBILENET_TABLE4_QUOTED['dense'][0] - MOBILENET_TABLE4_QUOTED['separable'][0]:.1f} points;\n"
    "thinner (alpha) or smaller inputs trade accuracy smoothly for mult-adds (accuracies quoted, Tables 4, 6, 7)",
    fontsize=10,
)
viz.save(fig, "06_mobilenet_tradeoff.png")

# %% [markdown]
# ## Step 6: ShuffleNet V2's guideline G2, measured here
#
# FLOPs are not the whole cost. ShuffleNet V2 (Ma et al. 2018, section 3, G2: "excessive group convolution increases
# MAC") counts the memory access cost of a 1x1 grouped convolution, `MAC = h*w*(c1 + c2) + c1*c2/g`, and shows it
# growing with g when the FLOPs `h*w*c1*c2/g` are held fixed, because the channels must widen as `sqrt(g)`. We
# repeat its kind of experiment (its Table 2: 1x1 grouped layers, g = 1, 2, 4, 8, fixed FLOPs) with our backends on
# this machine: the median of several runs, printed by this run, so the numbers move with the machine and its load
# (rough, not a benchmark: `gconv-edu bench` is).

# %%
g2_size, g2_batch, g2_repeats = (28, 1, 3) if viz.fast_mode() else (56, 4, 9)
g2_backends = [name for name in ("im2col", "numba") if name in gc.available_backends()]
g2_rows = []
for g2_groups in (1, 2, 4, 8):
    width = int(128 * np.sqrt(g2_groups) / g2_groups) * g2_groups  # FLOPs ~ c^2/g fixed: c ~ 128 sqrt(g); 128..360
    x_g2 = rng.standard_normal((g2_batch, width, g2_size, g2_size)).astype(np.float32)
    w_g2 = rng.standard_normal((width, width // g2_groups, 1, 1)).astype(np.float32)
    geom_g2 = gc.ConvGeometry.from_shapes(x_g2.shape, w_g2.shape, groups=g2_groups)
    mac_formula = g2_batch * g2_size * g2_size * (width + width) + width * width // g2_groups
    check(
        f"g={g2_groups}: our x + w + y element count == Ma et al.'s MAC formula",
        geom_g2.min_bytes(4) // 4 == mac_formula,
    )
    times = {
        name: median_seconds(
            lambda n=name, a=x_g2, b=w_g2, g=g2_groups: gc.conv2d(a, b, groups=g, backend=n), g2_repeats, warmup=1
        )
        for name in g2_backends
    }
    g2_rows.append((g2_groups, width, geom_g2.flops, mac_formula, times))
flops_spread = max(r[2] for r in g2_rows) / min(r[2] for r in g2_rows) - 1
check("the four layers have the same FLOPs to within 2 % (channels rounded to a multiple of g)", flops_spread < 0.02)
print(f"{'g':>2} {'c':>4} {'MFLOP':>7} {'MAC (M elements)':>16}" + "".join(f" {n + ' ms':>10}" for n in g2_backends))
for g2_groups, width, flops, mac, times in g2_rows:
    print(
        f"{g2_groups:>2} {width:>4} {flops / 1e6:>7.1f} {mac / 1e6:>16.3f}"
        + "".join(f" {times[n] * 1e3:>10.2f}" for n in g2_backends)
    )
mac_growth = g2_rows[-1][3] / g2_rows[0][3]
time_growth = {name: g2_rows[-1][4][name] / g2_rows[0][4][name] for name in g2_backends}
print(
    f"g=8 vs g=1 at the same FLOPs: MAC x{mac_growth:.2f}; time "
    + ", ".join(f"{name} x{growth:.2f}" for name, growth in time_growth.items())
    + f" (median of {g2_repeats}; load average "
    f"{os.getloadavg()[0]:.1f})"
)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
group_counts = [r[0] for r in g2_rows]
flops_relative = [r[2] / g2_rows[0][2] for r in g2_rows]
mac_relative = [r[3] / g2_rows[0][3] for r in g2_rows]
viz.bar_labels(
    left, left.bar(np.arange(4) - 0.2, flops_relative, 0.4, color=viz.NEUTRAL, label="FLOPs (held fixed)"), "{:.2f}"
)
viz.bar_labels(
    left, left.bar(np.arange(4) + 0.2, mac_relative, 0.4, color="#5A5A5A", label="MAC: x + w + y elements"), "{:.2f}"
)
left.set_xticks(np.arange(4), [f"g={r[0]}\nc={r[1]}" for r in g2_rows])
left.set_ylabel("relative to g = 1")
left.set_title(f"Same FLOPs, MAC x{mac_growth:.2f} from g=1 to g=8 (Ma et al.'s formula = our geometry)", fontsize=10)
left.legend(fontsize=8)
for index, name in enumerate(g2_backends):
    right.plot(
        group_counts,
        [r[4][name] * 1e3 for r in g2_rows],
        marker="os"[index % 2],
        color=viz.backend_color(index),
        label=f"{name} (median of {g2_repeats})",
    )
right.set_xscale("log", base=2)
right.set_xticks(group_counts, [str(g) for g in group_counts])
right.set_xlabel("groups g (1x1 layer, FLOPs fixed)")
right.set_ylabel(f"forward time, ms (batch {g2_batch}, {g2_size}x{g2_size}, float32)")
right.grid(True, alpha=0.3)
right.legend(fontsize=8)
slowest = max(time_growth, key=time_growth.get)
if time_growth[slowest] > 1.1:
    verdict = f"time grows with g at fixed FLOPs: x{time_growth[slowest]:.2f} on {slowest} from g=1 to g=8"
else:
    verdict = f"time did not grow with g on this run (at most x{time_growth[slowest]:.2f}, {slowest})"
right.set_title(f"Measured on this machine: {verdict}", fontsize=10)
fig.suptitle("ShuffleNet V2's G2: at equal FLOPs more groups cost more memory traffic, and here, time", fontsize=12)
if time_growth[slowest] <= 1.1:
    fig.suptitle(
        "ShuffleNet V2's G2: at equal FLOPs more groups cost more memory traffic (time: see right)", fontsize=12
    )
fig.tight_layout()
viz.save(fig, "06_shufflenet_g2.png")

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
# - MobileNet's costs are exactly what our geometry computes (Tables 4, 6, 7 to the paper's rounding, printed in
#   step 5); its accuracies (quoted) fall smoothly as alpha or the resolution shrink, and the depthwise-separable net
#   loses about a point against its dense twin at a fraction of the mult-adds (both printed in step 5).
# - ShuffleNet V2's G2, measured: at fixed FLOPs the memory traffic of a 1x1 grouped layer grows with g (exactly
#   the formula), and this run's times are printed beside it (step 6). How much time grows depends on the backend
#   and on the machine's load: that is the point, FLOPs alone do not predict it.
#
# **Exercise:** `exercises/ex5_shuffle.py` (`channel_shuffle` and its backward); grade it with `gconv-edu
# grade exercises/ex5_shuffle.py` in a course folder (`gconv-edu course DIR`), or `gconv-edu grade
# lessons/exercises/ex5_shuffle.py` from the root of a checkout.

# %%
print("\nExercise: exercises/ex5_shuffle.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex5_shuffle.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex5_shuffle.py")
