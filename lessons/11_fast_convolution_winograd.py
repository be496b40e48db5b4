# %% [markdown]
# # Lesson 11: fewer multiplications, Winograd's fast convolution
#
# This lesson follows lesson 07 (backends and speed): there the dense 3x3 layer ran as one big GEMM, and the GEMM ran
# near the machine's roof. To go faster one must do *less arithmetic*, not the same arithmetic faster. Lavin & Gray,
# "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016, arXiv:1509.09308), apply Winograd's minimal
# filtering algorithms: F(m x m, 3 x 3) computes an m x m tile of outputs of a 3x3 filter with (m + 2)^2
# multiplications instead of 9 m^2 (section 4). The price: three small linear transforms, and a larger float32 error.
#
# Steps: (1) count multiplications per output; (2) the transforms as matrices, checked against a direct convolution;
# (3) the whole layer as ONE batched GEMM per tile position (the `winograd` backend), checked against the others;
# (4) float32 error against tile size; (5) speed on this machine, and where Winograd loses.

# %%
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle thread pools sleep instead of spinning (lesson 07)

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.backends import winograd
from gconv_edu.configs import NAMED_CONFIGS
from gconv_edu.course import check, close, median_seconds
from gconv_edu.machine import machine_name, thread_counts, thread_limit, torch_or_none

FAST = viz.fast_mode()
rng = np.random.default_rng(0)
TILES = winograd.TILES  # (2, 4): F(2x2, 3x3) and F(4x4, 3x3)
print("machine:", machine_name())
print("threads:", thread_counts())

# %% [markdown]
# ## Step 1: multiplications per output
#
# A direct 3x3 convolution multiplies 9 weights per output pixel and input channel. F(m x m, 3 x 3) reads an
# (m + 2) x (m + 2) input tile, transforms it, multiplies it element-wise with the transformed filter ((m + 2)^2
# products) and transforms back to m x m outputs. Per output: (m + 2)^2 / m^2. Lavin & Gray count 16 against 36 for
# F(2x2, 3x3), a reduction of 2.25 (section 4.1), and 36 against 144 for F(4x4, 3x3), a reduction of 4 (section 4.3).
# The transforms add additions, but the input's is shared by all C_out filters, the filter's by every tile, and the
# output's by all C_in channels (section 5): in a layer with many channels the element-wise stage dominates.

# %%
direct_per_output = 3 * 3
per_output = {m: (m + 2) ** 2 / m**2 for m in TILES}
print(f"direct:          {direct_per_output} multiplications per output and input channel")
for m in TILES:
    print(
        f"F({m}x{m}, 3x3): {(m + 2) ** 2} per {m}x{m} tile = {per_output[m]:.2f} per output "
        f"({direct_per_output / per_output[m]:.2f}x fewer)"
    )
