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


fig, axes = plt.subplots(2, 3, figsize=(11, 7.4))
for column, groups in enumerate((1, 2, 4)):
    dx_reach, dw_reach = gradient_reach(groups)
    inside = viz.connection_matrix(channels, channels, groups)
    check(
        f"G={groups}: dx and dw reach exactly the channels of their own group",
        bool(np.all((dx_reach > 1e-12) == inside) and np.all((dw_reach > 1e-12) == inside)),
    )
    viz.draw_block_matrix(
        axes[0, column], dx_reach, groups, mask_zeros=True, title=f"G={groups}: |dx[c]| from dy on output k only"
    )
    viz.draw_block_matrix(
        axes[1, column], dw_reach, groups, mask_zeros=True, title=f"G={groups}: change of dw[k] when x[c] moves"
    )
    axes[0, column].set_ylabel("output channel k carrying dy")
    axes[0, column].set_xlabel("input channel c (its dx)")
    axes[1, column].set_ylabel("filter k (its dw)")
    axes[1, column].set_xlabel("input channel c (perturbed)")
fig.suptitle(
    "Gradients never leave their group: both dx and dw are block-diagonal in (output, input) channel", fontsize=12
)
fig.tight_layout()
viz.save(fig, "05_gradients_stay_in_group.png")

# %% [markdown]
# ## What we learned
#
# - `db = sum dy`, `dw = x correlated with dy`, `dx = dy scattered back through w` (a full convolution with the
#   flipped filter); all three checked by finite differences.
# - With groups, both the forward and the backward pass of group g touch only group g's channels. So a grouped
#   layer split across two GPUs by groups needs no communication in either pass; AlexNet's towers still exchange
#   activations and their gradients at conv3 and at the fully connected layers, which are dense (lesson 8).
#
# **Exercise:** `lessons/exercises/ex4_backward.py` (`conv2d_backward` with stride, padding, dilation and groups);
# grade it with `gconv-edu grade lessons/exercises/ex4_backward.py`.

# %%
print("\nExercise: lessons/exercises/ex4_backward.py")
print("grade it with: gconv-edu grade lessons/exercises/ex4_backward.py")
