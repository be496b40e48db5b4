"""The CUDA kernels compile to sm_80 and sm_90 machine code without register spills (nvcc; no GPU needed).

Every ``kernels/*.cu`` is compiled by ``nvcc -c --resource-usage`` for both architectures in one call, with exactly
the ``-D`` options that cuda_launch gives NVRTC for a geometry, plus ``-ftz=true``: CuPy appends it to every NVRTC
compilation (``_compile_with_cache_cuda`` in ``cupy/cuda/compiler.py``: ``options += ('-ftz=true',)``). It means
"flush to zero": float32 denormals (magnitudes below 2**-126, about 1.2e-38) are read and written as 0 by float32
arithmetic; float64 is not affected. nvcc's default is ``-ftz=false``, so compiling without it here would test other
code than the GPU runs. ptxas then reports per kernel its registers and its spill stores/loads (local memory that
stands in for registers); a spill on a kernel up to 7x7 fails the test. Skipped where nvcc is not on PATH.

The geometries: depthwise 1x1 .. 7x7 (the tiled kernels and the simple ones are compiled from the same translation
unit), a thin-group 3x3 (4 x 4 channels), a stride-2 and a dilated depthwise layer; float32 and float64; 64-bit
indices for 3x3 and 7x7 (the -DINDEX_64BIT build is taken by patching cuda_launch.INDEX32_LIMIT).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cuda_emulator import KERNEL_FILES, kernel_signatures

from gconv_edu.backends import cuda_launch, cupy_gpu
from gconv_edu.geometry import ConvGeometry

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
ARCHS = ("sm_80", "sm_90")
NVRTC_ADDS = ("-ftz=true",)  # what CuPy adds to every RawModule compilation (see the module docstring)
_ENTRY = re.compile(
    r"Compiling entry function '(\w+)' for '(\w+)'.*?(\d+) bytes stack frame, (\d+) bytes spill stores, "
    r"(\d+) bytes spill loads\s*\n[^\n]*?Used (\d+) registers",
    re.S,
)


def _geom(x_shape, w_shape, **options):
    return ConvGeometry.from_shapes(x_shape, w_shape, None, **options)


def depthwise(k, **options):
    return _geom((2, 8, 40, 36), (8, 1, k, k), groups=8, padding=k // 2, **options)


GEOMETRIES = {
    **{f"depthwise-{k}x{k}": depthwise(k) for k in (1, 3, 5, 7)},
    "thin-4x4-3x3": _geom((2, 16, 40, 36), (16, 4, 3, 3), groups=4, padding=1),
    "depthwise-3x3-s2": depthwise(3, stride=2),
    "depthwise-5x5-d2": depthwise(5, dilation=2),
}
# (geometry, dtype, 64-bit indices): every geometry in float32 and float64 with 32-bit indices, and the 64-bit
# builds (more registers per index) where the most registers are at stake, 3x3 and 7x7. About 30 nvcc calls: a
# minute of CPU time on two cores.
BUILDS = [(name, dtype, False) for name in GEOMETRIES for dtype in (np.float32, np.float64)] + [
    (name, dtype, True) for name in ("depthwise-3x3", "depthwise-7x7") for dtype in (np.float32, np.float64)
]


def resource_usage(sources, options) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(kernel, arch) -> (registers, spill store bytes, spill load bytes), from one nvcc call for both ARCHS."""
    unit = "".join(f'#include "{path}"\n' for path in sources)
    gencode = [f"-gencode=arch=compute_{a[3:]},code={a}" for a in ARCHS]
    command = [NVCC, "-c", *gencode, "--resource-usage", "-Werror", "all-warnings", *options, *NVRTC_ADDS]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "unit.cu").write_text(unit)
        command += ["-o", str(Path(folder) / "unit.o"), str(Path(folder) / "unit.cu")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    return {(m[0], m[1]): (int(m[5]), int(m[3]), int(m[4])) for m in _ENTRY.findall(result.stderr)}


def _option_sets(geom, dtype):
    """(sources, options) pairs covering every launch cupy-raw makes for ``geom``: the simple kernels compiled with
    the tiled kernels' options (a superset: the tiled -D's do not touch them), and the tiled dx build alone."""
    placeholder = object()
    forward = cuda_launch.tiled_forward_launch(geom, dtype, *[placeholder] * 4)
    simple = cuda_launch.forward_launch(geom, dtype, *[placeholder] * 4)
    assert set(simple.options) <= set(forward.options)
    sets = [(KERNEL_FILES, forward.options)]
    if geom.stride == (1, 1):
        dx = cuda_launch.tiled_backward_input_launch(geom, dtype, *[placeholder] * 4)
        sets.append(([cupy_gpu.KERNEL_DIR / dx.source], dx.options))
    return sets


def _all_builds(monkeypatch):
    builds = []
    for name, dtype, wide in sorted(BUILDS, key=lambda build: build[2]):  # the 64-bit ones last: after the patch
        if wide:
            monkeypatch.setattr(cuda_launch, "INDEX32_LIMIT", 0)  # every geometry takes the -DINDEX_64BIT build
        for sources, options in _option_sets(GEOMETRIES[name], dtype):
            assert ("-DINDEX_64BIT" in options) == wide
            builds.append((name, sources, options))
    return builds


def test_every_kernel_compiles_for_sm80_and_sm90_without_spills_up_to_7x7(monkeypatch):
    builds = _all_builds(monkeypatch)
    with ThreadPoolExecutor(2) as pool:  # two cores here: nvcc runs single-threaded
        usages = list(pool.map(lambda build: resource_usage(build[1], build[2]), builds))
    spills, seen = [], set()
    for (name, sources, options), usage in zip(builds, usages):
        expected = {kernel for file, kernel in kernel_signatures() if file in {path.name for path in sources}}
        for arch in ARCHS:
            assert {kernel for kernel, a in usage if a == arch} == expected, f"{name} {arch}: {sorted(usage)}"
        for (kernel, arch), (registers, stores, loads) in usage.items():
            seen.add(kernel)
            if stores or loads:
                spills.append(f"{name} {kernel} {arch} {' '.join(options)}: {registers} registers, {stores} B spilled")
    assert seen == {kernel for _, kernel in kernel_signatures()}
    assert not spills, "\n".join(spills)


def test_tiled_kernels_take_the_depthwise_and_thin_group_geometries_compiled_above():
    for name, geom in GEOMETRIES.items():
        for kind in ("forward", "backward_weight"):
            assert cuda_launch.tiled_supports(geom, kind, np.float64), (name, kind)
        assert cuda_launch.tiled_supports(geom, "backward_input", np.float64) == (geom.stride == (1, 1)), name


def test_the_largest_filter_cupy_raw_takes_compiles_without_spills_in_float32():
    """MAX_TAPS is the measured bound: the largest square filter it admits compiles without spills (float32,
    32-bit indices, the common build; float64 and 64-bit builds spill first, see cuda_launch.MAX_TAPS)."""
    side = int(cuda_launch.MAX_TAPS**0.5)
    geom = _geom((1, 2, 40, 40), (2, 2, side, side), padding=side // 2)
    options = cuda_launch.compile_options(np.float32, geom)
    simple = [path for path in KERNEL_FILES if "tiled" not in path.name]  # the tiled ones stop at 64 weights
    usage = resource_usage(simple, options)
    spilled = {key: value for key, value in usage.items() if value[1] or value[2]}
    assert not spilled, f"{side}x{side}: {spilled}"