check("F(2x2,3x3) multiplies 16 times per 4 outputs where direct multiplies 36: 2.25x fewer", 36 / 16 == 2.25)
check("F(4x4,3x3) multiplies 36 times per 16 outputs where direct multiplies 144: 4x fewer", 144 / 36 == 4.0)
geometry = NAMED_CONFIGS["dense-3x3"].geometry()
for m in TILES:
    tiles = geometry.batch * -(-geometry.out_h // m) * -(-geometry.out_w // m)
    products = (m + 2) ** 2 * tiles * geometry.in_channels * geometry.out_channels
    print(
        f"dense-3x3 (N={geometry.batch}): direct {geometry.macs / 1e9:.2f} G multiply-adds, "
        f"F({m}x{m}) element-wise stage {products / 1e9:.2f} G ({geometry.macs / products:.2f}x fewer)"
    )

# %% [markdown]
# ## Step 2: the transforms, as matrices
#
# Written out (Lavin & Gray, section 4): for one input tile d ((m+2) x (m+2)) and one 3x3 filter g,
#
#     Y = A^T [ (G g G^T) (.) (B^T d B) ] A          ((.) element-wise)
#
# First the 1-D case F(2, 3): two outputs of a 3-tap filter from four inputs with 4 multiplications instead of 6.

# %%
for m in TILES:
    print(f"F({m}x{m}, 3x3): B^T ({m + 2}x{m + 2}), G ({m + 2}x3), A^T ({m}x{m + 2})")
    for label, matrix in (("B^T", winograd.BT[m]), ("G", winograd.G[m]), ("A^T", winograd.AT[m])):
        print(f"  {label} =\n" + "\n".join("    " + " ".join(f"{v:7.3f}" for v in row) for row in matrix))

d1, g1 = rng.standard_normal(4), rng.standard_normal(3)
y1 = winograd.AT[2] @ ((winograd.G[2] @ g1) * (winograd.BT[2] @ d1))  # 4 products
check("F(2,3): A^T [(G g) (.) (B^T d)] = the 2 outputs of the direct 1-D correlation", close(y1, np.correlate(d1, g1)))


def direct_tile(d, g):
    """The m x m outputs of a 3x3 correlation of one (m+2) x (m+2) tile, by the definition."""
    m = d.shape[0] - 2
    return np.array([[np.sum(d[i : i + 3, j : j + 3] * g) for j in range(m)] for i in range(m)])


for m in TILES:
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    bt, g_matrix, at = winograd.BT[m], winograd.G[m], winograd.AT[m]
    y_tile = at @ ((g_matrix @ g @ g_matrix.T) * (bt @ d @ bt.T)) @ at.T
    check(
        f"F({m}x{m},3x3) on one tile == direct 3x3 convolution (float64)",
        close(y_tile, direct_tile(d, g), 1e-12, 1e-12),
    )

largest = {m: max(np.abs(winograd.BT[m]).max(), np.abs(winograd.AT[m]).max()) for m in TILES}
smallest_g = {m: np.abs(winograd.G[m][winograd.G[m] != 0]).min() for m in TILES}
for m in TILES:
    print(f"F({m}x{m}): largest |entry| of B^T and A^T = {largest[m]:.0f}; smallest nonzero |G| = {smallest_g[m]:.4f}")

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 8), gridspec_kw={"width_ratios": [6, 3, 6]})
for row, m in enumerate(TILES):
    for ax, (label, matrix) in zip(axes[row], (("B^T", winograd.BT[m]), ("G", winograd.G[m]), ("A^T", winograd.AT[m]))):
        limit = np.abs(matrix).max()
        ax.imshow(matrix, cmap="PuOr", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(matrix):
            if value != 0:
                text = f"{value:g}" if value == int(value) else f"{value:.3g}"
                shade = "white" if abs(value) > 0.6 * limit else "black"  # readable on dark and light cells
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=shade)
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_yticks(range(matrix.shape[0]))
        ax.set_title(f"F({m}x{m},3x3): {label}  ({np.count_nonzero(matrix)} of {matrix.size} nonzero)", fontsize=9)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
fig.suptitle(
    f"F(4x4,3x3)'s transforms hold constants up to {largest[4]:.0f} and down to 1/{1 / smallest_g[4]:.0f} "
    f"(F(2x2,3x3): {largest[2]:.0f} and 1/{1 / smallest_g[2]:.0f}): fewer products, larger rounding",
    fontsize=11,
)
fig.tight_layout()
viz.save(fig, "11_transform_matrices.png")

# %% [markdown]
# ## Step 3: the whole layer as one batched GEMM
#
# Summed over input channels, the element-wise products of step 2 become, at each of the (m+2)^2 tile positions, a
# matrix product over channels. With groups, one more batch axis, as im2col has (lesson 4):
#
#     # (16, G, C_out/G, T) = (16, G, C_out/G, C_in/G) @ (16, G, C_in/G, T)     F(2x2, 3x3), T = N * tiles
#
# The `winograd` backend does exactly that (transforms in Numba, parallel; the GEMM in BLAS). It supports only 3x3
# kernels with stride 1 and dilation 1; asking for it elsewhere is an error that says so, and `auto` never picks it
# there. Where it supports, `auto` takes it on wide groups and large planes, where it measured faster
# (`gconv_edu.backends.AUTO_RULE`).

