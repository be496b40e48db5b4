"""The GPU backends ("cupy", "cupy-raw"): what can be checked without a GPU, and GPU tests that skip without one.

Without a GPU:
- every ``kernels/*.cu`` compiles for sm_80 and sm_90 without spills up to 7x7 (tests/test_kernels_compile.py,
  nvcc with the options NVRTC gets, ``-ftz=true`` included); and with NVRTC itself where CuPy loads it (here);
- the launch builders: arguments named and typed as the kernels declare them, grids covering every element, the
  64-bit path above the 32-bit limit, which geometries the tiled kernels take;
- the kernels RUN on the CPU: the ``.cu`` files are compiled as C++ with a small shim (a block's CUDA threads as
  coroutines, ``__syncthreads`` as a switch back to their scheduler, ``__shfl_down_sync`` through a buffer, shared
  memory as a static array) and driven by cupy_gpu's own launch code, against the float64 reference: the simple
  kernels and the tiled ones (forward, dx on the flipped filter, dw + db over the tiles), inf/NaN as the definition
  gives them, with no host-side check (no ``isfinite`` on the way);
- availability() and the error that gc.conv2d raises here.
GPU tests carry the ``gpu`` marker and skip with the reason where no CUDA device is usable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, random_array
from cuda_emulator import KERNEL_FILES, CpuEmulator, kernel_signatures

import gconv_edu as gc
from gconv_edu.backends import cuda_launch, cupy_gpu
from gconv_edu.geometry import ConvGeometry

GPU_REASON = cupy_gpu.availability()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backends: {GPU_REASON}")

# name: (x shape, weight shape, stride, padding, dilation, groups, bias, noncontiguous inputs)
CASES = {
    "dense-3x3": ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1, True, False),
    "g2-s2-uneven": ((2, 4, 9, 8), (6, 2, 3, 3), 2, 1, 1, 2, False, True),
    "g3-k2x3-s2x1-d2x1-pad2x0": ((1, 6, 10, 9), (3, 2, 2, 3), (2, 1), (2, 0), (2, 1), 3, True, False),
    "depthwise-mult2-k5x5-same": ((2, 4, 8, 7), (8, 1, 5, 5), 1, "same", 1, 4, True, True),
    "depthwise-k3x2-s3-d2": ((1, 3, 11, 10), (3, 1, 3, 2), 3, 1, 2, 3, False, False),
    "pointwise-g2": ((2, 4, 5, 5), (4, 2, 1, 1), 1, 0, 1, 2, True, False),
    "same-even-kernel": ((1, 2, 6, 8), (2, 2, 2, 4), 1, "same", 1, 1, True, False),
    "depthwise-split-dw": ((2, 2, 24, 24), (2, 1, 3, 3), 1, 1, 1, 2, True, False),  # dw reduction in 2 splits
    # The tiled kernels' geometries: several tiles (32 x 32 outputs each) with edge tiles, stride 2 (tiled forward and
    # dw, gather dx), dilation, a thin group (4 x 4 channels, resnext-like), a depthwise multiplier on the dx side.
    "tiled-depthwise-3x3-3x2-tiles": ((2, 3, 70, 40), (3, 1, 3, 3), 1, 1, 1, 3, True, False),
    "tiled-depthwise-5x5-s2-d2": ((1, 2, 37, 75), (2, 1, 5, 5), 2, 3, 2, 2, False, True),
    "tiled-thin-4x4-3x3": ((2, 8, 34, 33), (8, 4, 3, 3), 1, 1, 1, 2, True, False),
    "tiled-depthwise-mult3-2x3-pad2x0": ((1, 2, 9, 35), (6, 1, 2, 3), 1, (2, 0), 1, 2, True, False),
}
TILED_CASES = [name for name in CASES if name.startswith("tiled")] + ["depthwise-mult2-k5x5-same", "depthwise-split-dw"]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def _case(name, dtype, seed=0):
    x_shape, w_shape, stride, padding, dilation, groups, has_bias, noncontiguous = CASES[name]
    rng = np.random.default_rng(seed)
    x = random_array(rng, x_shape, dtype, noncontiguous)
    weight = random_array(rng, w_shape, dtype, noncontiguous)
    bias = rng.standard_normal(w_shape[0]).astype(dtype) if has_bias else None
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, None if bias is None else bias.shape, **options)
    dy = rng.standard_normal(geom.y_shape).astype(dtype)  # random upstream gradient, never all ones
    return x, weight, bias, dy, options, geom


def _geom(x_shape, w_shape, **options):
    return ConvGeometry.from_shapes(x_shape, w_shape, None, **options)


SMALL = _geom((2, 4, 9, 8), (6, 2, 3, 2), stride=2, padding=1, groups=2)
HUGE = _geom((2, 1, 2**15, 2**15), (1, 1, 3, 3), padding=1)  # 2**31 input elements: needs 64-bit indices


class Placeholder:
    """Stands for a device array in a launch built without CuPy."""


def all_launches(geom, dtype):
    """The simple kernels' launches, the tiled ones' (forward, dx on the flipped filter, dw + db), the cupy path's
    column kernels (im2col, col2im)."""
    p = Placeholder
    return [
        cuda_launch.forward_launch(geom, dtype, p(), p(), p(), p()),
        cuda_launch.backward_input_launch(geom, dtype, p(), p(), p()),
        cuda_launch.backward_weight_launch(geom, dtype, p(), p(), p()),
        cuda_launch.tiled_forward_launch(geom, dtype, p(), p(), p(), p()),
        cuda_launch.tiled_backward_input_launch(geom, dtype, p(), p(), p(), p()),
        cuda_launch.tiled_backward_weight_launch(geom, dtype, p(), p(), p()),
        cuda_launch.columns_launch("im2col", geom, dtype, geom.batch, p(), p()),
        cuda_launch.columns_launch("col2im", geom, dtype, geom.batch, p(), p()),
    ]


# --------------------------------------------------------------------------- launch building (no GPU)
@pytest.mark.parametrize("geom", [SMALL, HUGE], ids=["small", "huge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_launch_arguments_match_the_kernel_signatures(geom, dtype):
    signatures = kernel_signatures()
    launches = all_launches(geom, dtype)
    assert {(launch.source, launch.name) for launch in launches} == set(signatures), "a kernel without a launch"
    index = np.int64 if geom is HUGE else np.int32
    for launch in launches:
        params = signatures[(launch.source, launch.name)]
        assert launch.arg_names == tuple(name for _, name, _ in params), launch.name
        for (declaration, name, is_pointer), value in zip(params, launch.args, strict=True):
            if is_pointer:
                assert isinstance(value, Placeholder), f"{launch.name}: {name} should be an array"
            else:
                assert declaration.split()[-2] == "index_t", f"{launch.name}: {declaration}"
                assert type(value) is index, f"{launch.name}: {name} is {type(value).__name__}, not {index.__name__}"
        assert launch.block == (cuda_launch.BLOCK_SIZE,) and f"-DBLOCK_SIZE={cuda_launch.BLOCK_SIZE}" in launch.options
        assert ("-DINDEX_64BIT" in launch.options) == (index is np.int64)
        scalar = "float" if dtype is np.float32 else "double"
        assert f"-DSCALAR_T={scalar}" in launch.options
        assert f"-DKERNEL_H={geom.kernel_h}" in launch.options and f"-DKERNEL_W={geom.kernel_w}" in launch.options
        assert f"-DSTRIDE_H={geom.stride[0]}" in launch.options and f"-DSTRIDE_W={geom.stride[1]}" in launch.options


@pytest.mark.parametrize(
    "total, blocks", [(1, 1), (256, 1), (257, 2), (256 * 65536, 65536), (2**40, cuda_launch.MAX_BLOCKS)]
)
def test_grid_1d_covers_every_element_or_strides(total, blocks):
    assert cuda_launch.grid_1d(total) == (blocks,)
    threads = blocks * cuda_launch.BLOCK_SIZE
    assert threads >= total or blocks == cuda_launch.MAX_BLOCKS  # beyond the cap, the kernels' grid-stride loop


def test_forward_and_dx_grids_cover_their_outputs():
    for launch, shape in zip(all_launches(SMALL, np.float32)[:2], (SMALL.y_shape, SMALL.x_shape)):
        assert launch.grid[0] * cuda_launch.BLOCK_SIZE >= np.prod(shape) > (launch.grid[0] - 1) * cuda_launch.BLOCK_SIZE


@pytest.mark.parametrize(
    "geom",
    [
        SMALL,
        _geom((8, 32, 112, 112), (32, 1, 3, 3), padding=1, groups=32),  # depthwise: few pairs, long reduction
        _geom((8, 256, 56, 56), (256, 8, 3, 3), padding=1, groups=32),  # many pairs
        _geom((1, 1, 5, 5), (1, 1, 5, 5)),  # a single term
        HUGE,
    ],
    ids=["small", "depthwise", "resnext", "one-term", "huge"],
)
def test_weight_grad_splits_cover_the_reduction_without_empty_splits(geom):
    splits, chunk = cuda_launch.weight_grad_splits(geom)
    terms = geom.batch * geom.out_h * geom.out_w
    pairs = geom.out_channels * geom.in_channels_per_group
    assert splits * chunk >= terms > (splits - 1) * chunk
    assert 1 <= splits <= cuda_launch.MAX_GRID_Y
    launch = cuda_launch.backward_weight_launch(geom, np.float32, None, None, None)
    assert launch.grid == (pairs, splits)
    assert launch.args[launch.arg_names.index("chunk")] == chunk
    per_block = cuda_launch.BLOCK_SIZE * cuda_launch.MIN_TERMS_PER_THREAD
    if pairs >= cuda_launch.WEIGHT_GRAD_TARGET_BLOCKS:
        assert splits == 1  # enough blocks already: no partial sums to add afterwards
    # Either the GPU gets its target number of blocks, or one more split would leave threads under their minimum.
    assert pairs * splits >= cuda_launch.WEIGHT_GRAD_TARGET_BLOCKS or -(-terms // (splits + 1)) < per_block
    if splits > 1:
        assert chunk >= per_block // 2  # a split is never so short that its threads idle


def test_depthwise_dw_is_split_to_fill_the_gpu():
    geom = _geom((8, 32, 112, 112), (32, 1, 3, 3), padding=1, groups=32)
    splits, _ = cuda_launch.weight_grad_splits(geom)
    assert splits * 32 >= cuda_launch.WEIGHT_GRAD_TARGET_BLOCKS


def test_index_width_switches_to_64_bit_above_the_32_bit_limit():
    limit = cuda_launch.INDEX32_LIMIT
    assert limit < 2**31 - 1 and limit + cuda_launch.MAX_BLOCKS * cuda_launch.BLOCK_SIZE == 2**31 - 1
    assert cuda_launch.index_dtype(SMALL) is np.int32
    assert cuda_launch.index_dtype(_geom((1, 1, 1, limit), (1, 1, 1, 1))) is np.int32
    assert cuda_launch.index_dtype(_geom((1, 1, 1, limit + 1), (1, 1, 1, 1))) is np.int64
    assert cuda_launch.index_dtype(HUGE) is np.int64
    # The output alone can be the large one (stride 1, no reduction in size).
    assert cuda_launch.index_dtype(_geom((1, 1, 1, 2**20), (2**12, 1, 1, 1))) is np.int64


def test_unsupported_dtype_and_oversized_kernel_are_refused_clearly():
    with pytest.raises(TypeError, match="dtype=float16"):
        cuda_launch.compile_options(np.float16, SMALL)
    big = _geom((1, 1, 30, 30), (1, 1, 28, 28))
    with pytest.raises(ValueError, match="28x28 has 784 taps"):
        cuda_launch.backward_weight_launch(big, np.float32, None, None, None)


# --------------------------------------------------------------------------- the .cu files compile (no GPU)
def test_kernels_are_self_contained_for_nvrtc():
    assert KERNEL_FILES, f"no .cu files in {cupy_gpu.KERNEL_DIR}"
    for path in KERNEL_FILES:
        assert not re.search(r"^\s*#\s*include", path.read_text(), re.M), f"{path.name}: NVRTC has no host headers"


def _option_sets():
    """Every option set cupy-raw builds for SMALL and HUGE in float/double (32/64-bit indices, simple and tiled)."""
    return sorted(
        {
            launch.options
            for dtype in (np.float32, np.float64)
            for geom in (SMALL, HUGE)
            for launch in all_launches(geom, dtype)
        }
    )


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_kernel_compiles_with_cupys_nvrtc(path):
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as error:
        pytest.skip(f"CuPy cannot load NVRTC here ({type(error).__name__})")
    for options in _option_sets():
        # The options CuPy adds itself when RawModule compiles (cupy/cuda/compiler.py): -arch and -ftz=true.
        full = (*options, "-arch=compute_80", "-ftz=true")
        program = nvrtc.createProgram(path.read_text(), path.name, (), ())
        try:
            nvrtc.compileProgram(program, full)
        except nvrtc.NVRTCError:
            pytest.fail(f"{path.name} {full}:\n{nvrtc.getProgramLog(program)}")
        finally:
            nvrtc.destroyProgram(program)


# --------------------------------------------------------------------------- the kernels, run on the CPU (no GPU)
@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH (needed to run the kernels on the CPU)")
    return CpuEmulator(tmp_path_factory.mktemp("cuda_on_cpu"))


class Recording:
    """A launcher that records the kernel names it runs, then hands the launch on."""

    def __init__(self, run):
        self.run, self.names = run, []

    def __call__(self, launch):
        self.names.append(launch.name)
        self.run(launch)


def _expected_kernels(geom, dtype, tiled):
    """The kernels cupy-raw should launch for forward + backward on this geometry."""
    use = {kind: tiled and cuda_launch.tiled_supports(geom, kind, dtype) for kind in ("forward", "backward_input")}
    use["backward_weight"] = tiled and cuda_launch.tiled_supports(geom, "backward_weight", dtype)
    return [
        "gconv_tiled_forward" if use["forward"] else "gconv_forward",
        "gconv_tiled_forward" if use["backward_input"] else "gconv_backward_input",
        "gconv_tiled_backward_weight" if use["backward_weight"] else "gconv_backward_weight",
    ]


def _check_raw_backend(case, dtype, xp, run, compare=assert_close, tiled=True):
    """cupy_gpu's raw forward/backward bodies with array module ``xp`` and launcher ``run``, vs the reference;
    returns the kernels launched, in order."""
    x, weight, bias, dy, options, geom = _case(case, dtype)
    run = Recording(run)
    y = cupy_gpu._raw_forward(
        xp.asarray(x), xp.asarray(weight), None if bias is None else xp.asarray(bias), geom, xp, run, tiled
    )
    compare(y, ref.conv2d(x, weight, bias, **options), dtype, "y")
    dx, dw, db = cupy_gpu._raw_backward(xp.asarray(dy), xp.asarray(x), xp.asarray(weight), geom, xp, run, tiled)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy, x, weight, **options)
    for got, want, label in ((dx, dx_ref, "dx"), (dw, dw_ref, "dw"), (db, db_ref, "db")):
        assert got.dtype == dtype and got.shape == want.shape, label
        compare(got, want, dtype, label)
    assert run.names == _expected_kernels(geom, dtype, tiled)
    return run.names


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_simple_kernels_on_cpu_emulation_match_reference(emulator, case, dtype):
    _check_raw_backend(case, dtype, np, emulator, tiled=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TILED_CASES)
def test_tiled_kernels_on_cpu_emulation_match_reference(emulator, case, dtype):
    names = _check_raw_backend(case, dtype, np, emulator, tiled=True)
    assert names[0] == "gconv_tiled_forward" and names[2] == "gconv_tiled_backward_weight", names
    *_, geom = _case(case, dtype)
    assert (names[1] == "gconv_tiled_forward") == (geom.stride == (1, 1)), names  # dx: the flipped filter


def test_tiled_kernels_loop_over_filters_past_the_grid_limit(emulator, monkeypatch):
    """blockIdx.z runs over the filters in a grid-stride loop when C_out exceeds gridDim.z's limit."""
    cached = (cuda_launch._tiled_without_arrays, cuda_launch.weight_grad_splits, cuda_launch._launch_without_arrays)
    for cache in cached:
        cache.cache_clear()
    monkeypatch.setattr(cuda_launch, "MAX_GRID_Y", 3)  # 8 filters on a grid of 3 in z: 3 + 3 + 2
    try:
        *_, geom = _case("tiled-thin-4x4-3x3", np.float64)
        assert cuda_launch.tiled_forward_launch(geom, np.float64, *[None] * 4).grid[2] == 3
        _check_raw_backend("tiled-thin-4x4-3x3", np.float64, np, emulator, tiled=True)
    finally:
        for cache in cached:
            cache.cache_clear()


