"""The GPU backends, on CuPy: the shared im2col path on cuBLAS ("cupy"), and hand-written CUDA kernels ("cupy-raw").

Both take and return CuPy arrays (``gconv_edu.api`` copies NumPy inputs to the device and the results back).

``cupy``: im2col and the grouped batched GEMM of :mod:`gconv_edu.backends.im2col`, on the GPU. The batched GEMM
``(G, C_out/G, n*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, n*H_out*W_out)`` is one cuBLAS
strided-batched GEMM; the columns are written by ONE kernel (``conv2d_im2col.cu``: ``gconv_im2col``) straight in
that layout, and dx is gathered back by one (``gconv_col2im``, no atomics), where im2col.py's portable path makes one
strided copy per tap (kH*kW launches each way). The batch is cut into chunks under im2col's workspace cap
(:func:`gconv_edu.backends.im2col.batch_chunk`, ``GCONV_IM2COL_WORKSPACE_MB``).

``cupy-raw``: the CUDA C sources in ``kernels/*.cu`` (each opens with a comment that maps threads to elements):

- forward (``conv2d_forward.cu``): one thread per output element;
- dx (``conv2d_backward_input.cu``): one thread per input element, gathering from the outputs that read it;
- dw (``conv2d_backward_weight.cu``): one block per (filter, input channel) pair, block reduction, deterministic;
- db: ``dy.sum(axis=(0, 2, 3))`` (CuPy's reductions);
- tiled, for depthwise and thin groups (:func:`gconv_edu.backends.cuda_launch.tiled_supports`): forward
  (``conv2d_tiled_forward.cu``) with one block per (output tile, filter), the input tile and its halo in shared
  memory, the filter's weights in registers, 4 outputs per thread, no run-time division; dx for stride 1 as the
  same kernel on the flipped filter; dw and db together over the same tiles (``conv2d_tiled_backward_weight.cu``),
  then the tiles added in a fixed order.
  The simple kernels above stay the readable version (and take every other geometry).

No host synchronisation on the way: the padding is read as 0 inside the kernels and every tap is multiplied, so an
inf/NaN weight or dy meets the padding as in the definition (inf * 0 = NaN) without any check on the host.

The launches (kernel, ``-D`` compile options, grid, block, arguments) are described by the pure functions of
:mod:`gconv_edu.backends.cuda_launch`, which do not import CuPy (so the tests check them without a GPU); this module
allocates the arrays, compiles each kernel once per option set with NVRTC (:func:`_compiled_kernel`) and runs it.

Output size: ``H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1`` (likewise W_out).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..arrays import cupy_install_hint
from ..geometry import ConvGeometry
from . import im2col
from .cuda_launch import (
    KernelLaunch,
    backward_input_launch,
    backward_weight_launch,
    check_raw_supports,
    columns_launch,
    forward_launch,
    raw_supports,  # noqa: F401 (the registry's GPU "auto" rule asks cupy_gpu.raw_supports)
    tile_grid,
    tiled_backward_input_launch,
    tiled_backward_weight_launch,
    tiled_forward_launch,
    tiled_supports,
    weight_grad_splits,
)

DESCRIPTION = (
    "GPU (CuPy): 'cupy' = the im2col path on cuBLAS; 'cupy-raw' = hand-written CUDA kernels (backends/kernels/*.cu)"
)

Array = Any  # cupy.ndarray (numpy.ndarray in the CPU emulation of the tests)

KERNEL_DIR = Path(__file__).with_name("kernels")  # the .cu sources that a KernelLaunch names


# --------------------------------------------------------------------------- availability
def availability() -> str | None:
    """None when CuPy and a CUDA device are usable here, else why not. Never raises; allocates nothing."""
    try:
        import cupy
    except ModuleNotFoundError:
        return "cupy not installed (pip install -e '.[gpu]' in the checkout)"
    except Exception as error:  # a broken CUDA install raises other errors at import
        return f"cupy import failed ({type(error).__name__}: {error})"
    try:
        if not cupy.cuda.is_available():
            return "no CUDA device"
    except Exception as error:
        return f"no CUDA device ({type(error).__name__}: {error})"
    try:
        # Both backends need NVRTC: CuPy compiles its own elementwise kernels with it too.
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as error:
        hint = cupy_install_hint("ctk")  # the CuPy installed here, with the CUDA libraries from PyPI
        return f"NVRTC not loadable, CuPy cannot compile kernels ({type(error).__name__}); {hint}"
    return None


def _cupy() -> ModuleType:
    import cupy

    return cupy


# --------------------------------------------------------------------------- backend "cupy": im2col on cuBLAS
def im2col_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry) -> Array:
    """y = conv2d(x, weight) + bias: the columns by one kernel (``gconv_im2col``), then one batched GEMM per chunk.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    """
    return _im2col_forward(x, weight, bias, geom, _cupy(), _run_on_gpu)


def im2col_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry) -> tuple[Array, Array, Array]:
    """(dx, dw, db): the columns again, two batched GEMMs per chunk, dx gathered by one kernel (``gconv_col2im``).

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).
    """
    return _im2col_backward(dy, x, weight, geom, _cupy(), _run_on_gpu)


def _im2col_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry, xp: ModuleType, run: Runner):
    """The body of :func:`im2col_forward`, for any array module and launcher."""
    samples = im2col.batch_chunk(geom, x.dtype.itemsize, buffers=1)  # the columns only: the kernel writes the layout
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    groups, out_per_group, rows = (
        geom.groups,
        geom.out_channels_per_group,
        geom.in_channels_per_group * geom.kernel_area,
    )
    w_grouped = weight.reshape(groups, out_per_group, rows)  # (G, C_out/G, C_in/G*kH*kW)
    y = xp.empty(geom.y_shape, dtype=x.dtype)
    pixels = geom.out_h * geom.out_w
    for start in range(0, geom.batch, samples):
        n = min(samples, geom.batch - start)
        cols = xp.empty((groups, rows, n * pixels), dtype=x.dtype)  # (G, C_in/G*kH*kW, n*H_out*W_out)
        run(columns_launch("im2col", geom, x.dtype, n, xp.ascontiguousarray(x[start : start + n]), cols))
        # (G, C_out/G, n*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, n*H_out*W_out)
        y_grouped = xp.matmul(w_grouped, cols)
        # (G, C_out/G, n, H_out*W_out) -> (n, G, C_out/G, H_out*W_out) = (n, C_out, H_out, W_out)
        y[start : start + n] = (
            y_grouped.reshape(groups, out_per_group, n, pixels)
            .transpose(2, 0, 1, 3)
            .reshape(n, geom.out_channels, geom.out_h, geom.out_w)
        )
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def _im2col_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry, xp: ModuleType, run: Runner):
    """The body of :func:`im2col_backward`, for any array module and launcher."""
    samples = im2col.batch_chunk(geom, x.dtype.itemsize, buffers=2)  # cols, then dcols
    dy, x, weight = xp.ascontiguousarray(dy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    groups, out_per_group, rows = (
        geom.groups,
        geom.out_channels_per_group,
        geom.in_channels_per_group * geom.kernel_area,
    )
    w_grouped = weight.reshape(groups, out_per_group, rows)  # (G, C_out/G, C_in/G*kH*kW)
    dw_grouped = xp.zeros_like(w_grouped)
    dx = xp.empty(geom.x_shape, dtype=x.dtype)
    pixels = geom.out_h * geom.out_w
    for start in range(0, geom.batch, samples):
        n = min(samples, geom.batch - start)
        cols = xp.empty((groups, rows, n * pixels), dtype=x.dtype)
        run(columns_launch("im2col", geom, x.dtype, n, xp.ascontiguousarray(x[start : start + n]), cols))
        # (n, C_out, H_out, W_out) -> (G, C_out/G, n, H_out*W_out) -> (G, C_out/G, n*H_out*W_out)
        dy_chunk = dy[start : start + n].reshape(n, groups, out_per_group, pixels)
        dy_grouped = dy_chunk.transpose(1, 2, 0, 3).reshape(groups, out_per_group, n * pixels)
        # (G, C_out/G, C_in/G*kH*kW) += (G, C_out/G, n*H_out*W_out) @ (G, n*H_out*W_out, C_in/G*kH*kW)
        dw_grouped += xp.matmul(dy_grouped, cols.transpose(0, 2, 1))
        del cols
        # (G, C_in/G*kH*kW, n*H_out*W_out) = (G, C_in/G*kH*kW, C_out/G) @ (G, C_out/G, n*H_out*W_out)
        dcols = xp.ascontiguousarray(xp.matmul(w_grouped.transpose(0, 2, 1), dy_grouped))
        dx_chunk = xp.empty((n, *geom.x_shape[1:]), dtype=x.dtype)
        run(columns_launch("col2im", geom, x.dtype, n, dcols, dx_chunk))
        dx[start : start + n] = dx_chunk
    db = dy.reshape(geom.batch, geom.out_channels, -1).sum(axis=2).sum(axis=0)
    return dx, dw_grouped.reshape(geom.weight_shape), db


# --------------------------------------------------------------------------- running the kernels
@functools.cache
def _compiled_kernel(source: str, name: str, options: tuple[str, ...]) -> Any:
    """The kernel ``name`` of ``kernels/source`` compiled with ``options`` (NVRTC), one module per option set."""
    code = (KERNEL_DIR / source).read_text()
    return _cupy().RawModule(code=code, options=options).get_function(name)


def _run_on_gpu(launch: KernelLaunch) -> None:
    _compiled_kernel(launch.source, launch.name, launch.options)(launch.grid, launch.block, launch.args)


Runner = Callable[[KernelLaunch], None]


# --------------------------------------------------------------------------- backend "cupy-raw": the CUDA kernels
def flipped_filter(weight: Array, geom: ConvGeometry, xp: ModuleType) -> Array:
    """The filter of dx = dy (*) w for stride 1: (C_out, C_in/G, kH, kW) -> (C_in, C_out/G, kH, kW), C-contiguous,
    ``flipped[g*in_per_group + c, j, p, q] = weight[g*out_per_group + j, c, kH-1-p, kW-1-q]`` (one small copy)."""
    groups, out_per_group, in_per_group = geom.groups, geom.out_channels_per_group, geom.in_channels_per_group
    by_group = weight.reshape(groups, out_per_group, in_per_group, geom.kernel_h, geom.kernel_w)
    flipped = by_group[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)  # (G, C_in/G, C_out/G, kH, kW)
    return xp.ascontiguousarray(flipped).reshape(geom.in_channels, out_per_group, geom.kernel_h, geom.kernel_w)


def _raw_forward(
    x: Array, weight: Array, bias: Array | None, geom: ConvGeometry, xp: ModuleType, run: Runner, tiled: bool = True
) -> Array:
    """The body of :func:`raw_forward`, for any array module and launcher (the tests run it on a CPU emulation).

    ``tiled=False`` keeps to the simple one-thread-per-output kernel (the tests and scripts/gpu-check compare both).
    """
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)  # the kernels index C-contiguous memory
    # No bias: add zeros, so the kernel has one code path (C_out values: nothing next to the convolution itself).
    bias = xp.zeros(geom.out_channels, dtype=x.dtype) if bias is None else xp.ascontiguousarray(bias)
    y = xp.empty(geom.y_shape, dtype=x.dtype)
    if tiled and tiled_supports(geom, "forward", x.dtype):
        run(tiled_forward_launch(geom, x.dtype, x, weight, bias, y))
    else:
        run(forward_launch(geom, x.dtype, x, weight, bias, y))
    return y


def _raw_backward(
    dy: Array, x: Array, weight: Array, geom: ConvGeometry, xp: ModuleType, run: Runner, tiled: bool = True
) -> tuple[Array, Array, Array]:
    """The body of :func:`raw_backward`, for any array module and launcher (``tiled`` as in :func:`_raw_forward`)."""
    check_raw_supports(geom)
    dy, x, weight = xp.ascontiguousarray(dy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    dx = xp.empty(geom.x_shape, dtype=x.dtype)
    if tiled and tiled_supports(geom, "backward_input", x.dtype):
        zeros = xp.zeros(geom.in_channels, dtype=x.dtype)  # the forward kernel's bias
        run(tiled_backward_input_launch(geom, x.dtype, dy, flipped_filter(weight, geom, xp), zeros, dx))
    else:
        run(backward_input_launch(geom, x.dtype, dy, weight, dx))
    if tiled and tiled_supports(geom, "backward_weight", x.dtype):
        tiles = math.prod(tile_grid(geom.out_h, geom.out_w))
        slots = geom.in_channels_per_group * geom.kernel_area + 1  # dw[k], then db[k]
        partial = xp.empty((tiles, geom.out_channels, slots), dtype=x.dtype)
        run(tiled_backward_weight_launch(geom, x.dtype, dy, x, partial))
        sums = partial[0] if tiles == 1 else partial.sum(axis=0)  # (C_out, slots): the tiles in a fixed order
        dw = xp.ascontiguousarray(sums[:, :-1]).reshape(geom.weight_shape)
        return dx, dw, xp.ascontiguousarray(sums[:, -1])
    splits, _ = weight_grad_splits(geom)
    partial = xp.empty((splits, *geom.weight_shape), dtype=x.dtype)
    run(backward_weight_launch(geom, x.dtype, dy, x, partial))
    # The splits are added in a fixed order: dw is the same on every run.
    dw = partial.reshape(geom.weight_shape) if splits == 1 else partial.sum(axis=0)
    # db = dy.sum(axis=(0, 2, 3)), as two sums over contiguous axes: (N, C_out, H_out*W_out) -> (N, C_out) -> (C_out,).
    # A reduction along contiguous rows is the fast path of CuPy's reductions (CUB); three strided axes at once is not.
    db = dy.reshape(geom.batch, geom.out_channels, -1).sum(axis=2).sum(axis=0)
    return dx, dw, db


def raw_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry) -> Array:
    """y = conv2d(x, weight) + bias with ``gconv_tiled_forward`` where :func:`tiled_supports` it (depthwise, thin
    groups), else ``gconv_forward`` (one thread per output element).

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None (CuPy arrays)
    -> y: (N, C_out, H_out, W_out), where H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) // sh + 1.
    """
    return _raw_forward(x, weight, bias, geom, _cupy(), _run_on_gpu)


def raw_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry) -> tuple[Array, Array, Array]:
    """(dx, dw, db) with the CUDA kernels: dx by gathering (no atomics) or, for stride 1 and thin groups, by the tiled
    forward on the flipped filter; dw by block reductions (tiled with db for thin groups), db by a sum.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW) (CuPy arrays)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,). Deterministic: same bits on every run.
    """
    return _raw_backward(dy, x, weight, geom, _cupy(), _run_on_gpu)