# %%
x = rng.standard_normal((2, 8, 11, 9))
w = rng.standard_normal((12, 2, 3, 3))
bias = rng.standard_normal(12)
options = dict(padding=1, groups=4)
reference = gc.conv2d(x, w, bias, backend="im2col", **options)
dy = rng.standard_normal(reference.shape)
reference_grads = gc.conv2d_backward(dy, x, w, backend="im2col", **options)
for m in TILES:
    os.environ[winograd.TILE_VARIABLE] = str(m)
    y = gc.conv2d(x, w, bias, backend="winograd", **options)
    check(
        f"winograd F({m}x{m}) == im2col (G=4, 11x9: tiles do not divide it, float64)", close(y, reference, 1e-10, 1e-10)
    )
    grads = gc.conv2d_backward(dy, x, w, backend="winograd", **options)
    check(
        f"winograd F({m}x{m}) dx, dw, db == im2col's (dx: the same algorithm on the flipped filter)",
        all(close(a, b, 1e-10, 1e-10) for a, b in zip(grads, reference_grads)),
    )
os.environ.pop(winograd.TILE_VARIABLE)
try:
    gc.conv2d(x, w, stride=2, groups=4, backend="winograd")
    refused = False
except ValueError as error:
    print("stride 2:", str(error).split(" (N=")[0])
    refused = True
check("winograd refuses stride 2, naming what it supports", refused)
kept = 1 / (2 * 2)  # stride 2 keeps every other row and column of the stride-1 outputs a tile computes
print(f"stride 2 through stride-1 tiles would keep {kept:.0%} of the outputs computed ({1 - kept:.0%} thrown away)")

# %% [markdown]
# ## Step 4: float32 error against tile size
#
# Larger tiles multiply values by larger constants and divide by smaller ones (the figure above), so float32 rounding
# grows with the tile (Lavin & Gray report the accuracy of both in section 7). We measure the error of the forward
# pass and both gradients, relative to max|reference| (the project's float32 tolerance is 1e-5, tests/conftest.py),
# against a float64 reference, for direct convolution (numba), F(2x2, 3x3) and F(4x4, 3x3).

# %%
TOLERANCE = 1e-5
error_layers = ["dense-3x3", "resnext-g32"]
batch = 1 if FAST else 8
size = 28 if FAST else None
methods = ["direct (numba)"] + [f"F({m}x{m},3x3)" for m in TILES]


def layer_arrays(name, dtype):
    config = NAMED_CONFIGS[name]
    h = size or config.height
    shape_rng = np.random.default_rng(1)
    x = shape_rng.standard_normal((batch, config.in_channels, h, h))
    w = shape_rng.standard_normal((config.out_channels, config.in_channels // config.groups, 3, 3))
    dy = shape_rng.standard_normal((batch, config.out_channels, h, h))
    return x.astype(dtype), w.astype(dtype), dy.astype(dtype), dict(padding=config.padding, groups=config.groups)


def relative_error(got, want):
    return float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))


errors = {}
for name in error_layers:
    x64, w64, dy64, options = layer_arrays(name, np.float64)
    want = (
        gc.conv2d(x64, w64, backend="numba", **options),
        *gc.conv2d_backward(dy64, x64, w64, backend="numba", **options)[:2],
    )
    x32, w32, dy32 = (a.astype(np.float32) for a in (x64, w64, dy64))
    for method in methods:
        backend = "numba" if method.startswith("direct") else "winograd"
        if backend == "winograd":
            os.environ[winograd.TILE_VARIABLE] = method[2]
        got = (
            gc.conv2d(x32, w32, backend=backend, **options),
            *gc.conv2d_backward(dy32, x32, w32, backend=backend, **options)[:2],
        )
        errors[name, method] = [relative_error(g, r) for g, r in zip(got, want)]
        y_error, dx_error, dw_error = errors[name, method]
        print(f"{name} (N={batch}) {method:>15}: y {y_error:.1e}  dx {dx_error:.1e}  dw {dw_error:.1e}")
