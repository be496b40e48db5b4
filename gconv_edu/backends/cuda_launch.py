"""The CUDA kernel launches of the GPU backends, described without CuPy: what to compile, grid, block, arguments.

A :class:`KernelLaunch` names a source in ``kernels/`` and its ``extern "C"`` kernel, the ``-D`` options it is
compiled with, the grid and block, and the arguments in the kernel's order (the arrays, then NumPy scalars whose types
match the C parameters). The functions here are pure: no CuPy, no GPU. :mod:`gconv_edu.backends.cupy_gpu` allocates
the arrays and runs the launches; the tests check every launch against the kernels' C signatures and run it on a CPU
emulation of CUDA (tests/cuda_emulator.py), so all of this is tested on a machine without a GPU.

Decided here, from the geometry only (never from the GPU, so results are the same on every card): the index width
(:func:`index_dtype`), how dw's reduction is split (:func:`weight_grad_splits`), which layers the tiled kernels take
(:func:`tiled_supports`) and the largest filter cupy-raw takes (:func:`raw_supports`).

The kernels are compiled by NVRTC through ``cupy.RawModule`` with ``-D`` options: the dtype (``SCALAR_T``), the
index width (``INDEX_64BIT``), the filter size (``KERNEL_H``, ``KERNEL_W``: the compiler unrolls the tap loops) and
the stride (``STRIDE_H``, ``STRIDE_W``: dx divides by it, cheap only for a constant); the tiled kernels also take
the dilation and the channels per group (``DIL_H``, ``IN_PER_GROUP``, ...: they size the shared tile and the register
arrays). One module per option set, cached (:func:`gconv_edu.backends.cupy_gpu._compiled_kernel`; CuPy also caches
the binaries on disk). Macros rather than C++ templates keep the kernels plain C with ``extern "C"`` names, and let
``nvcc`` compile exactly what NVRTC compiles (tests/test_cupy.py and tests/test_kernels_compile.py do, with the
``-ftz=true`` CuPy adds: float32 denormals, below 2**-126 = 1.2e-38 in magnitude, are flushed to 0 as inputs and
results of float32 arithmetic; float64 keeps its denormals).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from ..geometry import ConvGeometry

BLOCK_SIZE = 256  # threads per block, every kernel (a multiple of the 32-thread warp)
MAX_BLOCKS = 2**16  # grid cap of the grid-stride kernels: at most 2**24 threads per launch
INT32_MAX = 2**31 - 1
# 32-bit indices while every index the kernels form stays below this: the largest array, plus one grid-stride step.
INDEX32_LIMIT = INT32_MAX - MAX_BLOCKS * BLOCK_SIZE
WEIGHT_GRAD_TARGET_BLOCKS = 1024  # enough blocks to fill a large GPU (H100: 132 SMs), fixed so results are reproducible
MIN_TERMS_PER_THREAD = 4  # a dw split is not cut finer than about this many terms per thread
MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y
# The simple dw kernel keeps one running sum per tap in registers. Measured with nvcc 13.0 (ptxas --resource-usage,
# sm_80 and sm_90, tests/test_kernels_compile.py): float32 compiles without spills up to 11x11 = 121 taps; float64
# spills from 9x9 with 64-bit indices and from 11x11 with 32-bit ones (scripts/gpu-check reports the spills it sees).
# Larger filters go to backend "cupy" (27x27 took 10-20 s to compile and spilled 18 KB per thread).
MAX_TAPS = 121
_SCALAR_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# The tiled kernels (conv2d_tiled_*.cu; these values must match their #defines): a tile of TILE_OH x TILE_OW
# outputs per block, ROWS_PER_THREAD outputs per thread; a thread keeps at most TILED_MAX_REGISTER_VALUES weights
# (forward) or running dw sums (dw) in registers, and a block's static shared memory stays within SHARED_LIMIT.
TILE_OW = 32
ROWS_PER_THREAD = 4
TILE_OH = BLOCK_SIZE // TILE_OW * ROWS_PER_THREAD
TILED_MAX_REGISTER_VALUES = 64  # 7x7 depthwise (49), 4 channels x 3x3 (36): no spills (tests/test_kernels_compile.py)
SHARED_LIMIT = 48 * 1024  # the most static shared memory a block may have


# --------------------------------------------------------------------------- launch building (no CuPy needed)
class KernelLaunch(NamedTuple):
    """One kernel launch, fully described: what to compile, the launch shape, the arguments in the kernel's order.

    ``args`` are the arrays (passed to CUDA as pointers) then NumPy scalars whose types match the C parameters
    (``np.int32`` for ``index_t = int``, ``np.int64`` for ``index_t = long long``); ``arg_names`` are the C names.
    """

    source: str
    name: str
    options: tuple[str, ...]
    grid: tuple[int, ...]
    block: tuple[int, ...]
    args: tuple[Any, ...]
    arg_names: tuple[str, ...]


@functools.lru_cache(maxsize=1024)
def weight_grad_splits(geom: ConvGeometry) -> tuple[int, int]:
    """(splits, chunk): how the dw reduction over R = N*H_out*W_out terms is cut into ``splits`` chunks of ``chunk``.

    One block per (filter, channel) pair and split. Few pairs (depthwise) get more splits so that about
    :data:`WEIGHT_GRAD_TARGET_BLOCKS` blocks run, but a split keeps about :data:`MIN_TERMS_PER_THREAD` terms per
    thread or more. No split is empty. Depends on the geometry only (not on the GPU), so dw is bitwise reproducible.
    """
    pairs = geom.out_channels * geom.in_channels_per_group
    terms = geom.batch * geom.out_h * geom.out_w
    wanted = -(-WEIGHT_GRAD_TARGET_BLOCKS // pairs)
    most = -(-terms // (BLOCK_SIZE * MIN_TERMS_PER_THREAD))
    splits = max(1, min(wanted, most, MAX_GRID_Y))
    chunk = -(-terms // splits)
    return -(-terms // chunk), chunk


def raw_supports(geom: ConvGeometry) -> bool:
    """Whether cupy-raw's kernels take this geometry: at most :data:`MAX_TAPS` taps (dw's sums live in registers)."""
    return geom.kernel_area <= MAX_TAPS


def check_raw_supports(geom: ConvGeometry) -> None:
    """Raise the ValueError that says why cupy-raw cannot run this geometry (before any kernel is launched)."""
    if not raw_supports(geom):
        raise ValueError(
            f"kernel {geom.kernel_h}x{geom.kernel_w} has {geom.kernel_area} taps; cupy-raw's dw kernel supports "
            f"at most {MAX_TAPS} (kH*kW); use backend='cupy'"
        )


def index_dtype(geom: ConvGeometry) -> type[np.signedinteger]:
    """``np.int32`` when every index the kernels form fits in 32 bits, else ``np.int64`` (kernels built with
    ``-DINDEX_64BIT``). The largest index is below the largest array (x, y, weight, the dw partial sums); a grid-stride
    step of up to ``MAX_BLOCKS * BLOCK_SIZE`` is added to it, hence the limit :data:`INDEX32_LIMIT` (2**31 - 1 - 2**24).
    """
    splits, _ = weight_grad_splits(geom)
    weight_size = geom.out_channels * geom.in_channels_per_group * geom.kernel_area
    tiles = math.prod(tile_grid(geom.out_h, geom.out_w))
    tiled_partial = tiles * geom.out_channels * (weight_size // geom.out_channels + 1)
    # Window positions i*stride + p*dilation (before the padding is subtracted) stay below the padded extents.
    largest = max(
        geom.batch * geom.in_channels * geom.height * geom.width,
        geom.batch * geom.out_channels * geom.out_h * geom.out_w,
        splits * weight_size,
        tiled_partial,
        *geom.padded_size,
    )
    return np.int64 if largest > INDEX32_LIMIT else np.int32


def compile_options(dtype: Any, geom: ConvGeometry) -> tuple[str, ...]:
    """The ``-D`` options every kernel is compiled with for this dtype and geometry (one cached module each):
    dtype, filter size, stride, block size, and ``-DINDEX_64BIT`` where :func:`index_dtype` asks for it."""
    scalar = _SCALAR_TYPES.get(np.dtype(dtype))
    if scalar is None:
        raise TypeError(f"dtype={np.dtype(dtype)} is not supported by cupy-raw; expected float32 or float64")
    options = (
        f"-DSCALAR_T={scalar}",
        f"-DKERNEL_H={geom.kernel_h}",
        f"-DKERNEL_W={geom.kernel_w}",
        f"-DSTRIDE_H={geom.stride[0]}",
        f"-DSTRIDE_W={geom.stride[1]}",
        f"-DBLOCK_SIZE={BLOCK_SIZE}",
    )
    return options + (("-DINDEX_64BIT",) if index_dtype(geom) is np.int64 else ())


def grid_1d(total: int) -> tuple[int]:
    """Blocks for a grid-stride loop over ``total`` elements: enough to cover them, at most :data:`MAX_BLOCKS`."""
    return (max(1, min(-(-total // BLOCK_SIZE), MAX_BLOCKS)),)


# kind -> (file, kernel, its array parameters in order); the scalar parameters follow (see _launch_without_arrays).
KERNELS = {
    "forward": ("conv2d_forward.cu", "gconv_forward", ("x", "weight", "bias", "y")),
    "backward_input": ("conv2d_backward_input.cu", "gconv_backward_input", ("dy", "weight", "dx")),
    "backward_weight": ("conv2d_backward_weight.cu", "gconv_backward_weight", ("dy", "x", "partial")),
}


@functools.lru_cache(maxsize=1024)
def _launch_without_arrays(kind: str, geom: ConvGeometry, dtype: np.dtype, index32_limit: int) -> KernelLaunch:
    """Everything of a launch but the arrays; ``args`` holds the scalars only.

    Cached: a training loop repeats the same geometry, and on a small layer this Python work would otherwise take as
    long as the kernel. ``index32_limit`` (:data:`INDEX32_LIMIT`) is in the key so that a changed limit is seen.
    """
    source, name, array_names = KERNELS[kind]
    top, _, left, _ = geom.padding
    scalars = {
        "batch": geom.batch,
        "in_channels": geom.in_channels,
        "height": geom.height,
        "width": geom.width,
        "out_channels": geom.out_channels,
        "out_h": geom.out_h,
        "out_w": geom.out_w,
        "in_per_group": geom.in_channels_per_group,
        "out_per_group": geom.out_channels_per_group,
        "pad_top": top,
        "pad_left": left,
        "dil_h": geom.dilation[0],
        "dil_w": geom.dilation[1],
    }
    if kind == "backward_weight":
        check_raw_supports(geom)
        splits, scalars["chunk"] = weight_grad_splits(geom)
        grid = (geom.out_channels * geom.in_channels_per_group, splits)  # (pairs, splits)
    elif kind == "backward_input":
        grid = grid_1d(math.prod(geom.x_shape))  # one thread per element of dx
    else:
        grid = grid_1d(math.prod(geom.y_shape))  # one thread per element of y
    index = index_dtype(geom)
    return KernelLaunch(
        source=source,
        name=name,
        options=compile_options(dtype, geom),
        grid=grid,
        block=(BLOCK_SIZE,),
        args=tuple(index(value) for value in scalars.values()),
        arg_names=array_names + tuple(scalars),
    )


def _launch(kind: str, geom: ConvGeometry, dtype: Any, *arrays: Any) -> KernelLaunch:
    without_arrays = _launch_without_arrays(kind, geom, np.dtype(dtype), INDEX32_LIMIT)
    return without_arrays._replace(args=arrays + without_arrays.args)


def forward_launch(geom: ConvGeometry, dtype: Any, x: Any, weight: Any, bias: Any, y: Any) -> KernelLaunch:
    """Launch of ``gconv_forward``: one thread per element of y (N, C_out, H_out, W_out)."""
    return _launch("forward", geom, dtype, x, weight, bias, y)


def backward_input_launch(geom: ConvGeometry, dtype: Any, dy: Any, weight: Any, dx: Any) -> KernelLaunch:
    """Launch of ``gconv_backward_input``: one thread per element of dx (N, C_in, H, W)."""
    return _launch("backward_input", geom, dtype, dy, weight, dx)


def backward_weight_launch(geom: ConvGeometry, dtype: Any, dy: Any, x: Any, partial: Any) -> KernelLaunch:
    """Launch of ``gconv_backward_weight``: grid (C_out * C_in/G pairs, splits); ``partial``: (splits, *w.shape)."""
    return _launch("backward_weight", geom, dtype, dy, x, partial)


# --------------------------------------------------------------------------- the tiled kernels (no CuPy needed)
TILED_KERNELS = {
    "tiled_forward": ("conv2d_tiled_forward.cu", "gconv_tiled_forward", ("x", "weight", "bias", "y")),
    "tiled_backward_weight": ("conv2d_tiled_backward_weight.cu", "gconv_tiled_backward_weight", ("dy", "x", "partial")),
}
_TILED_SCALARS = ("batch", "in_channels", "height", "width", "out_channels", "out_h", "out_w", "pad_top", "pad_left")


def tile_grid(out_h: int, out_w: int) -> tuple[int, int]:
    """(tiles across, tiles down): the tiled kernels' blockIdx.x and blockIdx.y ranges for an H_out x W_out output."""
    return -(-out_w // TILE_OW), -(-out_h // TILE_OH)


def tiled_shared_bytes(geom: ConvGeometry, itemsize: int, stride: tuple[int, int] | None = None) -> int:
    """Static shared memory of a tiled block: the input tile and its halo, plus dw's per-warp sums.

    Tile: ((TILE_OH - 1)*sh + (kH - 1)*dil_h + 1) x ((TILE_OW - 1)*sw + (kW - 1)*dil_w + 1) values.
    """
    sh, sw = geom.stride if stride is None else stride
    tile_h = (TILE_OH - 1) * sh + (geom.kernel_h - 1) * geom.dilation[0] + 1
    tile_w = (TILE_OW - 1) * sw + (geom.kernel_w - 1) * geom.dilation[1] + 1
    warp_sums = BLOCK_SIZE // 32 * (geom.in_channels_per_group * geom.kernel_area + 1)
    return (tile_h * tile_w + warp_sums) * itemsize


def tiled_supports(geom: ConvGeometry, kind: str, dtype: Any = np.float64) -> bool:
    """Whether the tiled kernel for ``kind`` ("forward", "backward_input", "backward_weight") takes this geometry.

    Depthwise and thin groups: the values a thread keeps in registers (forward: C_in/G * kH*kW weights; dx: C_out/G
    * kH*kW; dw: C_in/G * kH*kW + 1 sums) at most :data:`TILED_MAX_REGISTER_VALUES`; the shared tile within
    :data:`SHARED_LIMIT`; at most :data:`MAX_GRID_Y` tile rows. dx only for stride 1 (the flipped-filter identity).
    """
    itemsize = np.dtype(dtype).itemsize
    per_thread = {
        "forward": geom.in_channels_per_group * geom.kernel_area,
        "backward_input": geom.out_channels_per_group * geom.kernel_area,
        "backward_weight": geom.in_channels_per_group * geom.kernel_area + 1,
    }[kind]
    out_h = geom.height if kind == "backward_input" else geom.out_h
    if kind == "backward_input" and geom.stride != (1, 1):
        return False
    return (
        per_thread <= TILED_MAX_REGISTER_VALUES
        and tiled_shared_bytes(geom, itemsize) <= SHARED_LIMIT
        and tile_grid(out_h, 1)[1] <= MAX_GRID_Y
    )


@functools.lru_cache(maxsize=1024)
def _tiled_without_arrays(kind: str, geom: ConvGeometry, dtype: np.dtype, index32_limit: int) -> KernelLaunch:
    """A tiled launch but its arrays (cached like :func:`_launch_without_arrays`). ``kind``: "forward",
    "backward_input" (the forward kernel on dy and the flipped filter) or "backward_weight"."""
    top, _, left, _ = geom.padding
    dil_h, dil_w = geom.dilation
    if kind == "backward_input":
        # dx = dy, zero-extended by dil*(k - 1) - pad (may be < 0), (*) the flipped filter; groups' roles swap.
        source, name, array_names = TILED_KERNELS["tiled_forward"]
        in_per_group, out_per_group = geom.out_channels_per_group, geom.in_channels_per_group
        problem = (geom.batch, geom.out_channels, geom.out_h, geom.out_w, geom.in_channels, geom.height, geom.width)
        pads = (dil_h * (geom.kernel_h - 1) - top, dil_w * (geom.kernel_w - 1) - left)
        extra = ("-DABSENT_OUTSIDE",)  # beyond dy is no output at all, not a zero (see the .cu)
    else:
        source, name, array_names = TILED_KERNELS[f"tiled_{kind}"]
        in_per_group, out_per_group = geom.in_channels_per_group, geom.out_channels_per_group
        problem = (geom.batch, geom.in_channels, geom.height, geom.width, geom.out_channels, geom.out_h, geom.out_w)
        pads, extra = (top, left), ()
    options = compile_options(dtype, geom) + (
        f"-DDIL_H={dil_h}",
        f"-DDIL_W={dil_w}",
        f"-DIN_PER_GROUP={in_per_group}",
        f"-DOUT_PER_GROUP={out_per_group}",
        *extra,
    )
    index = index_dtype(geom)
    out_channels, out_h, out_w = problem[4:]
    return KernelLaunch(
        source=source,
        name=name,
        options=options,
        grid=(*tile_grid(out_h, out_w), min(out_channels, MAX_GRID_Y)),  # z: a grid-stride loop over the filters
        block=(BLOCK_SIZE,),
        args=tuple(index(value) for value in (*problem, *pads)),
        arg_names=array_names + _TILED_SCALARS,
    )


def _tiled(kind: str, geom: ConvGeometry, dtype: Any, *arrays: Any) -> KernelLaunch:
    without_arrays = _tiled_without_arrays(kind, geom, np.dtype(dtype), INDEX32_LIMIT)
    return without_arrays._replace(args=arrays + without_arrays.args)


def tiled_forward_launch(geom: ConvGeometry, dtype: Any, x: Any, weight: Any, bias: Any, y: Any) -> KernelLaunch:
    """Launch of ``gconv_tiled_forward``: grid (tiles across, tiles down, C_out), one block per (tile, filter)."""
    return _tiled("forward", geom, dtype, x, weight, bias, y)


def tiled_backward_input_launch(
    geom: ConvGeometry, dtype: Any, dy: Any, flipped: Any, zeros: Any, dx: Any
) -> KernelLaunch:
    """dx for stride 1: ``gconv_tiled_forward`` on dy with ``flipped`` = :func:`flipped_filter` (C_in, C_out/G, kH,
    kW), ``zeros`` (C_in,) as the bias; grid (tiles across W, tiles down H, C_in)."""
    return _tiled("backward_input", geom, dtype, dy, flipped, zeros, dx)


def tiled_backward_weight_launch(geom: ConvGeometry, dtype: Any, dy: Any, x: Any, partial: Any) -> KernelLaunch:
    """Launch of ``gconv_tiled_backward_weight``: grid (tiles across, tiles down, C_out);
    ``partial``: (tiles, C_out, C_in/G * kH * kW + 1), each row dw[k] of one tile then db[k] of that tile."""
    return _tiled("backward_weight", geom, dtype, dy, x, partial)


# --------------------------------------------------------------------------- the cupy path's column kernels
def columns_launch(kind: str, geom: ConvGeometry, dtype: Any, samples: int, source: Any, target: Any) -> KernelLaunch:
    """``gconv_im2col`` (kind "im2col": x chunk -> cols) or ``gconv_col2im`` ("col2im": dcols -> dx chunk) for a
    chunk of ``samples``; cols: (C_in*kH*kW, samples*H_out*W_out). One thread per element written."""
    without_arrays = _columns_without_arrays(kind, geom, np.dtype(dtype), samples, INDEX32_LIMIT)
    return without_arrays._replace(args=(source, target) + without_arrays.args)


@functools.lru_cache(maxsize=1024)
def _columns_without_arrays(kind: str, geom: ConvGeometry, dtype: np.dtype, samples: int, limit: int) -> KernelLaunch:
    top, _, left, _ = geom.padding
    problem = (samples, geom.in_channels, geom.height, geom.width, geom.out_h, geom.out_w, top, left, *geom.dilation)
    names = ("batch", "in_channels", "height", "width", "out_h", "out_w", "pad_top", "pad_left", "dil_h", "dil_w")
    cols_size = geom.in_channels * geom.kernel_area * samples * geom.out_h * geom.out_w
    x_size = samples * geom.in_channels * geom.height * geom.width
    options = compile_options(dtype, geom)
    if cols_size > limit and "-DINDEX_64BIT" not in options:  # the columns can outgrow every other array
        options = (*options, "-DINDEX_64BIT")
    index = np.int64 if "-DINDEX_64BIT" in options else np.int32
    return KernelLaunch(
        source="conv2d_im2col.cu",
        name=f"gconv_{kind}",
        options=options,
        grid=grid_1d(cols_size if kind == "im2col" else x_size),
        block=(BLOCK_SIZE,),
        args=tuple(index(value) for value in problem),
        arg_names=(("x", "cols") if kind == "im2col" else ("dcols", "dx")) + names,
    )
