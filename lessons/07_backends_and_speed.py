# %% [markdown]
# # Lesson 7: backends and speed, and why depthwise layers are memory-bound
#
# Every backend computes the same function; they differ in *how*: `naive` (Python loops, for reading), `im2col`
# (one batched BLAS GEMM, lesson 4), `numba` (direct loops compiled to machine code, parallel over samples and
# channels), and, where present, PyTorch and the CuPy GPU backends as peers. First we check they agree, then we time
# them on the named configurations, then we ask what limits each layer: the processor's arithmetic, or its memory?
#
# The *roofline model* answers with two measured numbers for this machine: the peak rate of arithmetic (GFLOP/s, from
# a big matrix product) and the memory bandwidth (GB/s, from a big copy). A layer that does `F` FLOPs and must move at
# least `B` bytes has *arithmetic intensity* `I = F / B`; it cannot run faster than `min(peak, I x bandwidth)`.
# Seed claim under test: fewer FLOPs means "higher computational efficiency".

# %%
import os

# Three OpenMP thread pools share this process (Numba's, OpenBLAS's, PyTorch's). By default an idle pool keeps its
# threads spinning for a while, and they steal the two cores from the next pool: times then jump by whole scheduler
# ticks (4 ms). Passive waiting must be chosen before the libraries load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import matplotlib.pyplot as plt
import numpy as np

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.cli import thread_counts
from gconv_edu.configs import layer_table
from gconv_edu.course import best_seconds, check, close

FAST = viz.fast_mode()
rng = np.random.default_rng(0)
backends = [name for name in gc.available_backends() if name != "naive"]
try:
    import torch

    torch.set_num_threads(max(1, int(thread_counts()["cpu_count"] or 1)))  # the same thread count as the others
except ImportError:
    torch = None
print("backends here:", gc.available_backends(), "| PyTorch:", "yes" if torch else "not installed")
print("threads:", thread_counts(), "| torch:", torch.get_num_threads() if torch else "-")

# %% [markdown]
# ## Step 1: the same answers

# %%
x = rng.standard_normal((2, 6, 9, 8))
w = rng.standard_normal((9, 2, 3, 3))
bias = rng.standard_normal(9)
options = dict(stride=2, padding=1, groups=3)
reference = gc.conv2d(x, w, bias, **options, backend="naive")
check_geom = gc.ConvGeometry.from_shapes(x.shape, w.shape, bias.shape, **options)


def unsupported(name: str, geom: gc.ConvGeometry) -> str | None:
    """Why backend ``name`` does not compute ``geom`` (winograd: 3x3 stride-1 layers only), or None; torch does all."""
    return None if name == "torch" else gc.backends.get_backend(name).supports(geom)


for name in backends:
    if unsupported(name, check_geom):
        print(f"  {name}: not for this layer ({unsupported(name, check_geom)})")
        continue
    check(
        f"{name} == naive (G=3, stride 2, padding 1, float64)",
        close(gc.conv2d(x, w, bias, **options, backend=name), reference, rtol=1e-10, atol=1e-10),
    )
if torch is not None:
    y_torch = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), **options)
    check("PyTorch == naive", close(y_torch.numpy(), reference, rtol=1e-10, atol=1e-10))

# %% [markdown]
# ## Step 2: Python loops vs compiled code, on a tiny layer

# %%
x_tiny = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
w_tiny = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
tiny_geom = gc.ConvGeometry.from_shapes(x_tiny.shape, w_tiny.shape, padding=1, groups=2)
tiny_times = {
    name: best_seconds(lambda n=name: gc.conv2d(x_tiny, w_tiny, padding=1, groups=2, backend=n), 3)
    for name in ["naive", *backends]
    if not unsupported(name, tiny_geom)
}
for name, seconds in tiny_times.items():
    print(
        f"  {name:<8} {seconds * 1e3:9.3f} ms   {tiny_geom.flops / seconds / 1e9:7.3f} GFLOP/s   "
        f"({seconds / min(tiny_times.values()):6.0f}x the fastest)"
    )

# %% [markdown]
# ## Step 3: the named configurations
#
# Forward pass, float32, batch 2 (1 in fast mode), the fastest of a few runs after a warm-up (the warm-up also pays
# Numba's one-time compilation, which is cached on disk afterwards). The fastest, not the median: on a shared machine
# other processes only ever add time. GPU backends get device arrays and a synchronisation, so their time is the
# kernel's, not the copies'. `gconv-edu bench` does this properly (medians, forward+backward, memory).

# %%
NAMED = layer_table()  # name: (C_in, C_out, k, padding, G, H=W) of the layers `gconv-edu bench` times (batch 8)
batch, repeats = (1, 1) if FAST else (2, 7)


