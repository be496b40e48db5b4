# %% [markdown]
# # Lesson 8: AlexNet's two GPUs: model parallelism by groups
#
# The seed article: AlexNet "needed a little under 3GB of GPU RAM to train", and had two GTX 580s with 1.5 GB each.
# **The paper says otherwise**: "A single GTX 580 GPU has only 3GB of memory, which limits the maximum size of the
# networks that can be trained on it" (Krizhevsky, Sutskever, Hinton 2012, section 3.2). The article's 1.5 GB is
# wrong; the cards had 3 GB each, 6 GB together. The paper spreads the net across two GPUs because the net it wanted
# was "too big to fit on one GPU" (section 3.2), and puts "half of the kernels (or neurons) on each GPU".
#
# The split is model parallelism of every layer, including the fully connected ones (which hold almost all of the
# parameters: step 1 counts them). conv2, conv4 and conv5 take input only from the kernel maps on their own GPU: in
# today's words they are *grouped* with G = 2, group g on GPU g. conv3 and the fully connected layers read all the
# maps, so there the GPUs exchange activations (and, in the backward pass, the gradients of those activations).
# The paper's stated reason for this connectivity pattern: it "allows us to precisely tune the amount of
# communication until it is an acceptable fraction of the amount of computation" (section 3.2). Its measured effect:
# the two-GPU net has top-1 and top-5 error rates 1.7 and 1.2 points lower than "a net with half as many kernels in
# each convolutional layer trained on one GPU" (section 3.2; numbers quoted from the paper, not measured here).
#
# We do it here with two "devices" that this machine has: two worker threads, one core each, each owning one
# group's weights and channels. That only speeds anything up if the kernels release Python's GIL while they run:
# we measure it. (With two CUDA devices the same split would put each half on its own GPU; this machine has none.)

# %%
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle thread pools must not spin on the cores (see lesson 7)
# Two Python threads launch Numba kernels at the same time here. The package's default threading layer is the
# fork-safe one (workqueue, where TBB does not load), which is NOT thread-safe, so the package serialises launches
# from several threads behind a lock: the two "devices" would take turns. This lesson does not fork, so it asks for
# the thread-safe OpenMP layer (set before Numba starts its pool; an explicit NUMBA_THREADING_LAYER wins).
os.environ.setdefault("NUMBA_THREADING_LAYER", "omp")

import threading
import time

import matplotlib.pyplot as plt
import numba
import numpy as np
from matplotlib.patches import Rectangle
from threadpoolctl import threadpool_limits

import gconv_edu as gc
from gconv_edu import viz
from gconv_edu.course import best_seconds, check, close
from gconv_edu.groups import group_slices

FAST = viz.fast_mode()
rng = np.random.default_rng(0)
BACKEND = "numba" if "numba" in gc.available_backends() else "im2col"  # both release the GIL (Numba / BLAS)
print(f"backend: {BACKEND}")

# %% [markdown]
# ## Step 1: AlexNet's convolutions, per GPU
#
# The five convolutions of AlexNet (Krizhevsky et al. 2012; 227x227 input, batch 128, float32). For each: the weights
# and the output activations each GPU holds, and what it must receive from the other GPU per training step
# (forward: the other half of the input channels for a dense layer; backward: the matching half of dx).

