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
- tiled, for depthwise and thin groups (:func:`tiled_supports`): forward (``conv2d_tiled_forward.cu``) with one
  block per (output tile, filter), the input tile and its halo in shared memory, the filter's weights in registers,
  4 outputs per thread, no run-time division; dx for stride 1 as the same kernel on the flipped filter; dw and db
  together over the same tiles (``conv2d_tiled_backward_weight.cu``), then the tiles added in a fixed order.
  The simple kernels above stay the readable version (and take every other geometry).

No host synchronisation on the way: the padding is read as 0 inside the kernels and every tap is multiplied, so an
inf/NaN weight or dy meets the padding as in the definition (inf * 0 = NaN) without any check on the host.

The kernels are compiled by NVRTC through ``cupy.RawModule`` with ``-D`` options: the dtype (``SCALAR_T``), the
index width (``INDEX_64BIT``), the filter size (``KERNEL_H``, ``KERNEL_W``: the compiler unrolls the tap loops) and
the stride (``STRIDE_H``, ``STRIDE_W``: dx divides by it, cheap only for a constant); the tiled kernels also take
the dilation and the channels per group (``DIL_H``, ``IN_PER_GROUP``, ...: they size the shared tile and the register
arrays). One module per option set,
cached (:func:`_compiled_kernel`; CuPy also caches the binaries on disk). Macros rather than C++ templates keep the
kernels plain C with ``extern "C"`` names, and let ``nvcc`` compile exactly what NVRTC compiles (tests/test_cupy.py
and tests/test_kernels_compile.py do, with the ``-ftz=true`` CuPy adds: float32 denormals, below 2**-126 = 1.2e-38 in
magnitude, are flushed to 0 as inputs and results of float32 arithmetic; float64 keeps its denormals).
Everything a launch needs (grid, block, the argument tuple with its NumPy scalar types) is built by pure functions
(:func:`forward_launch` ...) that do not import CuPy, so it is tested without a GPU.

Output size: ``H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1`` (likewise W_out).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ..arrays import cupy_install_hint
from ..geometry import ConvGeometry
from . import im2col

DESCRIPTION = (
    "GPU (CuPy): 'cupy' = the im2col path on cuBLAS; 'cupy-raw' = hand-written CUDA kernels (backends/kernels/*.cu)"
)

Array = Any  # cupy.ndarray (numpy.ndarray in the CPU emulation of the tests)

KERNEL_DIR = Path(__file__).with_name("kernels")
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


def flipped_filter(weight: Array, geom: ConvGeometry, xp: ModuleType) -> Array:
    """The filter of dx = dy (*) w for stride 1: (C_out, C_in/G, kH, kW) -> (C_in, C_out/G, kH, kW), C-contiguous,
    ``flipped[g*in_per_group + c, j, p, q] = weight[g*out_per_group + j, c, kH-1-p, kW-1-q]`` (one small copy)."""
    groups, out_per_group, in_per_group = geom.groups, geom.out_channels_per_group, geom.in_channels_per_group
    by_group = weight.reshape(groups, out_per_group, in_per_group, geom.kernel_h, geom.kernel_w)
    flipped = by_group[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)  # (G, C_in/G, C_out/G, kH, kW)
    return xp.ascontiguousarray(flipped).reshape(geom.in_channels, out_per_group, geom.kernel_h, geom.kernel_w)


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
    -> y: (N, C_out, H_out, W_out), where H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1.
    """
    return _raw_forward(x, weight, bias, geom, _cupy(), _run_on_gpu)


def raw_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry) -> tuple[Array, Array, Array]:
    """(dx, dw, db) with the CUDA kernels: dx by gathering (no atomics) or, for stride 1 and thin groups, by the tiled
    forward on the flipped filter; dw by block reductions (tiled with db for thin groups), db by a sum.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW) (CuPy arrays)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,). Deterministic: same bits on every run.
    """
    return _raw_backward(dy, x, weight, geom, _cupy(), _run_on_gpu)
