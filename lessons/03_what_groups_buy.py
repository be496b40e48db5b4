# %% [markdown]
# # Lesson 3: what groups buy (and what they do not)
#
# The seed article claims that filter groups give "fewer parameters and minimal computational load", that they are
# "more memory-efficient", and that they let us "build wider networks" at the same cost. Here are the exact counts.
# For a layer with C_in -> C_out channels, a kH x kW kernel, G groups, an H_out x W_out output and a batch of N:
#
# - parameters: `C_out * (C_in/G) * kH * kW` weights `+ C_out` biases;
# - multiply-adds: `N * C_out * H_out * W_out * (C_in/G) * kH * kW` (FLOPs = 2 x multiply-adds);
# - activations: `N * C_in * H * W` in, `N * C_out * H_out * W_out` out: **no G in it**.
#
# We check the formulas against `ConvGeometry` on the named configurations that `gconv-edu bench` also runs.

# %%
import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.configs import layer_table
from gconv_edu.course import check

FLOAT32 = 4  # bytes

NAMED = layer_table()  # name: (C_in, C_out, k, padding, G, H=W) of the layers `gconv-edu bench` times (batch 8)
BATCH = 8


def geometry_of(c_in: int, c_out: int, k: int, pad: int, groups: int, size: int, batch: int = BATCH) -> gc.ConvGeometry:
    return gc.ConvGeometry.from_shapes(
        (batch, c_in, size, size), (c_out, c_in // groups, k, k), (c_out,), padding=pad, groups=groups
    )


# %% [markdown]
# ## Step 1: the formulas, checked against the code

# %%
print(f"{'config':<18} {'G':>3} {'params':>9} {'dense params':>12} {'GFLOP':>7} {'dense GFLOP':>11}")
agreements = []
for name, (c_in, c_out, k, pad, groups, size) in NAMED.items():
    geom = geometry_of(c_in, c_out, k, pad, groups, size)
    dense = geometry_of(c_in, c_out, k, pad, 1, size)
    params = c_out * (c_in // groups) * k * k + c_out
    out_size = (size + 2 * pad - k) // 1 + 1
    macs = BATCH * c_out * out_size * out_size * (c_in // groups) * k * k
    agreements.append(params == geom.params and 2 * macs == geom.flops)
    print(f"{name:<18} {groups:>3} {params:>9,} {dense.params:>12,} {2 * macs / 1e9:>7.3f} {dense.flops / 1e9:>11.3f}")
check("params and FLOPs by hand == ConvGeometry.params / .flops for all named configs", all(agreements))

# %% [markdown]
# ## Step 2: everything that is per-filter shrinks by G; the activations do not
#
# Sweep G over the divisors of 256 for a 256 -> 256, 3x3 layer on a 28x28 map (a ResNeXt stage), batch 8.

# %%
c, size = 256, 28
divisors = [g for g in range(1, c + 1) if c % g == 0]
sweep = [geometry_of(c, c, 3, 1, g, size) for g in divisors]
weights = np.array([geom.out_channels * geom.in_channels_per_group * geom.kernel_area for geom in sweep])
flops = np.array([geom.flops for geom in sweep])
activations = np.array([BATCH * c * size * size * 2 for _ in sweep])  # input + output elements
check("weights x G is the same for every G (weights fall exactly as 1/G)", len(set(weights * np.array(divisors))) == 1)
check("FLOPs x G is the same for every G", len(set(flops * np.array(divisors))) == 1)

# %% [markdown]
# ## Step 3: the same FLOPs, a wider layer
#
# At fixed FLOPs, ONE layer with G groups can have C' = C * sqrt(G) channels (FLOPs grow with C'^2 / G). That is the
# arithmetic behind the seed's "wider networks" claim, and only that: it is not ResNeXt's argument (step 5 shows
# ResNeXt's, from its paper). A wider layer has more *activations* though, which costs memory.

# %%
print(f"{'G':>4} {'channels at equal FLOPs':>24} {'GFLOP':>7} {'activation MiB':>15}")
base_flops = geometry_of(c, c, 3, 1, 1, size).flops
equal_flops = []
for g in (1, 4, 16, 64):
    wide = int(c * np.sqrt(g))
    geom = geometry_of(wide, wide, 3, 1, g, size)
    print(f"{g:>4} {wide:>24} {geom.flops / 1e9:>7.3f} {2 * BATCH * wide * size * size * FLOAT32 / 2**20:>15.1f}")
    equal_flops.append(geom.flops == base_flops)
check("256*sqrt(G) channels with G groups cost exactly the FLOPs of the dense 256-channel layer", all(equal_flops))

# %% [markdown]
# ## Step 4: memory: weights vs activations for the named configs
#
# Training keeps the layer's input for the backward pass, and writes an output of the same order. Per layer, for
# batch 8 in float32:

# %%
rows = []
for name, (c_in, c_out, k, pad, groups, size) in NAMED.items():
    geom = geometry_of(c_in, c_out, k, pad, groups, size)
    weight_bytes = (geom.params - c_out) * FLOAT32
    activation_bytes = (np.prod(geom.x_shape) + np.prod(geom.y_shape)) * FLOAT32
    rows.append((name, weight_bytes, activation_bytes, geom.groups))
    print(
        f"{name:<18} weights {weight_bytes / 2**20:8.3f} MiB   activations {activation_bytes / 2**20:8.2f} MiB  "
        f"({activation_bytes / weight_bytes:7.1f}x)"
    )
check(
    "the byte counts add up to ConvGeometry.min_bytes (x + w + y)",
    all(geometry_of(*NAMED[n]).min_bytes(FLOAT32) == w + a for n, w, a, _ in rows),
)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
# Quantities, not groups: black, dark grey and grey (the group colours mean groups in every figure of the course).
left.loglog(divisors, weights * FLOAT32 / 2**20, "o-", color="black", label="weights (MiB)")
left.loglog(divisors, flops / 1e9, "s-", color="#5A5A5A", label="forward GFLOP")
left.loglog(divisors, activations * FLOAT32 / 2**20, "^--", color=viz.NEUTRAL, label="activations in+out (MiB)")
left.set_xscale("log", base=2)
left.set_xlabel("groups G (256 -> 256 channels, 3x3, 28x28, batch 8)")
left.set_ylabel("MiB or GFLOP (log scale)")
left.set_title("Weights and FLOPs fall as 1/G; activations stay", fontsize=10)
left.legend(fontsize=8)
left.grid(True, which="both", alpha=0.3)

names = [r[0] for r in rows]
positions = np.arange(len(rows))
bars_w = right.bar(positions - 0.2, [r[1] / 2**20 for r in rows], 0.4, color="black", label="weights")
bars_a = right.bar(positions + 0.2, [r[2] / 2**20 for r in rows], 0.4, color=viz.NEUTRAL, label="activations (x + y)")
viz.bar_labels(right, bars_w, "{:.2g}")
viz.bar_labels(right, bars_a, "{:.1f}")
right.set_yscale("log")
right.set_xticks(positions, [f"{r[0]}\nG={r[3]}" for r in rows], fontsize=8)
right.set_ylabel("MiB (float32, batch 8, log scale)")
ratios = [r[2] / r[1] for r in rows]
right.set_title(
    f"Activations outweigh weights in every named layer ({min(ratios):.0f}x to {max(ratios):,.0f}x)", fontsize=10
)
right.legend(fontsize=8)
fig.suptitle("What groups buy: 1/G of the parameters and FLOPs, but not less activation memory", fontsize=12)
fig.tight_layout()
viz.save(fig, "03_cost_vs_groups.png")

# %% [markdown]
# ## Step 5: ResNeXt's argument: accuracy at equal complexity
#
# ResNeXt (Xie et al. 2017) does not widen one layer. Its block is 1x1 (256 -> C*d), a 3x3 with C groups
# (C*d -> C*d, "cardinality" C, d channels per group), 1x1 (C*d -> 256): the 1x1 layers stay dense. Growing C while
# shrinking the bottleneck width d keeps the block's cost about fixed: section 3.3 (Eq. 4) gives
# `C * (256*d + 3*3*d*d + d*256)`, "~70k" parameters for both 1 x 64d and 32 x 4d, and Table 2 lists the (C, d)
# pairs that keep ResNet-50's complexity. Our geometry recomputes each block, then the whole 50-layer networks
# (conv1, 16 blocks with projection shortcuts, stride in the first 3x3 of stages 3-5, the 1000-way classifier;
# biases and batch norm left out, as the paper's counts), against Table 1. The paper's "FLOPs" are multiply-adds.
# Accuracy is the paper's (quoted, not measured here): Table 3, ImageNet-1K top-1 error of ResNeXt-50 per (C, d).

# %%
RESNEXT_TABLE2 = [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]  # (C, d): Xie et al. 2017, Table 2 (conv2 stage)
RESNEXT_BLOCK_PARAMS_QUOTED = 70_000  # "~70k" for 1 x 64d and 32 x 4d (Xie et al. 2017, section 3.3, Eq. 4)
RESNEXT_TOP1_ERROR_QUOTED = {1: 23.9, 2: 23.0, 4: 22.6, 8: 22.3, 32: 22.2}  # % , Xie et al. 2017, Table 3 (50-layer)
# Table 1 (quoted): ResNet-50 25.5e6 params, 4.1e9 FLOPs; ResNeXt-50 (32x4d) 25.0e6 params, 4.2e9 FLOPs.
RESNEXT_TABLE1_QUOTED = {"ResNet-50 (1x64d)": (25.5e6, 4.1e9), "ResNeXt-50 (32x4d)": (25.0e6, 4.2e9)}


def conv_layer(c_in: int, c_out: int, k: int, size: int, stride: int = 1, groups: int = 1) -> gc.ConvGeometry:
    """One image, no bias, 'same'-style padding k // 2 (the paper's counts leave out biases and batch norm)."""
    return gc.ConvGeometry.from_shapes(
        (1, c_in, size, size), (c_out, c_in // groups, k, k), stride=stride, padding=k // 2, groups=groups
    )


def block_layers(c_in: int, width: int, c_out: int, size: int, stride: int, cardinality: int) -> list[gc.ConvGeometry]:
    """ResNeXt's block (Fig. 3c): 1x1 reduce (dense), 3x3 with `cardinality` groups (the stride), 1x1 expand."""
    middle = conv_layer(width, width, 3, size, stride, cardinality)
    return [conv_layer(c_in, width, 1, size), middle, conv_layer(width, c_out, 1, middle.out_h)]


def network_cost(stage_widths: list[int], cardinality: int) -> tuple[int, int]:
    """(parameters, multiply-adds) of a 50-layer ResNet/ResNeXt at 224x224: blocks (3, 4, 6, 3) per stage."""
    layers = [conv_layer(3, 64, 7, 224, stride=2)]  # then a 3x3 max pool: 112 -> 56
    c_in, size = 64, 56
    for stage, (width, blocks) in enumerate(zip(stage_widths, (3, 4, 6, 3))):
        c_out = 256 * 2**stage
        for index in range(blocks):
            stride = 2 if index == 0 and stage > 0 else 1
            block = block_layers(c_in, width, c_out, size, stride, cardinality)
            layers += block
            if index == 0:  # projection shortcut: 1x1 c_in -> c_out with the block's stride
                layers.append(conv_layer(c_in, c_out, 1, size, stride))
            c_in, size = c_out, block[-1].out_h
    classifier = 2048 * 1000 + 1000  # global average pool, then the 1000-way fully connected layer
    return sum(g.params for g in layers) + classifier, sum(g.macs for g in layers) + 2048 * 1000


header = f"{'C x d':>7} {'1x1 reduce':>10} {'3x3 grouped':>11} {'1x1 expand':>10} {'block params':>12}"
print(header + f" {'top-1 err % (quoted)':>21}")
blocks = {}
for cardinality, d in RESNEXT_TABLE2:
    parts = [g.params for g in block_layers(256, cardinality * d, 256, 56, 1, cardinality)]
    blocks[cardinality, d] = parts
    print(
        f"{f'{cardinality}x{d}d':>7} {parts[0]:>10,} {parts[1]:>11,} {parts[2]:>10,} {sum(parts):>12,} "
        f"{RESNEXT_TOP1_ERROR_QUOTED[cardinality]:>21}"
    )
check(
    "our count of every Table 2 block is within 3 % of the paper's ~70k (Eq. 4)",
    all(abs(sum(parts) / RESNEXT_BLOCK_PARAMS_QUOTED - 1) < 0.03 for parts in blocks.values()),
)
check(
    "the exact Eq. 4 for 32 x 4d: C * (256*d + 9*d*d + d*256) == our geometry's count",
    sum(blocks[32, 4]) == 32 * (256 * 4 + 9 * 4 * 4 + 4 * 256),
)
ours = {
    "ResNet-50 (1x64d)": network_cost([64, 128, 256, 512], 1),
    "ResNeXt-50 (32x4d)": network_cost([128, 256, 512, 1024], 32),
}
for name, (params, macs) in ours.items():
    quoted_params, quoted_flops = RESNEXT_TABLE1_QUOTED[name]
    print(
        f"{name:<19} ours: {params / 1e6:5.2f} M params, {macs / 1e9:4.2f} G multiply-adds | paper's Table 1 "
        f"(quoted): {quoted_params / 1e6:.1f} M, {quoted_flops / 1e9:.1f} G"
    )
check(
    "our whole-network counts agree with Table 1 to the paper's rounding (within 2 %)",
    all(
        abs(ours[n][0] / RESNEXT_TABLE1_QUOTED[n][0] - 1) < 0.02
        and abs(ours[n][1] / RESNEXT_TABLE1_QUOTED[n][1] - 1) < 0.02
        for n in ours
    ),
)
cost_ratio = ours["ResNeXt-50 (32x4d)"][1] / ours["ResNet-50 (1x64d)"][1]
print(f"32x4d / 1x64d multiply-adds (ours): {cost_ratio:.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 5), gridspec_kw={"width_ratios": [1.25, 1]})
labels = [f"{c}x{d}d" for c, d in RESNEXT_TABLE2]
positions = np.arange(len(labels))
reduce_part = np.array([blocks[key][0] for key in RESNEXT_TABLE2]) / 1e3
grouped_part = np.array([blocks[key][1] for key in RESNEXT_TABLE2]) / 1e3
expand_part = np.array([blocks[key][2] for key in RESNEXT_TABLE2]) / 1e3
left.bar(positions, reduce_part, 0.6, color="#5A5A5A", label="1x1 reduce 256 -> C*d (dense)")
left.bar(
    positions,
    grouped_part,
    0.6,
    bottom=reduce_part,
    color="white",
    edgecolor="black",
    hatch="///",
    label="3x3 with C groups",
)
left.bar(positions, expand_part, 0.6, bottom=reduce_part + grouped_part, color=viz.NEUTRAL, label="1x1 expand (dense)")
totals = reduce_part + grouped_part + expand_part
for x_pos, total, (cardinality, _) in zip(positions, totals, RESNEXT_TABLE2):
    left.text(
        x_pos, total + 1.5, f"{total:.1f}k\nerr* {RESNEXT_TOP1_ERROR_QUOTED[cardinality]} %", ha="center", fontsize=8
    )
left.axhline(RESNEXT_BLOCK_PARAMS_QUOTED / 1e3, color="black", linestyle=":", linewidth=1)
left.text(-0.45, RESNEXT_BLOCK_PARAMS_QUOTED / 1e3 + 13, "paper: ~70k (Eq. 4)", fontsize=8)
left.set_xticks(positions, labels)
left.set_xlabel("cardinality C x bottleneck width d (Table 2 of Xie et al. 2017)")
left.set_ylabel("parameters per block (thousands, ours)")
left.set_ylim(0, totals.max() * 1.35)
dense_share = (reduce_part + expand_part) / totals
left.set_title(
    f"Block cost stays ~70k: the grouped 3x3 shrinks as C grows; the dense 1x1s go from {dense_share[0]:.0%}\n"
    f"to {dense_share[-1]:.0%} of the block (* top-1 error quoted from Table 3, not measured)",
    fontsize=10,
)
left.legend(fontsize=8, loc="upper left", ncols=3)
right.axis("off")
cells = [
    [
        name,
        f"{ours[name][0] / 1e6:.2f} M",
        f"{RESNEXT_TABLE1_QUOTED[name][0] / 1e6:.1f} M",
        f"{ours[name][1] / 1e9:.2f} G",
        f"{RESNEXT_TABLE1_QUOTED[name][1] / 1e9:.1f} G",
        f"{RESNEXT_TOP1_ERROR_QUOTED[1 if '1x64d' in name else 32]} %",
    ]
    for name in ours
]
table = right.table(
    cellText=cells,
    colLabels=[
        "50-layer net",
        "params\n(ours)",
        "params\n(Table 1)",
        "mult-adds\n(ours)",
        "FLOPs\n(Table 1)",
        "top-1 err\n(Table 3)",
    ],
    loc="center",
    cellLoc="center",
    colWidths=[0.3, 0.13, 0.13, 0.15, 0.13, 0.14],
)
table.auto_set_font_size(False)
table.set_fontsize(9)
table.scale(1.0, 2.6)
right.set_title(
    f"Whole networks at equal cost (ours: 32x4d = {cost_ratio:.2f} x the multiply-adds of 1x64d);\n"
    "paper's columns quoted from Xie et al. 2017, not measured here",
    fontsize=10,
)
fig.suptitle(
    f"ResNeXt: 32x4d costs what 1x64d costs ({ours['ResNeXt-50 (32x4d)'][0] / 1e6:.1f} M vs "
    f"{ours['ResNet-50 (1x64d)'][0] / 1e6:.1f} M params, ours) and the paper reports lower error "
    f"({RESNEXT_TOP1_ERROR_QUOTED[32]} vs {RESNEXT_TOP1_ERROR_QUOTED[1]} %, quoted)",
    fontsize=12,
)
fig.tight_layout()
viz.save(fig, "03_resnext_equal_complexity.png")

# %% [markdown]
# ## What we learned
#
# - Parameters and multiply-adds fall exactly as 1/G (checked against `ConvGeometry`).
# - Activation memory does not depend on G, and in every named layer it is larger than the weights (the ratios are
#   printed in step 4, at batch 8: smallest for alexnet-conv2, largest for mobilenet-dw). So "more
#   memory-efficient" is true of the *weights* only; AlexNet's memory problem was solved by putting half the
#   channels on each GPU (lesson 8), which is a different thing.
# - At equal FLOPs, one layer with G groups pays for sqrt(G) times more channels (arithmetic), with its activation
#   cost. ResNeXt's claim is different and empirical: at equal block complexity (bottleneck width shrunk as
#   cardinality grows, beside dense 1x1 layers) 32x4d is more accurate than 1x64d (its Table 3, quoted in step 5).
#   Our geometry reproduces the cost side of that claim (Table 1's parameters and multiply-adds, Eq. 4's ~70k per
#   block; printed in step 5).
# - Fewer FLOPs do not mean proportionally less time: lesson 7 shows why (arithmetic intensity).
#
# **Exercise:** `conv_cost` in `exercises/ex2_groups.py`; grade it with `gconv-edu grade
# exercises/ex2_groups.py` in a course folder (`gconv-edu course DIR`), or `gconv-edu grade
# lessons/exercises/ex2_groups.py` from the root of a checkout.

# %%
print("\nExercise: conv_cost in exercises/ex2_groups.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex2_groups.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex2_groups.py")
