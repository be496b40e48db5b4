"""The GPU backends, on CuPy: the shared im2col path on cuBLAS ("cupy"), and hand-written CUDA kernels ("cupy-raw").

Both take and return CuPy arrays (``gconv_edu.api`` copies NumPy inputs to the device and the results back).

``cupy``: :mod:`gconv_edu.backends.im2col` run with ``xp = cupy``. The same functions that run on the CPU; the
batched GEMM ``(G, C_out/G, N*H_out*W_out) = (G, C_out/G, C_in/G*kH*kW) @ (G, C_in/G*kH*kW, N*H_out*W_out)``
becomes one cuBLAS strided-batched GEMM.

``cupy-raw``: the CUDA C sources in ``kernels/*.cu`` (each opens with a comment that maps threads to elements):

- forward (``conv2d_forward.cu``): one thread per output element;
- dx (``conv2d_backward_input.cu``): one thread per input element, gathering from the outputs that read it;
- dw (``conv2d_backward_weight.cu``): one block per (filter, input channel) pair, block reduction, deterministic;
- db: ``dy.sum(axis=(0, 2, 3))`` (CuPy's reductions).

The kernels are compiled by NVRTC through ``cupy.RawModule`` with ``-D`` options: the dtype (``SCALAR_T``), the
index width (``INDEX_64BIT``), the filter size (``KERNEL_H``, ``KERNEL_W``: the compiler unrolls the tap loops) and
the stride (``STRIDE_H``, ``STRIDE_W``: dx divides by it, cheap only for a constant). One module per option set,
cached (:func:`_compiled_kernel`; CuPy also caches the binaries on disk). Macros rather than C++ templates keep the
kernels plain C with ``extern "C"`` names, and let ``nvcc -ptx`` compile exactly what NVRTC compiles
(tests/test_cupy.py does). Everything a launch needs (grid, block, the argument tuple with its NumPy scalar types) is
built by pure functions (:func:`forward_launch` ...) that do not import CuPy, so it is tested without a GPU.

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
MAX_TAPS = 768  # dw keeps (BLOCK_SIZE/32) x kH*kW partial sums in static shared memory: 8 * 768 * 8 bytes = 48 KiB
_SCALAR_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


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
        return (
            f"NVRTC not loadable, CuPy cannot compile kernels ({type(error).__name__}); pip install 'cupy-cuda12x[ctk]'"
        )
    return None


def _cupy() -> ModuleType:
    import cupy

    return cupy


# --------------------------------------------------------------------------- backend "cupy": im2col on cuBLAS
def im2col_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry) -> Array:
    """y = conv2d(x, weight) + bias via :func:`gconv_edu.backends.im2col.forward` with ``xp = cupy``.

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None -> y: (N, C_out, H_out, W_out).
    """
    return im2col.forward(x, weight, bias, geom, xp=_cupy())


def im2col_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry) -> tuple[Array, Array, Array]:
    """(dx, dw, db) via :func:`gconv_edu.backends.im2col.backward` with ``xp = cupy``.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,).
    """
    return im2col.backward(dy, x, weight, geom, xp=_cupy())


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
    """Whether cupy-raw's kernels take this geometry: dw keeps one partial sum per tap in shared memory."""
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
    # Window positions i*stride + p*dilation (before the padding is subtracted) stay below the padded extents.
    largest = max(
        geom.batch * geom.in_channels * geom.height * geom.width,
        geom.batch * geom.out_channels * geom.out_h * geom.out_w,
        splits * weight_size,
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
    "backward_weight_atomic": ("conv2d_backward_weight_atomic.cu", "gconv_backward_weight_atomic", ("dy", "x", "dw")),
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
        "dilation_h": geom.dilation[0],
        "dilation_w": geom.dilation[1],
    }
    if kind == "backward_weight":
        check_raw_supports(geom)
        splits, scalars["chunk"] = weight_grad_splits(geom)
        grid = (geom.out_channels * geom.in_channels_per_group, splits)  # (pairs, splits)
    elif kind == "backward_input":
        grid = grid_1d(math.prod(geom.x_shape))  # one thread per element of dx
    else:
        grid = grid_1d(math.prod(geom.y_shape))  # one thread per element of y (or of dy)
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


def backward_weight_atomic_launch(geom: ConvGeometry, dtype: Any, dy: Any, x: Any, dw: Any) -> KernelLaunch:
    """Launch of the lesson-contrast ``gconv_backward_weight_atomic``: one thread per element of dy."""
    return _launch("backward_weight_atomic", geom, dtype, dy, x, dw)


# --------------------------------------------------------------------------- running the kernels
@functools.cache
def _compiled_kernel(source: str, name: str, options: tuple[str, ...]) -> Any:
    """The kernel ``name`` of ``kernels/source`` compiled with ``options`` (NVRTC), one module per option set."""
    code = (KERNEL_DIR / source).read_text()
    return _cupy().RawModule(code=code, options=options).get_function(name)


def _run_on_gpu(launch: KernelLaunch) -> None:
    _compiled_kernel(launch.source, launch.name, launch.options)(launch.grid, launch.block, launch.args)


Runner = Callable[[KernelLaunch], None]