# %%
ALEXNET = [  # name, C_in, C_out, k, stride, padding, groups, input H=W
    ("conv1", 3, 96, 11, 4, 0, 1, 227),
    ("conv2", 96, 256, 5, 1, 2, 2, 27),
    ("conv3", 256, 384, 3, 1, 1, 1, 13),
    ("conv4", 384, 384, 3, 1, 1, 2, 13),
    ("conv5", 384, 256, 3, 1, 1, 2, 13),
]
N, BYTES = 128, 4
print(f"{'layer':<6} {'G':>2} {'weights/GPU MiB':>15} {'output/GPU MiB':>14} {'exchanged/GPU/step MiB':>23}")
exchanged = {}
for name, c_in, c_out, k, stride, pad, groups, size in ALEXNET:
    geom = gc.ConvGeometry.from_shapes(
        (N, c_in, size, size), (c_out, c_in // groups, k, k), stride=stride, padding=pad, groups=groups
    )
    weights_per_gpu = geom.params * BYTES / 2  # each GPU holds half the filters
    output_per_gpu = np.prod(geom.y_shape) * BYTES / 2
    if name == "conv1":
        exchange = 0.0  # both GPUs read the same image (conv1 is split by filters, the input is replicated)
    elif groups == 2:
        exchange = 0.0  # group g's inputs were produced on GPU g
    else:  # dense: receive the other GPU's half of the input (forward) and send back its half of dx (backward)
        exchange = 2 * N * (c_in // 2) * size * size * BYTES
    exchanged[name] = exchange
    print(
        f"{name:<6} {groups:>2} {weights_per_gpu / 2**20:15.2f} {output_per_gpu / 2**20:14.1f} {exchange / 2**20:23.1f}"
    )
check(
    "grouped layers (conv2, conv4, conv5) exchange nothing; the dense conv3 must",
    exchanged["conv2"] == exchanged["conv4"] == exchanged["conv5"] == 0 and exchanged["conv3"] > 0,
)

# %% [markdown]
# ### Figure: the two towers, and where they talk
#
# AlexNet's Figure 2 as a diagram built from the table above: one row per GPU, one box per layer with the kernel maps
# that GPU holds. A straight arrow stays on its GPU; a crossed arrow means the layer reads the other GPU's maps too.
# Section 3.5: "The kernels of the second, fourth, and fifth convolutional layers are connected only to those kernel
# maps in the previous layer which reside on the same GPU. The kernels of the third convolutional layer are connected
# to all kernel maps in the second layer. The neurons in the fully-connected layers are connected to all neurons in
# the previous layer." We check the table's kernel depths against the sizes section 3.5 gives (11x11x3, 5x5x48,
# 3x3x256, 3x3x192, 3x3x192).

# %%
KERNEL_DEPTH_QUOTED = {"conv1": 3, "conv2": 48, "conv3": 256, "conv4": 192, "conv5": 192}  # AlexNet section 3.5
depth_ours = {name: c_in // groups for name, c_in, _, _, _, _, groups, _ in ALEXNET}
check(
    "each conv's kernel depth C_in/G == the paper's (11x11x3, 5x5x48, 3x3x256, 3x3x192, 3x3x192)",
    depth_ours == KERNEL_DEPTH_QUOTED,
)
# (name, maps per GPU, reads the other GPU's maps?); conv1 reads the image, which both GPUs hold.
FULLY_CONNECTED = [("fc6", 4096, 256 * 6 * 6), ("fc7", 4096, 4096)]  # name, neurons, inputs (section 3.5)
towers = [("conv1", 96 // 2, False)]
towers += [(name, c_out // 2, groups == 1) for name, _, c_out, _, _, _, groups, _ in ALEXNET[1:]]
towers += [(name, neurons // 2, True) for name, neurons, _ in FULLY_CONNECTED]
exchange_mib = {name: value / 2**20 for name, value in exchanged.items()}
exchange_mib.update({name: 2 * N * (inputs // 2) * BYTES / 2**20 for name, _, inputs in FULLY_CONNECTED})
crossing = [name for name, _, crosses in towers if crosses]
check("the towers talk at conv3 and the fully connected layers only", crossing == ["conv3", "fc6", "fc7"])

fig, ax = plt.subplots(figsize=(14, 5.2))
column = {name: 1.6 * (index + 1) for index, (name, _, _) in enumerate(towers)}
row_y = {0: 2.0, 1: 0.0}
ax.add_patch(Rectangle((-0.45, 0.35), 0.9, 1.3, facecolor="white", edgecolor="black"))
ax.text(0.0, 1.0, f"image\n{ALEXNET[0][-1]}x{ALEXNET[0][-1]}x3\n(both GPUs)", ha="center", va="center", fontsize=8)
previous = None
for name, maps, crosses in towers:
    x_pos = column[name]
    for gpu in (0, 1):
        y_pos = row_y[gpu]
        ax.add_patch(
            Rectangle(
                (x_pos - 0.45, y_pos - 0.32), 0.9, 0.64, facecolor=viz.group_color(gpu), alpha=0.85, edgecolor="black"
            )
        )
        ax.text(x_pos, y_pos, f"{name}\n{maps}", ha="center", va="center", fontsize=8, color="white")
        source_x = 0.45 if previous is None else column[previous] + 0.45
        source_y = 1.0 if previous is None else y_pos
        ax.annotate(
            "",
            (x_pos - 0.45, y_pos),
            (source_x, source_y),
            arrowprops=dict(arrowstyle="->", color=viz.group_color(gpu), linewidth=1.5),
        )
        if crosses:  # the other GPU's maps feed this one too: the towers exchange activations (and their gradients)
            ax.annotate(
                "",
                (x_pos - 0.45, y_pos),
                (column[previous] + 0.45, row_y[1 - gpu]),
                arrowprops=dict(arrowstyle="->", color="black", linewidth=1.8),
            )
    if crosses:
        ax.text(
            x_pos - 0.8,
            1.0,
            f"{exchange_mib[name]:.1f}\nMiB",
            ha="center",
            va="center",
            fontsize=7,
            bbox=dict(facecolor="white", edgecolor="none", pad=0.5),
        )
    previous = name
output_x = column[previous] + 1.6
ax.add_patch(Rectangle((output_x - 0.45, 0.35), 0.9, 1.3, facecolor="white", edgecolor="black"))
ax.text(output_x, 1.0, "fc8\n1000-way\nsoftmax", ha="center", va="center", fontsize=8)
for gpu in (0, 1):
    ax.annotate(
        "",
        (output_x - 0.45, 1.0),
        (column[previous] + 0.45, row_y[gpu]),
        arrowprops=dict(arrowstyle="->", color="black", linewidth=1.8),
    )
ax.text(column["conv2"], 2.75, "grouped (G=2): stays on its GPU", ha="center", fontsize=8)
ax.text(column["conv4"] + 0.8, 2.75, "conv4, conv5: grouped", ha="center", fontsize=8)
ax.text(column["fc6"] + 0.8, 2.75, "fully connected: read both GPUs", ha="center", fontsize=8)
ax.text(
    -0.45,
    -0.75,
    f"numbers in boxes: kernel maps (neurons) per GPU; boxed MiB: activations + their gradients each"
    f" GPU receives per step at batch {N}",
    fontsize=8,
)
ax.set_xlim(-0.7, output_x + 0.7)
ax.set_ylim(-1.0, 3.0)
ax.axis("off")
ax.set_title(
    "AlexNet's two towers (section 3.5, Fig. 2): they talk only at " + ", ".join(crossing) + " (black arrows); "
    "conv2, conv4, conv5 read only their own GPU's maps",
    fontsize=11,
)
viz.save(fig, "08_two_towers.png")

# %% [markdown]
# Was "a little under 3 GB" plausible? A rough count of what training keeps in memory at batch 128: every layer's
# output (saved for the backward pass, and about as much again for its gradient), and the parameters three times
# (weights, gradients, momentum). The layer outputs per image: the input, conv1 -> LRN -> pool, conv2 -> LRN -> pool,
# conv3, conv4, conv5 -> pool, then the fully connected 4096, 4096, 1000.

# %%
outputs_per_image = [3 * 227 * 227]
outputs_per_image += [96 * 55 * 55, 96 * 55 * 55, 96 * 27 * 27]  # conv1, LRN1, pool1
outputs_per_image += [256 * 27 * 27, 256 * 27 * 27, 256 * 13 * 13]  # conv2, LRN2, pool2
outputs_per_image += [384 * 13 * 13, 384 * 13 * 13, 256 * 13 * 13, 256 * 6 * 6]  # conv3, conv4, conv5, pool5
outputs_per_image += [4096, 4096, 1000]
conv_params = sum(
    gc.ConvGeometry.from_shapes((1, ci, s, s), (co, ci // g, k, k), (co,), stride=st, padding=p, groups=g).params
    for _, ci, co, k, st, p, g, s in ALEXNET
)
dense_conv_params = sum(
    gc.ConvGeometry.from_shapes((1, ci, s, s), (co, ci, k, k), (co,), stride=st, padding=p, groups=1).params
    for _, ci, co, k, st, p, _g, s in ALEXNET
)
grouping_saving = dense_conv_params - conv_params  # what G = 2 in conv2, conv4, conv5 saves
fc_params = (256 * 6 * 6 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
activation_bytes = 2 * N * sum(outputs_per_image) * BYTES  # outputs and their gradients
parameter_bytes = 3 * (conv_params + fc_params) * BYTES  # weights, gradients, momentum
total = activation_bytes + parameter_bytes
print(f"parameters: {(conv_params + fc_params) / 1e6:.1f} M ({conv_params / 1e6:.2f} M in the convolutions)")
print(
    f"training memory, rough: activations {activation_bytes / 1e9:.2f} GB + parameters {parameter_bytes / 1e9:.2f} GB "
    f"= {total / 1e9:.2f} GB; per GPU when split in two: {total / 2e9:.2f} GB (a GTX 580 has 3 GB: paper, section 3.2)"
)
print(
    f"fully connected layers: {fc_params / 1e6:.1f} M of {(conv_params + fc_params) / 1e6:.1f} M parameters "
    f"({fc_params / (conv_params + fc_params):.0%}); grouping (conv2, conv4, conv5) saves "
    f"{grouping_saving / 1e6:.2f} M parameters"
)
check("AlexNet has about 61 M parameters (the paper's figure)", 60e6 < conv_params + fc_params < 62e6)
GTX580_BYTES = 3e9  # "A single GTX 580 GPU has only 3GB of memory" (Krizhevsky et al. 2012, section 3.2)
SEED_ARTICLE_BYTES = 1.5e9  # the seed article's figure, contradicted by the paper
check(
    "most parameters (> 90 %) are in the fully connected layers, not the convolutions",
    fc_params > 0.9 * (conv_params + fc_params),
)
check("grouping saves well under 10 % of the parameters", grouping_saving < 0.1 * (conv_params + fc_params))
if total < GTX580_BYTES:
    print(
        f"by this rough count ({total / 1e9:.2f} GB) the whole would fit ONE 3 GB card: the count leaves out working"
        " space and implementation overheads, so it cannot show the split was needed; the paper says it was"
    )
else:
    print(f"by this rough count ({total / 1e9:.2f} GB) the whole does not fit one 3 GB card; each half does")
check(
    "the seed's 1.5 GB would not even hold the rough count's whole; the paper's 3 GB is what the cards had",
    total > SEED_ARTICLE_BYTES,
)

# %% [markdown]
# ## Step 2: one grouped layer, split by groups, gives the same answer
#
# A scaled-down conv2 (96 -> 256 channels would be slow on one core; we keep its 5x5 kernel, G = 2 and 27x27 map).
# Device d owns input channels and filters of group d: `x[:, in_d]`, `w[out_d]`, and produces `y[:, out_d]`.

# %%
c_in, c_out, k, size = (16, 32, 5, 27) if FAST else (48, 128, 5, 27)
batch = 2 if FAST else 8
x = rng.standard_normal((batch, c_in, size, size)).astype(np.float32)
w = rng.standard_normal((c_out, c_in // 2, k, k)).astype(np.float32)
dy = rng.standard_normal((batch, c_out, size, size)).astype(np.float32)
halves = group_slices(c_in, c_out, 2)  # [(inputs of device 0, outputs of device 0), (... device 1)]
device_data = [
    (np.ascontiguousarray(x[:, s_in]), np.ascontiguousarray(w[s_out]), np.ascontiguousarray(dy[:, s_out]))
    for s_in, s_out in halves
]
y_full = gc.conv2d(x, w, padding=2, groups=2, backend=BACKEND)
y_split = np.concatenate([gc.conv2d(xd, wd, padding=2, backend=BACKEND) for xd, wd, _ in device_data], axis=1)
y_reference = gc.conv2d(x, w, padding=2, groups=2, backend="im2col")  # lesson 4's backend, as the reference
check(f"the grouped layer on {BACKEND} == on im2col", close(y_full, y_reference, rtol=1e-4, atol=1e-4))
check("concatenated outputs of the two devices == the grouped layer", close(y_split, y_full, rtol=1e-4, atol=1e-4))
dx_full, dw_full, _ = gc.conv2d_backward(dy, x, w, padding=2, groups=2, backend=BACKEND)
dx_split = np.concatenate(
    [gc.conv2d_backward(dyd, xd, wd, padding=2, backend=BACKEND)[0] for xd, wd, dyd in device_data], axis=1
)
check(
    "and so are the gradients: dx of each device needs only its own dy and weights",
    close(dx_split, dx_full, rtol=1e-4, atol=1e-4),
)

# %% [markdown]
# ## Step 3: run the two devices at the same time
#
# Each worker thread limits its kernels to one core (Numba's thread count is per calling thread; BLAS is pinned to
# one thread for the whole run) and runs `steps` forward+backward passes of its group, logging when each starts and
# ends. Baseline: ONE device, one core, doing both groups one after the other.

# %%
steps = 2 if FAST else 4


def train_steps(device: int, log: list) -> None:
    """``steps`` forward+backward passes of one group on one core; appends (device, pass, start, end) to ``log``."""
    numba.set_num_threads(1)  # this thread's parallel Numba kernels use one core: one "device"
    xd, wd, dyd = device_data[device]
    for _ in range(steps):
        start = time.perf_counter()
        gc.conv2d(xd, wd, padding=2, backend=BACKEND)
        middle = time.perf_counter()
        gc.conv2d_backward(dyd, xd, wd, padding=2, backend=BACKEND)
        log.append((device, "forward", start, middle))
        log.append((device, "backward", middle, time.perf_counter()))


with threadpool_limits(limits=1):  # BLAS (im2col's GEMM, numpy) on one thread per caller
    train_steps(0, [])  # warm-up: compilation, caches
    print(f"Numba threading layer: {numba.threading_layer()} (thread-safe: {numba.threading_layer() != 'workqueue'})")

    def one_device() -> None:
        train_steps(0, [])
        train_steps(1, [])

    def two_devices(log: list | None = None) -> None:
        log = [] if log is None else log
        workers = [threading.Thread(target=train_steps, args=(d, log)) for d in (0, 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    sequential = best_seconds(one_device, repeats=2, warmup=0)
    parallel = best_seconds(two_devices, repeats=2, warmup=0)
    timeline: list = []
    t0 = time.perf_counter()
    two_devices(timeline)
speedup = sequential / parallel
load = os.getloadavg()[0]
print(
    f"one device, both groups: {sequential * 1e3:.0f} ms; two devices at once: {parallel * 1e3:.0f} ms; "
    f"speed-up {speedup:.2f}x (ideal 2x on {os.cpu_count()} free cores; load average now {load:.1f})"
)


def main_thread_progress(kernel) -> float:
    """Python work the main thread gets done while ``kernel()`` runs in a worker, relative to when it runs alone.

    A kernel that holds the GIL stops all Python bytecode in the process for its whole duration (~0); one that
    releases it lets the main thread go on (on a busy machine the OS still gives it a share of a core).
    """

    def count_for(seconds: float) -> float:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            count += 1
        return count / seconds

    alone = count_for(0.05)
    worker = threading.Thread(target=kernel)
    count, start = 0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        count += 1
    return count / (time.perf_counter() - start) / alone


def kernels_for_a_fifth_of_a_second() -> None:
    """Backward passes of the whole layer, back to back, for 0.2 s (long enough to measure, even in fast mode)."""
    numba.set_num_threads(1)
    end = time.perf_counter() + 0.2
    with threadpool_limits(limits=1):
        while time.perf_counter() < end:
            gc.conv2d_backward(dy, x, w, padding=2, groups=2, backend=BACKEND)


progress = main_thread_progress(kernels_for_a_fifth_of_a_second)

# The control: a compiled loop that keeps the GIL (Numba's default for njit without parallel=True or nogil=True).


@numba.njit(cache=False)
def spin_holding_gil(repeats: int) -> float:
    total = 0.0
    for i in range(repeats):
        total += (i % 7) * 1e-9
    return total


spin_holding_gil(10)  # compile
start = time.perf_counter()
spin_holding_gil(10**7)
repeats_for_a_fifth_of_a_second = int(10**7 * 0.2 / max(time.perf_counter() - start, 1e-6))
control = main_thread_progress(lambda: spin_holding_gil(repeats_for_a_fifth_of_a_second))
print(
    f"while a kernel runs in a worker thread, the main thread runs Python at: {progress:.0%} of its solo rate "
    f"({BACKEND} backend), {control:.0%} (control: a Numba loop that holds the GIL)"
)
check(
    f"the {BACKEND} kernels release the GIL (main thread progress > 3x the GIL-holding control)", progress > 3 * control
)
check("the timeline has both devices' passes", {d for d, *_ in timeline} == {0, 1})

# %% [markdown]
# ### Figure: the two devices' timelines, their memory, and what a dense layer would exchange
#
# Per-device memory counts the arrays each device must hold for this layer in training: its input channels, its
# weights, its output, and their gradients. For the dense alternative (the same layer with G = 1, split by filters),
# each device must also hold (and first receive) the other half of the input, and send back that half's dx.


# %%
def per_device_bytes(groups: int) -> dict[str, float]:
    """Bytes one of two devices holds for the layer (x, w, y and their gradients), and what it must receive."""
    in_local = batch * c_in * size * size * 4 / 2
    inputs = in_local if groups == 2 else 2 * in_local  # dense: the whole input
    weights = c_out // 2 * (c_in // groups) * k * k * 4
    outputs = batch * c_out // 2 * size * size * 4
    return {
        "input": 2 * inputs,
        "weights": 2 * weights,
        "output": 2 * outputs,  # x2: each array and its gradient
        "received": 0.0 if groups == 2 else 2 * in_local,
    }  # forward: other x half; backward: dx half


memory = {g: per_device_bytes(g) for g in (2, 1)}
for g, parts in memory.items():
    print(
        f"{'grouped (G=2)' if g == 2 else 'dense (G=1)':<14} per device: "
        + ", ".join(f"{key} {value / 2**20:.2f} MiB" for key, value in parts.items())
    )
check(
    "the grouped split holds half the weights of the dense split and receives nothing",
    memory[2]["weights"] * 2 == memory[1]["weights"] and memory[2]["received"] == 0 < memory[1]["received"],
)

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1.6, 1]})
for device, kind, start, end in timeline:
    left.barh(
        device,
        (end - start) * 1e3,
        left=(start - t0) * 1e3,
        height=0.6,
        color=viz.group_color(device),
        alpha=1.0 if kind == "forward" else 0.55,
        edgecolor="black",
        linewidth=0.5,
    )
left.set_yticks([0, 1], ["device 0\n(group 0)", "device 1\n(group 1)"])
left.set_xlabel("time since start, ms (dark: forward, light: backward)")
left.set_title(
    f"Both devices compute at once (GIL released); speed-up over one device: {speedup:.2f}x\n"
    f"({BACKEND} kernels, 1 core each; machine load average {load:.1f} on {os.cpu_count()} cores)",
    fontsize=10,
)
left.invert_yaxis()
parts = ["input", "weights", "output", "received"]
positions = np.arange(len(parts))
for offset, g, color, label in (
    (-0.2, 2, viz.group_color(0), "grouped G=2 (AlexNet)"),
    (0.2, 1, viz.NEUTRAL, "dense G=1 split by filters"),
):
    bars = right.bar(positions + offset, [memory[g][p] / 2**20 for p in parts], 0.4, color=color, label=label)
    viz.bar_labels(right, bars, "{:.2f}")
right.set_xticks(positions, ["input + dx", "weights + dw", "output + dy", "received\nper step"])
right.set_ylabel("MiB per device")
right.set_title("Per device: grouped needs half the weights and no exchange", fontsize=10)
right.legend(fontsize=8)
fig.suptitle(f"Model parallelism by groups: conv {c_in}->{c_out}, 5x5, G=2, {size}x{size}, batch {batch}", fontsize=12)
fig.tight_layout()
viz.save(fig, "08_two_devices.png")

# %% [markdown]
# ## What we learned
#
# - Split by groups, a grouped layer runs on two devices with no communication in either pass (AlexNet's towers
#   still talk at conv3 and the fully connected layers); a dense layer split the
#   same way must all-gather its input and reduce its dx every step (for AlexNet's conv3 at batch 128: the MiB in the
#   table above, every step).
# - Each GTX 580 had 3 GB (paper, section 3.2), not the seed article's 1.5 GB. Our rough count (printed above:
#   activations and parameters for training at batch 128) is below 3 GB, so by itself it would fit one card; it
#   leaves out the working space of the real implementation, and the paper states plainly that the net it wanted did
#   not fit on one GPU. What fits is decided by the whole net, and most of its parameters (printed above) are in
#   the fully connected layers, which were split by plain model parallelism, not by groups.
# - The groups in conv2, conv4, conv5 were a way to choose how much the GPUs talk, not what made the net fit: the
#   paper tuned the connectivity "until [communication] is an acceptable fraction of the amount of computation", and
#   reports 1.7 / 1.2 points better top-1 / top-5 error than a one-GPU net with half as many kernels per conv layer
#   (section 3.2, quoted, not measured here).
# - Running two devices as two Python threads needs kernels that release the GIL: Numba's parallel kernels and BLAS
#   do (measured: the main thread keeps running Python while a kernel runs). The speed-up also needs
#   two free cores: on an idle 2-core machine it approaches 2x, on a shared one it can vanish (the lesson prints the
#   load average next to it).
#
# **Exercise:** `exercises/ex6_numba.py` again: check your compiled kernel releases the GIL (run two halves in
# two threads, as above). Grade it with `gconv-edu grade exercises/ex6_numba.py` in a course folder (`gconv-edu course
# DIR`), or `gconv-edu grade lessons/exercises/ex6_numba.py` from the root of a checkout.

# %%
print("\nExercise: exercises/ex6_numba.py, then run it on two threads as here (exercises/ is beside this lesson)")
print("grade it, from a course folder (gconv-edu course DIR): gconv-edu grade exercises/ex6_numba.py")
print("          from the root of a checkout:               gconv-edu grade lessons/exercises/ex6_numba.py")
