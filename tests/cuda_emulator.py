"""Run the CUDA kernels of gconv_edu/backends/kernels/ on the CPU, for the tests of a machine without a GPU.

The ``.cu`` files are compiled as C++ by g++ with a small shim (a block's CUDA threads as coroutines,
``__syncthreads`` as a switch back to their scheduler, ``__shfl_down_sync`` through a buffer), and driven by
cuda_launch's launch descriptions on NumPy arrays. Also: the kernels' C signatures, parsed from the sources.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path

import numpy as np

from gconv_edu.backends import cupy_gpu

KERNEL_FILES = sorted(cupy_gpu.KERNEL_DIR.glob("*.cu"))

_KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)')


def kernel_signatures() -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    """(file, kernel) -> [(C declaration, name, is_pointer)] for every extern "C" kernel in kernels/*.cu."""
    signatures = {}
    for path in KERNEL_FILES:
        code = re.sub(r"//[^\n]*", "", path.read_text())  # comments hold parentheses
        for match in _KERNEL.finditer(code):
            params = [" ".join(p.split()) for p in match.group(2).split(",")]
            signatures[(path.name, match.group(1))] = [(p, re.findall(r"\w+", p)[-1], "*" in p) for p in params]
    return signatures


_SHIM = r"""
// The few CUDA built-ins the kernels use, emulated on the CPU. The threads of a block are coroutines (ucontext) run
// by one OS thread; __syncthreads() hands control back to a scheduler that resumes every thread in turn, so each
// thread runs from one barrier to the next before any runs on. The kernels call __shfl_down_sync in lock-step from
// every thread of the block (uniform loops), so a barrier on each side of a shared buffer gives the warp shuffle's
// result. Blocks run one after the other (grids of up to three dimensions; blocks are one-dimensional). A
// __shared__ array is a static of its kernel: one copy, seen by every thread of the block, as on the GPU.
#include <stdlib.h>
#include <ucontext.h>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static dim3 gridDim, blockDim, blockIdx, threadIdx;
static ucontext_t scheduler, contexts[1024];
static bool finished[1024];
static double shuffle_slots[1024];
static void (*block_body)(void*);
static void* block_closure;
#define __global__
#define __launch_bounds__(...)
#define __shared__ static
static void __syncthreads() { swapcontext(&contexts[threadIdx.x], &scheduler); }
template <typename T> static T __shfl_down_sync(unsigned, T value, int offset) {
    const unsigned tid = threadIdx.x;
    shuffle_slots[tid] = (double)value;
    __syncthreads();
    T result = tid % 32 + offset < 32 ? (T)shuffle_slots[tid + offset] : value;
    __syncthreads();
    return result;
}
static void thread_main() { block_body(block_closure); finished[threadIdx.x] = true; }
template <typename F> static void call_closure(void* closure) { (*(F*)closure)(); }
template <typename F> static void run_grid(unsigned gx, unsigned gy, unsigned gz, unsigned bx, F kernel) {
    const size_t stack_size = 1 << 16;
    char* stacks = (char*)malloc(stack_size * bx);
    gridDim.x = gx; gridDim.y = gy; gridDim.z = gz; blockDim.x = bx;
    block_body = call_closure<F>;
    block_closure = &kernel;
    for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x) {
            blockIdx.x = x; blockIdx.y = y; blockIdx.z = z;
            for (unsigned t = 0; t < bx; ++t) {
                getcontext(&contexts[t]);
                contexts[t].uc_stack.ss_sp = stacks + t * stack_size;
                contexts[t].uc_stack.ss_size = stack_size;
                contexts[t].uc_link = &scheduler;
                makecontext(&contexts[t], thread_main, 0);
                finished[t] = false;
            }
            for (bool running = true; running;) {  // one round: every live thread runs to its next barrier or its end
                running = false;
                for (unsigned t = 0; t < bx; ++t) {
                    if (finished[t]) continue;
                    threadIdx.x = t;
                    swapcontext(&scheduler, &contexts[t]);
                    running = true;
                }
            }
        }
    free(stacks);
}
"""


class CpuEmulator:
    """Runs a :class:`gconv_edu.backends.cuda_launch.KernelLaunch` on NumPy arrays: the real .cu sources compiled by
    g++ with the shim."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.signatures = kernel_signatures()
        self.libraries: dict[tuple[str, ...], ctypes.CDLL] = {}

    def _library(self, options: tuple[str, ...]) -> ctypes.CDLL:
        if options not in self.libraries:
            lines = [_SHIM] + [f'#include "{path}"' for path in KERNEL_FILES]
            for (_, name), params in self.signatures.items():
                declarations = ", ".join(declaration for declaration, _, _ in params)
                names = ", ".join(param for _, param, _ in params)
                lines.append(
                    f'extern "C" void launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
                    f"{declarations}) "
                    f"{{ run_grid(gx, gy, gz, bx, [=] {{ {name}({names}); }}); }}"
                )
            stem = self.directory / f"kernels{len(self.libraries)}"
            stem.with_suffix(".cpp").write_text("\n".join(lines))
            command = ["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-Wno-unknown-pragmas", *options]
            command += ["-o", str(stem.with_suffix(".so")), str(stem.with_suffix(".cpp"))]
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            self.libraries[options] = ctypes.CDLL(str(stem.with_suffix(".so")))
        return self.libraries[options]

    def __call__(self, launch) -> None:
        params = self.signatures[(launch.source, launch.name)]
        wide = "-DINDEX_64BIT" in launch.options
        index, index_ctype = (np.int64, ctypes.c_longlong) if wide else (np.int32, ctypes.c_int)
        scalar = np.float64 if "-DSCALAR_T=double" in launch.options else np.float32
        function = getattr(self._library(launch.options), f"launch_{launch.name}")
        function.argtypes = [ctypes.c_uint] * 4 + [ctypes.c_void_p if ptr else index_ctype for _, _, ptr in params]
        values = []
        for (_, name, is_pointer), value in zip(params, launch.args, strict=True):
            if is_pointer:
                assert value.dtype == scalar and value.flags.c_contiguous, f"{launch.name}: {name}"
                values.append(value.ctypes.data)
            else:
                assert type(value) is index, f"{launch.name}: {name} is {type(value).__name__}"
                values.append(int(value))
        assert launch.block[0] <= 1024 and len(launch.block) == 1, launch.block
        grid = (*launch.grid, 1, 1)[:3]
        function(*grid, launch.block[0], *values)