os.environ.pop(winograd.TILE_VARIABLE, None)
worst = {method: max(max(errors[name, method]) for name in error_layers) for method in methods}
f2, f4 = methods[1], methods[2]
check(f"F(2x2,3x3) stays within the float32 tolerance {TOLERANCE:.0e} (worst {worst[f2]:.1e})", worst[f2] <= TOLERANCE)
check(f"F(4x4,3x3)'s float32 error exceeds F(2x2,3x3)'s ({worst[f4]:.1e} vs {worst[f2]:.1e})", worst[f4] > worst[f2])
print(
    f"worst float32 error: direct {worst[methods[0]]:.1e}, F2 {worst[f2]:.1e}, F4 {worst[f4]:.1e} "
    f"({worst[f4] / worst[f2]:.0f}x F2's; {'within' if worst[f4] <= TOLERANCE else 'over'} the tolerance): "
    f"the backend's default tile is {winograd.DEFAULT_TILE}"
)

# %% [markdown]
# ## Step 5: speed on this machine, and where Winograd loses
#
# Fewer multiplications only pay when the element-wise stage is a real GEMM: C_in/G x C_out/G per group large
# enough to run near the roof of lesson 07. Lavin & Gray's whole argument (section 5) counts the transforms as cheap
# because each is shared by many channels or filters. With thin groups (ResNeXt's 4 x 4, or depthwise: 1 x 1) there
# is nothing to share: the "GEMM" degenerates into element-wise products that read and write (m+2)^2 / m^2 times the
# data, a memory-bound stage (lesson 07's left side of the ridge), while the direct loops read each input once.
# Stride 2 does not fit the algorithm at all (it computes every output of a tile; three of four would be thrown
# away: printed above), so the backend refuses it. Times: median of repeats, the same thread count for every contender.