def test_tiled_kernels_take_depthwise_and_thin_groups_only():
    def supports(x_shape, w_shape, dtype=np.float32, **options):
        geom = _geom(x_shape, w_shape, **options)
        return {
            kind: cuda_launch.tiled_supports(geom, kind, dtype)
            for kind in ("forward", "backward_input", "backward_weight")
        }

    every = {"forward": True, "backward_input": True, "backward_weight": True}
    assert supports((8, 64, 112, 112), (64, 1, 3, 3), padding=1, groups=64) == every  # mobilenet-dw
    assert supports((8, 128, 56, 56), (128, 4, 3, 3), padding=1, groups=32) == every  # resnext-g32
    assert supports((8, 64, 56, 56), (64, 1, 7, 7), np.float64, padding=3, groups=64) == every
    assert supports((8, 64, 56, 56), (64, 1, 3, 3), stride=2, padding=1, groups=64)["backward_input"] is False
    assert not any(supports((8, 96, 27, 27), (256, 48, 5, 5), padding=2, groups=2).values())  # alexnet-conv2
    assert not any(supports((8, 64, 56, 56), (64, 64, 3, 3), padding=1).values())  # dense
    assert not any(supports((1, 4, 64, 64), (4, 1, 9, 9), groups=4).values())  # 81 taps: over 64 registers
    assert not any(supports((1, 4, 200, 200), (4, 1, 3, 3), dilation=40, groups=4).values())  # halo past 48 KiB


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_cupy_path_column_kernels_on_cpu_emulation_match_reference(emulator, case, dtype):
    """Backend "cupy": columns by gconv_im2col, batched GEMMs, dx by gconv_col2im (NumPy's matmul stands in)."""
    x, weight, bias, dy, options, geom = _case(case, dtype)
    run = Recording(emulator)
    y = cupy_gpu._im2col_forward(x, weight, bias, geom, np, run)
    assert_close(y, ref.conv2d(x, weight, bias, **options), dtype, "y")
    got = cupy_gpu._im2col_backward(dy, x, weight, geom, np, run)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert g.dtype == dtype and g.shape == want.shape, label
        assert_close(g, want, dtype, label)
    assert run.names == ["gconv_im2col", "gconv_im2col", "gconv_col2im"]  # one launch each, not one per tap