def timer(name: str, x: np.ndarray, w: np.ndarray, pad: int, groups: int):
    """A zero-argument function running one forward pass with backend ``name`` (or "torch")."""
    if name == "torch":
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        return lambda: torch.nn.functional.conv2d(tx, tw, padding=pad, groups=groups)
    if gc.backends.get_backend(name).device == "gpu":
        import cupy

        gx, gw = cupy.asarray(x), cupy.asarray(w)
        return lambda: (gc.conv2d(gx, gw, padding=pad, groups=groups, backend=name), cupy.cuda.Device().synchronize())
    return lambda: gc.conv2d(x, w, padding=pad, groups=groups, backend=name)


contenders = backends + (["torch"] if torch is not None else [])
# The roofline below is this CPU's: GPU backends (when present) appear in the timings, not on the CPU roofline.
cpu_contenders = [n for n in contenders if n == "torch" or gc.backends.get_backend(n).device == "cpu"]
results = {}  # (config, contender) -> seconds
geometries = {}
for config, (c_in, c_out, k, pad, groups, size) in NAMED.items():
    xc = rng.standard_normal((batch, c_in, size, size)).astype(np.float32)
    wc = rng.standard_normal((c_out, c_in // groups, k, k)).astype(np.float32)
    geometries[config] = gc.ConvGeometry.from_shapes(xc.shape, wc.shape, padding=pad, groups=groups)
    for name in contenders:
        if not unsupported(name, geometries[config]):  # a backend outside its support is left out of that layer
            results[config, name] = best_seconds(timer(name, xc, wc, pad, groups), repeats)
print(f"{'config':<18}" + "".join(f"{name:>16}" for name in contenders) + "   (ms, GFLOP/s)")
for config in NAMED:
    cells = [
        f"{results[config, n] * 1e3:7.1f} {geometries[config].flops / results[config, n] / 1e9:6.1f}"
        if (config, n) in results
        else "-"
        for n in contenders
    ]
    print(f"{config:<18}" + "".join(f"{cell:>16}" for cell in cells))

# %% [markdown]
# ## Step 4: the ceilings of this machine, measured

# %%
matrix_size = 1024 if FAST else 2048
a = rng.standard_normal((matrix_size, matrix_size)).astype(np.float32)
matmul_repeats = 3 if FAST else 6
matmul_gflops = {"numpy (OpenBLAS)": 2 * matrix_size**3 / best_seconds(lambda: a @ a, matmul_repeats) / 1e9}
if torch is not None:  # a second BLAS (oneDNN/MKL): the ceiling is the best matmul we can run, not one library's
    a_torch = torch.from_numpy(a)
    matmul_gflops["torch"] = 2 * matrix_size**3 / best_seconds(lambda: torch.mm(a_torch, a_torch), matmul_repeats) / 1e9
print("float32 matmul GFLOP/s:", {name: round(value, 1) for name, value in matmul_gflops.items()})
# The roof must be the best rate this machine reaches: a conv peer (oneDNN's direct kernels, Winograd) can beat a
# plain matmul, so the ceiling is the best of the matmuls AND of every measured convolution.
measured = [(c, n) for c in geometries for n in cpu_contenders if (c, n) in results]  # the pairs that ran
conv_best_gflops = max(geometries[c].flops / results[c, n] / 1e9 for c, n in measured)
conv_best_label = max(measured, key=lambda cn: geometries[cn[0]].flops / results[cn])
peak_gflops = max(max(matmul_gflops.values()), conv_best_gflops)
roof_source = "matmul" if peak_gflops > conv_best_gflops else f"{conv_best_label[1]} on {conv_best_label[0]}"
print(f"roof: {peak_gflops:.1f} GFLOP/s, the best measured rate ({roof_source})")
copy_elements = (32 if FAST else 128) * 2**20 // 4
source, target = np.ones(copy_elements, np.float32), np.empty(copy_elements, np.float32)
bandwidth_gbs = 2 * source.nbytes / best_seconds(lambda: np.copyto(target, source), 8) / 1e9  # read + write
ridge = peak_gflops / bandwidth_gbs
print(
    f"roof (best measured): {peak_gflops:.1f} GFLOP/s; bandwidth ({source.nbytes >> 20} MiB copy): "
    f"{bandwidth_gbs:.1f} GB/s; ridge point {ridge:.1f} FLOP/byte"
)

print(f"{'config':<18} {'FLOP/byte':>9} {'bound':>8} {'ceiling GFLOP/s':>15} {'best GFLOP/s':>12} {'of ceiling':>10}")
intensity, best = {}, {}
for config, geom in geometries.items():
    intensity[config] = geom.flops / geom.min_bytes(4)  # each of x, w, y moved once: the least traffic possible
    ceiling = min(peak_gflops, intensity[config] * bandwidth_gbs)
    best[config] = min((n for n in cpu_contenders if (config, n) in results), key=lambda n, c=config: results[c, n])
    attained = geom.flops / results[config, best[config]] / 1e9
    bound = "memory" if intensity[config] < ridge else "compute"
    print(
        f"{config:<18} {intensity[config]:9.1f} {bound:>8} {ceiling:15.1f} {attained:12.1f} "
        f"{attained / ceiling:9.0%}  ({best[config]})"
    )
# No check that the points sit under the roof: the roof is defined as the best of them and the matmuls, so it could
# not fail. What can be said is which measurement set it (printed above) and by how much the convolutions trail it.
print(f"best convolution: {conv_best_gflops:.1f} GFLOP/s = {conv_best_gflops / peak_gflops:.0%} of the roof")
check(
    "the depthwise layer has the lowest arithmetic intensity of the named configs",
    min(intensity, key=intensity.get) == "mobilenet-dw",
)
# Per output pixel a 3x3 depthwise filter does 9 multiply-adds (18 FLOPs) and the layer moves one input and one output
# value (8 bytes in float32): 18 / 8 = 2.25 FLOP/byte, whatever the size; the weights add next to nothing.
check(
    "depthwise 3x3 intensity == 18 FLOPs / 8 bytes = 2.25 (up to the weights)",
    abs(intensity["mobilenet-dw"] - 2.25) < 0.01,
)
verdict = "memory-bound" if intensity["mobilenet-dw"] < ridge else "NOT memory-bound (the ceilings were disturbed?)"
print(f"depthwise: {intensity['mobilenet-dw']:.2f} FLOP/byte vs ridge {ridge:.1f}: {verdict} on this machine")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 5), gridspec_kw={"width_ratios": [1.2, 1]})
# Backends, not groups, are coloured here: the backend palette (groups keep Okabe-Ito everywhere else).
contender_colors = {name: viz.backend_color(i) for i, name in enumerate(contenders)}
markers = dict(zip(contenders, "os^Dv<>"))
grid = np.logspace(-0.5, 3.3, 200)
left.loglog(grid, np.minimum(peak_gflops, grid * bandwidth_gbs), color="black", linewidth=2)
left.axvline(ridge, color=viz.NEUTRAL, linestyle=":")
left.text(ridge * 1.1, 0.03, f"ridge {ridge:.1f} FLOP/byte", fontsize=8, transform=left.get_xaxis_transform())
left.text(0.4, 0.4 * bandwidth_gbs * 1.5, f"memory: {bandwidth_gbs:.1f} GB/s", fontsize=8, rotation=38)
left.text(ridge * 1.1, peak_gflops * 1.15, f"roof {peak_gflops:.0f} GFLOP/s (best measured: {roof_source})", fontsize=8)
in_legend: set[str] = set()  # one legend entry per contender, at the first layer it ran on
for config in NAMED:
    for name in cpu_contenders:
        if (config, name) not in results:
            continue
        left.scatter(
            intensity[config],
            geometries[config].flops / results[config, name] / 1e9,
            s=40,
            marker=markers[name],
            color=contender_colors[name],
            edgecolors="black",
            linewidths=0.4,
            zorder=3,
            label=None if name in in_legend else name,
        )
        in_legend.add(name)
    best_gflops = geometries[config].flops / results[config, best[config]] / 1e9
    left.annotate(
        config,
        (intensity[config], best_gflops),
        xytext=(6, -12) if best_gflops > peak_gflops / 3 else (4, 6),  # below the point when near the roof
        textcoords="offset points",
        fontsize=8,
    )