# %%
torch = torch_or_none()
speed_layers = ["dense-3x3", "resnext-g32", "mobilenet-dw"]
contenders = ["im2col", "numba"] + [f"winograd F{m}" for m in TILES] + (["torch"] if torch else [])
repeats = 3 if FAST else 7
threads = max(1, min(2, os.cpu_count() or 1))
times = {}
with thread_limit(threads) as counts:
    print("threads per engine:", counts)
    for name in speed_layers:
        config = NAMED_CONFIGS[name]
        h = 14 if FAST else config.height
        n = 1 if FAST else config.batch
        x32 = rng.standard_normal((n, config.in_channels, h, h)).astype(np.float32)
        w32 = rng.standard_normal((config.out_channels, config.in_channels // config.groups, 3, 3)).astype(np.float32)
        dy32 = rng.standard_normal((n, config.out_channels, h, h)).astype(np.float32)
        options = dict(padding=config.padding, groups=config.groups)
        for contender in contenders:
            if contender == "torch":
                tx, tw = torch.from_numpy(x32).requires_grad_(), torch.from_numpy(w32).requires_grad_()

                def call(tx=tx, tw=tw, dy32=dy32, options=options):
                    torch.nn.functional.conv2d(tx, tw, **options).backward(torch.from_numpy(dy32))

            else:
                backend = contender.split()[0]
                if backend == "winograd":
                    os.environ[winograd.TILE_VARIABLE] = contender[-1]

                def call(x32=x32, w32=w32, dy32=dy32, backend=backend, options=options):
                    gc.conv2d(x32, w32, backend=backend, **options)
                    gc.conv2d_backward(dy32, x32, w32, backend=backend, **options)

            times[name, contender] = median_seconds(call, repeats=repeats)
            print(f"{name} (N={n}, {h}x{h}) {contender:>12}: forward+backward {times[name, contender] * 1e3:8.2f} ms")
        os.environ.pop(winograd.TILE_VARIABLE, None)

load_average = os.getloadavg()[0]  # other processes on a shared machine add time to every contender
print(f"load average while timing: {load_average:.1f} on {os.cpu_count()} CPUs")
best_winograd = {name: min(times[name, c] for c in contenders if c.startswith("winograd")) for name in speed_layers}
best_direct = {name: min(times[name, c] for c in ("im2col", "numba")) for name in speed_layers}
ratio = {name: best_winograd[name] / best_direct[name] for name in speed_layers}
for name in speed_layers:
    verdict = "faster" if ratio[name] < 1 else "slower"
    print(f"{name}: best winograd / best of im2col, numba = {ratio[name]:.2f} ({verdict})")
# Speed is measured, never asserted (a loaded machine can reorder close contenders): the ratios are printed above.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2))
method_colors = {method: viz.backend_color(i) for i, method in enumerate(methods)}
positions = np.arange(3)
width = 0.8 / (len(methods) * len(error_layers))
for j, name in enumerate(error_layers):
    for i, method in enumerate(methods):
        offset = (j * len(methods) + i - (len(methods) * len(error_layers) - 1) / 2) * width
        left.bar(
            positions + offset,
            errors[name, method],
            width,
            color=method_colors[method],
            hatch="" if j == 0 else "//",
            edgecolor="black",
            linewidth=0.4,
            label=f"{method}, {name}",
        )
left.axhline(TOLERANCE, color="black", linestyle="--", linewidth=1)
left.text(2.45, TOLERANCE * 1.15, "float32 tolerance 1e-5", ha="right", fontsize=8)
left.set_yscale("log")
left.set_xticks(positions, ["y (forward)", "dx", "dw"])
left.set_ylabel("float32 error / max|float64 reference|")
left.set_ylim(top=TOLERANCE * 4)
left.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
left.set_title(
    f"F(4x4,3x3)'s float32 error is {worst[f4] / worst[f2]:.0f}x F(2x2,3x3)'s"
    f" ({'within' if worst[f4] <= TOLERANCE else 'over'} 1e-5): the default tile is {winograd.DEFAULT_TILE}",
    fontsize=10,
)
contender_colors = {c: viz.backend_color(i) for i, c in enumerate(contenders)}
positions = np.arange(len(speed_layers))
width = 0.8 / len(contenders)
for i, contender in enumerate(contenders):
    right.bar(
        positions + (i - (len(contenders) - 1) / 2) * width,
        [times[name, contender] * 1e3 for name in speed_layers],
        width,
        color=contender_colors[contender],
        label=contender,
    )
right.set_yscale("log")
right.set_xticks(
    positions, [f"{name}\nbest winograd / best direct = {ratio[name]:.2f}" for name in speed_layers], fontsize=8
)
right.set_ylabel(f"forward+backward, ms (median of {repeats}, {threads} threads, log scale)")
right.legend(fontsize=8)
dense_verdict = "wins" if ratio["dense-3x3"] < 1 else "does not win"
depthwise_verdict = "loses" if ratio["mobilenet-dw"] > 1 else "does not lose"
right.set_title(
    f"Winograd {dense_verdict} on dense-3x3 ({ratio['dense-3x3']:.2f}x the best direct time),\n"
    f"{depthwise_verdict} on depthwise ({ratio['mobilenet-dw']:.1f}x)",
    fontsize=10,
)
fig.suptitle(
    f"Winograd on this machine ({'fast mode: small sizes' if FAST else 'the named layers'}; load average "
    f"{load_average:.1f} on {os.cpu_count()} CPUs while timing: rough times)",
    fontsize=12,
)
fig.tight_layout()
viz.save(fig, "11_error_and_speed.png")

# %% [markdown]
# ## What we learned
#
# - F(m x m, 3 x 3) trades multiplications for additions: 4 (F2) and 2.25 (F4) per output instead of 9 (checked).
# - The transforms are small constant matrices; one tile checks against a direct convolution exactly (float64).
# - The layer becomes one batched GEMM per tile position over groups, and its gradients reuse the same algorithm
#   (dx on the flipped filter; dw in Winograd form).
# - Larger tiles cost accuracy: the float32 errors printed above, measured on this machine, set the backend's default
#   tile (F2) against the project's 1e-5 tolerance; F4 is an option (`GCONV_WINOGRAD_TILE=4`).
# - Speed follows the GEMM: the ratios printed above are this machine's, under its load at the time; thin groups
#   and depthwise layers leave nothing to amortise the transforms over, and there Winograd loses.

# %% [markdown]
# **Exercise:** `exercises/ex6_numba.py` (a compiled forward pass; time it against the backends here); grade it with
# `gconv-edu grade exercises/ex6_numba.py` in a course folder, or `gconv-edu grade lessons/exercises/ex6_numba.py`
# from the root of a checkout.

# %%
print("\nExercise: exercises/ex6_numba.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex6_numba.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex6_numba.py")