def test_cupy_path_chunks_the_batch_under_the_workspace_cap(emulator, monkeypatch):
    monkeypatch.setenv("GCONV_IM2COL_WORKSPACE_MB", "0.001")  # 1 KiB: one sample per chunk
    x, weight, bias, dy, options, geom = _case("g2-s2-uneven", np.float64)
    run = Recording(emulator)
    assert_close(cupy_gpu._im2col_forward(x, weight, bias, geom, np, run), ref.conv2d(x, weight, bias, **options),
                 np.float64, "y")  # fmt: skip
    got = cupy_gpu._im2col_backward(dy, x, weight, geom, np, run)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert_close(g, want, np.float64, label)
    assert run.names.count("gconv_col2im") == geom.batch == 2


def test_public_entry_points_run_the_shared_code(emulator, monkeypatch):
    """The registered functions, with NumPy standing in for CuPy and the emulator for the GPU."""
    monkeypatch.setattr(cupy_gpu, "_cupy", lambda: np)
    monkeypatch.setattr(cupy_gpu, "_run_on_gpu", emulator)
    x, weight, bias, dy, options, geom = _case("g2-s2-uneven", np.float64)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy, x, weight, **options)
    for forward, backward in (
        (cupy_gpu.im2col_forward, cupy_gpu.im2col_backward),
        (cupy_gpu.raw_forward, cupy_gpu.raw_backward),
    ):
        assert_close(forward(x, weight, bias, geom), ref.conv2d(x, weight, bias, **options), np.float64, "y")
        for got, want, label in zip(backward(dy, x, weight, geom), (dx_ref, dw_ref, db_ref), ("dx", "dw", "db")):
            assert_close(got, want, np.float64, label)