def _raw_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry, xp: ModuleType, run: Runner) -> Array:
    """The body of :func:`raw_forward`, for any array module and launcher (the tests run it on a CPU emulation)."""
    if any(geom.padding) and not bool(xp.isfinite(weight).all()):
        # The kernels skip taps over the padding; the definition gives inf * 0 = NaN there: pad x for real (rare).
        x, geom = im2col.pad(x, geom, xp), geom.with_explicit_padding()
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)  # the kernels index C-contiguous memory
    # No bias: add zeros, so the kernel has one code path (C_out values: nothing next to the convolution itself).
    bias = xp.zeros(geom.out_channels, dtype=x.dtype) if bias is None else xp.ascontiguousarray(bias)
    y = xp.empty(geom.y_shape, dtype=x.dtype)
    run(forward_launch(geom, x.dtype, x, weight, bias, y))
    return y


def _raw_backward(
    dy: Array, x: Array, weight: Array, geom: ConvGeometry, xp: ModuleType, run: Runner
) -> tuple[Array, Array, Array]:
    """The body of :func:`raw_backward`, for any array module and launcher."""
    check_raw_supports(geom)
    dx, dw, db = _raw_backward_kernels(dy, x, weight, geom, xp, run)
    if any(geom.padding) and not bool(xp.isfinite(db).all()):
        # db sums dy: it shows for free whether dy holds inf/NaN. Then dw's taps over the padding must give
        # inf * 0 = NaN as the definition does, and the kernels skip them: redo it on x padded for real.
        top, _, left, _ = geom.padding
        padded_x, padded_geom = im2col.pad(x, geom, xp), geom.with_explicit_padding()
        dx_padded, dw, db = _raw_backward_kernels(dy, padded_x, weight, padded_geom, xp, run)
        dx = dx_padded[:, :, top : top + geom.height, left : left + geom.width].copy()
    return dx, dw, db


def _raw_backward_kernels(
    dy: Array, x: Array, weight: Array, geom: ConvGeometry, xp: ModuleType, run: Runner
) -> tuple[Array, Array, Array]:
    dy, x, weight = xp.ascontiguousarray(dy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    dx = xp.empty(geom.x_shape, dtype=x.dtype)
    run(backward_input_launch(geom, x.dtype, dy, weight, dx))
    splits, _ = weight_grad_splits(geom)
    partial = xp.empty((splits, *geom.weight_shape), dtype=x.dtype)
    run(backward_weight_launch(geom, x.dtype, dy, x, partial))
    # The splits are added in a fixed order: dw is the same on every run.
    dw = partial.reshape(geom.weight_shape) if splits == 1 else partial.sum(axis=0)
    # db = dy.sum(axis=(0, 2, 3)), as two sums over contiguous axes: (N, C_out, H_out*W_out) -> (N, C_out) -> (C_out,).
    # A reduction along contiguous rows is the fast path of CuPy's reductions (CUB); three strided axes at once is not.
    db = dy.reshape(geom.batch, geom.out_channels, -1).sum(axis=2).sum(axis=0)
    return dx, dw, db


def _raw_weight_grad_atomic(dy: Array, x: Array, geom: ConvGeometry, xp: ModuleType, run: Runner) -> Array:
    """The body of :func:`raw_weight_grad_atomic`, for any array module and launcher."""
    dy, x = xp.ascontiguousarray(dy), xp.ascontiguousarray(x)
    dw = xp.zeros(geom.weight_shape, dtype=x.dtype)  # the atomics accumulate into it
    run(backward_weight_atomic_launch(geom, x.dtype, dy, x, dw))
    return dw


def raw_forward(x: Array, weight: Array, bias: Array | None, geom: ConvGeometry) -> Array:
    """y = conv2d(x, weight) + bias with the CUDA kernel ``gconv_forward`` (one thread per output element).

    x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW); bias: (C_out,) or None (CuPy arrays)
    -> y: (N, C_out, H_out, W_out), where H_out = (H + pad_top + pad_bottom - dh*(kH - 1) - 1) // sh + 1.
    """
    return _raw_forward(x, weight, bias, geom, _cupy(), _run_on_gpu)


def raw_backward(dy: Array, x: Array, weight: Array, geom: ConvGeometry) -> tuple[Array, Array, Array]:
    """(dx, dw, db) with the CUDA kernels: dx by gathering (no atomics), dw by block reductions, db by a sum.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W); weight: (C_out, C_in/G, kH, kW) (CuPy arrays)
    -> dx: (N, C_in, H, W), dw: (C_out, C_in/G, kH, kW), db: (C_out,). Deterministic: same bits on every run.
    """
    return _raw_backward(dy, x, weight, geom, _cupy(), _run_on_gpu)


def raw_weight_grad_atomic(dy: Array, x: Array, geom: ConvGeometry) -> Array:
    """Lesson contrast: dw with ``atomicAdd`` (one thread per dy element). Not deterministic in its last bits.

    dy: (N, C_out, H_out, W_out); x: (N, C_in, H, W) (CuPy arrays) -> dw: (C_out, C_in/G, kH, kW).
    """
    return _raw_weight_grad_atomic(dy, x, geom, _cupy(), _run_on_gpu)