left.set_xlabel("arithmetic intensity (FLOP per byte of x + w + y)")
left.set_ylabel("attained GFLOP/s (forward, float32)")
attained_all = [geometries[c].flops / results[c, n] / 1e9 for c, n in measured]
left.set_ylim(min(attained_all) / 3, max(max(attained_all), peak_gflops) * 2.5)
if intensity["mobilenet-dw"] < ridge:
    left.set_title("Depthwise sits left of the ridge: memory, not arithmetic, caps its speed", fontsize=10)
else:
    left.set_title("Roofline (this run's ceilings put depthwise right of the ridge: a disturbed run?)", fontsize=10)
left.legend(fontsize=8, loc="lower right")
left.grid(True, which="both", alpha=0.25)

positions = np.arange(len(NAMED))
width = 0.8 / len(contenders)
for i, name in enumerate(contenders):
    bars = right.bar(
        positions + (i - (len(contenders) - 1) / 2) * width,
        [results.get((c, name), np.nan) * 1e3 for c in NAMED],  # a gap where the backend does not apply
        width,
        color=contender_colors[name],
        label=name,
    )
right.set_yscale("log")
right.set_xticks(positions, [f"{c}\n{geometries[c].flops / 1e9:.2f} GFLOP" for c in NAMED], fontsize=7)
right.set_ylabel(f"forward time, ms (batch {batch}, log scale)")
flop_share = geometries["mobilenet-dw"].flops / geometries["dense-3x3"].flops
time_share = results["mobilenet-dw", best["mobilenet-dw"]] / results["dense-3x3", best["dense-3x3"]]
right.set_title(
    f"mobilenet-dw: {flop_share:.0%} of dense-3x3's FLOPs, {time_share:.0%} of its time (best backends)", fontsize=10
)
right.legend(fontsize=8)
load_average = os.getloadavg()[0]  # other processes lower every ceiling and rate: say how busy the machine was
print(f"load average while drawing: {load_average:.1f} on {os.cpu_count()} cores")
fig.suptitle(
    f"Backends on this machine: measured ceilings and times of the named layers (load average {load_average:.1f} on "
    f"{os.cpu_count()} cores: a busy machine lowers every number)",
    fontsize=12,
)
fig.tight_layout()
viz.save(fig, "07_roofline.png")