def test_split_case_really_splits():
    *_, geom = _case("depthwise-split-dw", np.float32)
    assert cuda_launch.weight_grad_splits(geom)[0] == 2


@pytest.mark.parametrize("case", ["g3-k2x3-s2x1-d2x1-pad2x0", "depthwise-split-dw"])
def test_raw_kernels_64_bit_index_path_on_cpu_emulation(emulator, case, monkeypatch):
    monkeypatch.setattr(cuda_launch, "INDEX32_LIMIT", 0)  # every geometry now takes the -DINDEX_64BIT build
    *_, geom = _case(case, np.float64)
    for launch in all_launches(geom, np.float64):  # built after the patch, cache or not
        scalars = [a for a in launch.args if not isinstance(a, Placeholder)]
        assert "-DINDEX_64BIT" in launch.options and scalars and all(type(a) is np.int64 for a in scalars)
    _check_raw_backend(case, np.float64, np, emulator)


class NoHostChecks:
    """NumPy as the array module, minus what would read device values back to the host on a GPU."""

    FORBIDDEN = frozenset({"isfinite", "isnan", "isinf", "all", "any", "asnumpy"})

    def __getattr__(self, name):
        if name in self.FORBIDDEN:
            raise AssertionError(f"xp.{name}: a device-to-host check in the hot path")
        return getattr(np, name)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0, on purpose
