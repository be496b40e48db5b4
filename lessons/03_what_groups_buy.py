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
left.loglog(divisors, weights * FLOAT32 / 2**20, "o-", color=viz.PALETTE[0], label="weights (MiB)")
left.loglog(divisors, flops / 1e9, "s-", color=viz.PALETTE[1], label="forward GFLOP")
left.loglog(divisors, activations * FLOAT32 / 2**20, "^--", color=viz.NEUTRAL, label="activations in+out (MiB)")
left.set_xscale("log", base=2)
left.set_xlabel("groups G (256 -> 256 channels, 3x3, 28x28, batch 8)")
left.set_ylabel("MiB or GFLOP (log scale)")
left.set_title("Weights and FLOPs fall as 1/G; activations stay", fontsize=10)
left.legend(fontsize=8)
left.grid(True, which="both", alpha=0.3)

names = [r[0] for r in rows]
positions = np.arange(len(rows))
bars_w = right.bar(positions - 0.2, [r[1] / 2**20 for r in rows], 0.4, color=viz.PALETTE[0], label="weights")
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
# ## What we learned
#
# - Parameters and multiply-adds fall exactly as 1/G (checked against `ConvGeometry`).
# - Activation memory does not depend on G, and in every named layer it is larger than the weights (from 7x for
#   alexnet-conv2 to 22,000x for mobilenet-dw, at batch 8). So "more memory-efficient" is true of the *weights*
#   only; AlexNet's memory problem was solved by putting half the channels on each GPU (lesson 8), which is a
#   different thing.
# - At equal FLOPs, one layer with G groups pays for sqrt(G) times more channels (arithmetic), with its activation
#   cost. ResNeXt's claim is different and empirical: at equal block complexity (bottleneck width shrunk as
#   cardinality grows, beside dense 1x1 layers) 32x4d is more accurate than 1x64d (its Table 3, quoted in step 5).
# - Fewer FLOPs do not mean proportionally less time: lesson 7 shows why (arithmetic intensity).
#
# **Exercise:** `conv_cost` in `lessons/exercises/ex2_groups.py`; grade it with
# `gconv-edu grade lessons/exercises/ex2_groups.py`.

# %%
print("\nExercise: conv_cost in lessons/exercises/ex2_groups.py")
print("grade it with: gconv-edu grade lessons/exercises/ex2_groups.py")