# %% [markdown]
# ## Why the GPU's dw kernel does not use `atomicAdd`
#
# Each weight's gradient `dw[k, c, p, q]` is one long sum over every sample and output pixel (lesson 5). The obvious
# GPU version gives each term a thread that adds its product into `dw` with `atomicAdd`: correct, but the additions
# land in whatever order the threads happen to arrive, and that order changes from run to run. Floating-point
# addition is not associative (`(a + b) + c` and `a + (b + c)` can round differently), so the last bits of `dw` would
# change between two runs on the same data, and a training run could not be repeated bit for bit.
# Backend `cupy-raw` (`gconv_edu/backends/kernels/conv2d_backward_weight.cu`) fixes the order instead: one block per
# (filter, channel) pair, each thread sums a fixed set of terms, the block adds the threads' sums in a fixed tree
# (register shuffles within a warp, then the warps in order), and the host adds the blocks' partial sums in a fixed
# order. How the sum is split depends on the layer's shape only, not on the GPU. Same order every run, same bits
# every run (the tiled dw kernel for depthwise and thin groups keeps the same rule).

# %% [markdown]
# ## What we learned
#
# - All backends agree (checked); on a tiny layer the naive Python loops are tens to hundreds of times slower than
#   compiled code, and the gap grows with the layer.
# - FLOPs are not time. Where each named layer sits against this run's measured ridge, and what fraction of its
#   ceiling it reaches, is printed by the cell below from this run's numbers (the ridge moves with the machine and
#   its load). Thin per-group products (`C_in/G*kH*kW` small) run far below peak, a cost no FLOP count shows: groups
#   cut FLOPs by G, but time falls by less. The seed's "higher computational efficiency" holds for FLOPs, not FLOP/s.
# - The roof is the best rate measured on this machine (matmuls and convolutions), not the hardware's theoretical
#   peak (cores x SIMD lanes x FMA units x 2 x clock); a busy machine lowers it. Small batches fit in the caches,
#   whose bandwidth is higher than the big copy's, so memory-side points can sit above the memory roof.
# - The im2col backend moves kH*kW times the input (its workspace, lesson 4), so on memory-bound layers a direct
#   kernel (numba) can beat it.

# %%
for config, geom in geometries.items():
    side = "left" if intensity[config] < ridge else "right"
    attained = geom.flops / results[config, best[config]] / 1e9
    ceiling = min(peak_gflops, intensity[config] * bandwidth_gbs)
    print(
        f"{config}: {intensity[config]:.1f} FLOP/byte, {side} of the ridge ({ridge:.1f}); "
        f"best {attained:.1f} GFLOP/s = {attained / ceiling:.0%} of its ceiling "
        f"(C_in/G*kH*kW = {geom.in_channels_per_group * geom.kernel_area})"
    )

# %% [markdown]
# **Exercise:** `exercises/ex6_numba.py` (your forward pass, compiled with Numba); grade it with `gconv-edu
# grade exercises/ex6_numba.py` in a course folder (`gconv-edu course DIR`), or `gconv-edu grade
# lessons/exercises/ex6_numba.py` from the root of a checkout, then time it against the backends here.

# %%
print("\nExercise: exercises/ex6_numba.py (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex6_numba.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex6_numba.py")