@pytest.mark.parametrize("tiled", [False, True], ids=["simple", "tiled"])
@pytest.mark.parametrize("where", ["weight", "dy", "x"])
def test_raw_kernels_nonfinite_values_as_the_definition_without_host_checks(emulator, where, tiled):
    """inf meeting the padding gives inf * 0 = NaN (the kernels multiply the padding's zeros); inf next to outputs
    that do not exist stays out of the sum (the tiled kernels' edge threads and dx's absent dy rows); and no
    ``isfinite`` on the host decides it."""
    from test_backends_grid import _same_nonfinite_pattern

    rng = np.random.default_rng(13)
    x, weight = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((4, 2, 3, 3))
    options = dict(stride=1, padding=1, dilation=1, groups=2)
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, None, **options)
    dy = rng.standard_normal(geom.y_shape)
    {"weight": weight, "dy": dy, "x": x}[where][0, 0, 0, 0] = np.inf
    x[1, 3, -1, -1] = -np.inf if where == "x" else x[1, 3, -1, -1]
    run = Recording(emulator)
    y = cupy_gpu._raw_forward(x, weight, None, geom, NoHostChecks(), run, tiled)
    _same_nonfinite_pattern(y, ref.conv2d(x, weight, **options), "y")
    got = cupy_gpu._raw_backward(dy, x, weight, geom, NoHostChecks(), run, tiled)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        _same_nonfinite_pattern(g, want, label)
    assert run.names == _expected_kernels(geom, np.float64, tiled)[:3]
    # Backend "cupy" (columns by kernel, then GEMMs): the columns hold the padding's zeros, so the same holds.
    _same_nonfinite_pattern(cupy_gpu._im2col_forward(x, weight, None, geom, NoHostChecks(), emulator), ref.conv2d(
        x, weight, **options), "y")  # fmt: skip
    got = cupy_gpu._im2col_backward(dy, x, weight, geom, NoHostChecks(), emulator)
    for g, want, label in zip(got, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        _same_nonfinite_pattern(g, want, label)


def test_raw_backend_refuses_oversized_kernels_before_any_launch_and_auto_avoids_it():
    from gconv_edu.backends import gpu_auto_choice

    geom = ConvGeometry.from_shapes((1, 8, 32, 32), (8, 1, 29, 29), padding=14, groups=8)
    launches = []
    with pytest.raises(ValueError, match="841 taps"):
        cupy_gpu._raw_backward(None, None, None, geom, np, launches.append)
    assert launches == []
    assert gpu_auto_choice(geom, ["cupy", "cupy-raw"]) == "cupy"


def test_index_width_counts_padding_and_dilated_positions():
    huge = dict(stride=(1, 2**31), padding=(0, 2**30), dilation=(1, 2**31))  # tiny arrays, 2**31-wide positions
    geom = ConvGeometry.from_shapes((1, 1, 1, 1), (1, 1, 1, 2), **huge)
    assert cuda_launch.index_dtype(geom) is np.int64


# --------------------------------------------------------------------------- availability and errors (no GPU)
def test_availability_says_why_not_here():
    try:
        import cupy

        has_device = cupy.cuda.is_available()
    except ImportError:
        assert cupy_gpu.availability().startswith("cupy not installed")
        return
    if has_device:
        pytest.skip("a CUDA device is usable here")
    assert cupy_gpu.availability() == "no CUDA device"


def test_availability_without_cupy_never_raises():
    code = (
        "import sys; sys.modules['cupy'] = None  # import cupy now fails\n"
        "from gconv_edu.backends import cupy_gpu; print(cupy_gpu.availability())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cupy not installed")


def test_availability_when_the_device_query_fails(monkeypatch):
    cupy = pytest.importorskip("cupy")

    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(cupy.cuda, "is_available", broken)
    assert cupy_gpu.availability() == "no CUDA device (RuntimeError: driver exploded)"


def test_availability_without_nvrtc(monkeypatch):
    cupy = pytest.importorskip("cupy")
    from cupy.cuda import nvrtc

    def missing():
        raise OSError("libnvrtc.so.12: cannot open shared object file")

    monkeypatch.setattr(cupy.cuda, "is_available", lambda: True)
    monkeypatch.setattr(nvrtc, "getVersion", missing)
    assert cupy_gpu.availability().startswith("NVRTC not loadable, CuPy cannot compile kernels (OSError)")


@pytest.mark.parametrize("backend", ["cupy", "cupy-raw"])
def test_asking_for_a_gpu_backend_here_raises_a_clear_error(backend):
    if GPU_REASON is None:
        pytest.skip("the GPU backends are usable here")
    assert backend not in gc.available_backends()
    x, weight = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match=re.escape(f"{backend}: {GPU_REASON}")):
        gc.conv2d(x, weight, backend=backend)
    with pytest.raises(ValueError, match=re.escape(f"{backend}: {GPU_REASON}")):
        gc.conv2d_backward(np.ones((1, 1, 2, 2)), x, weight, backend=backend)


# --------------------------------------------------------------------------- on a GPU
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", ["cupy", "cupy-raw"])
@pytest.mark.gpu
@needs_gpu
def test_gpu_backend_matches_reference_cupy_in_cupy_out(backend, case, dtype):
    import cupy

    x, weight, bias, dy, options, _ = _case(case, dtype)
    on_device = [None if a is None else cupy.asarray(a) for a in (x, weight, bias, dy)]
    y = gc.conv2d(*on_device[:3], backend=backend, **options)
    assert isinstance(y, cupy.ndarray) and y.dtype == dtype
    assert_close(cupy.asnumpy(y), ref.conv2d(x, weight, bias, **options), dtype, "y")
    grads = gc.conv2d_backward(on_device[3], *on_device[:2], backend=backend, **options)
    for got, want, label in zip(grads, ref.conv2d_backward(dy, x, weight, **options), ("dx", "dw", "db")):
        assert isinstance(got, cupy.ndarray) and got.dtype == dtype, label
        assert_close(cupy.asnumpy(got), want, dtype, label)


@pytest.mark.parametrize("backend", ["cupy", "cupy-raw"])
@pytest.mark.gpu
@needs_gpu
def test_gpu_backend_numpy_in_numpy_out(backend):
    x, weight, bias, dy, options, _ = _case("g2-s2-uneven", np.float32)
    y = gc.conv2d(x, weight, bias, backend=backend, **options)
    assert isinstance(y, np.ndarray)
    assert_close(y, ref.conv2d(x, weight, bias, **options), np.float32, "y")
    grads = gc.conv2d_backward(dy, x, weight, backend=backend, **options)
    assert all(isinstance(g, np.ndarray) for g in grads)


@pytest.mark.parametrize("case", ["depthwise-split-dw", "g3-k2x3-s2x1-d2x1-pad2x0"])
@pytest.mark.gpu
@needs_gpu
def test_gpu_raw_kernels_64_bit_path(case, monkeypatch):
    import cupy

    def compare(got, want, dtype, label):
        assert_close(cupy.asnumpy(got), want, dtype, label)

    _check_raw_backend(case, np.float64, cupy, cupy_gpu._run_on_gpu, compare)  # the 32-bit build
    monkeypatch.setattr(cuda_launch, "INDEX32_LIMIT", 0)
    _check_raw_backend(case, np.float64, cupy, cupy_gpu._run_on_gpu, compare)  # the -DINDEX_64BIT build


@pytest.mark.parametrize("tiled", [False, True], ids=["simple", "tiled"])
@pytest.mark.parametrize("case", TILED_CASES)
@pytest.mark.gpu
@needs_gpu
def test_gpu_simple_and_tiled_kernels_match_reference(case, tiled):
    """Both paths on the geometries the tiled kernels take (the public API runs the tiled path only)."""
    import cupy

    def compare(got, want, dtype, label):
        assert_close(cupy.asnumpy(got), want, dtype, label)

    _check_raw_backend(case, np.float32, cupy, cupy_gpu._run_on_gpu, compare, tiled=tiled)


@pytest.mark.gpu
@needs_gpu
def test_gpu_raw_dw_is_deterministic():
    import cupy

    x, weight, _, dy, _, geom = _case("depthwise-split-dw", np.float32)
    x, weight, dy = cupy.asarray(x), cupy.asarray(weight), cupy.asarray(dy)
    first = cupy_gpu.raw_backward(dy, x, weight, geom)
    for _ in range(3):
        again = cupy_gpu.raw_backward(dy, x, weight, geom)
        for a, b in zip(first, again):
            assert bool((a == b).all()), "the same call gave different bits"


@pytest.mark.gpu
@needs_gpu
def test_gpu_auto_picks_a_gpu_backend_for_cupy_arrays():
    import cupy

    x, weight, bias, _, options, _ = _case("dense-3x3", np.float64)
    y = gc.conv2d(cupy.asarray(x), cupy.asarray(weight), cupy.asarray(bias), **options)  # backend=None -> auto
    assert isinstance(y, cupy.ndarray)
    assert_close(cupy.asnumpy(y), ref.conv2d(x, weight, bias, **options), np.float64, "y")
