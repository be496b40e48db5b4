// Grouped 2-D convolution, gradient with respect to the input: dx = dL/dx.   (gconv_edu, backend "cupy-raw")
//
// Thread -> element mapping
// -------------------------
// ONE THREAD PER INPUT ELEMENT dx[n, c, row, col], flat index
//
//     idx = ((n * C_in + c) * H + row) * W + col        (col fastest: coalesced stores)
//
// The forward pass SCATTERS each input pixel into every output that saw it. Here each thread GATHERS instead: it
// finds the outputs (oh, ow) that read its pixel and sums dy * weight over them. Every dx element is written by
// exactly one thread, so no atomics are needed and the result is deterministic.
//
// Which outputs saw input row `row` through kernel tap p? The forward pass read row  oh*sh - pad_top + p*dil_h,  so
//
//     oh = (row + pad_top - p*dil_h) / sh,   valid only if  row + pad_top - p*dil_h >= 0,  it is divisible by sh,
//                                         and oh < H_out.
//
// With stride > 1 most (row, p) pairs have no output at all (the remainder is not 0): they are skipped, not rounded.
// Likewise for columns. The input channel c of group g = c / (C_in/G) was seen by that group's C_out/G filters:
//
//     dx[n, c, row, col] = sum_{j < C_out/G} sum_{valid p, q}  dy[n, g*(C_out/G) + j, oh(p), ow(q)]
//                                                            * weight[g*(C_out/G) + j, c - g*(C_in/G), p, q]
//
// Compile-time parameters (cupy_gpu.py passes them with -D; the defaults let you compile this file alone):
//   SCALAR_T (float or double), INDEX_64BIT (64-bit indices), KERNEL_H, KERNEL_W (the filter size, so the tap loops
//   unroll and the per-tap output coordinates live in registers), STRIDE_H, STRIDE_W (sh, sw: a division or remainder
//   by a constant 1 or 2 costs nothing or a shift, by a run-time value some twenty instructions), BLOCK_SIZE (threads
//   per block, for __launch_bounds__(BLOCK_SIZE, 1): see conv2d_forward.cu).
// Non-finite values: only outputs that exist are summed (a tap with no output is absent from the definition, not a
// zero), so nothing here meets the padding and inf/NaN come out as in the definition without any special case.
// No #include: NVRTC has no host headers.

#ifndef SCALAR_T
#define SCALAR_T float
#endif
#ifndef KERNEL_H
#define KERNEL_H 3
#endif
#ifndef KERNEL_W
#define KERNEL_W 3
#endif
#ifndef STRIDE_H
#define STRIDE_H 1
#endif
#ifndef STRIDE_W
#define STRIDE_W 1
#endif
#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256
#endif

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_backward_input(
    const scalar_t* __restrict__ dy,      // (N, C_out, H_out, W_out), C-contiguous
    const scalar_t* __restrict__ weight,  // (C_out, C_in/G, KERNEL_H, KERNEL_W)
    scalar_t* __restrict__ dx,            // (N, C_in, H, W), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_channels, const index_t out_h, const index_t out_w,
    const index_t in_per_group, const index_t out_per_group,
    const index_t pad_top, const index_t pad_left,
    const index_t dil_h, const index_t dil_w)
{
    const index_t taps = KERNEL_H * KERNEL_W;
    const index_t total = batch * in_channels * height * width;
    const index_t step = (index_t)blockDim.x * (index_t)gridDim.x;
    for (index_t idx = (index_t)blockIdx.x * (index_t)blockDim.x + (index_t)threadIdx.x; idx < total; idx += step) {
        // Undo idx = ((n * C_in + c) * H + row) * W + col, one division per level.
        const index_t col = idx % width;
        index_t rest = idx / width;  // (n * C_in + c) * H + row
        const index_t row = rest % height;
        rest /= height;  // n * C_in + c
        const index_t c = rest % in_channels;
        const index_t n = rest / in_channels;
        const index_t group = c / in_per_group;
        const index_t c_in_group = c - group * in_per_group;

        // The output column each tap q maps this pixel to, or -1 where there is none (checked once, reused for every
        // filter of the group and every row of taps below).
        index_t ow_of_tap[KERNEL_W];
#pragma unroll
        for (int q = 0; q < KERNEL_W; ++q) {
            const index_t shifted = col + pad_left - q * dil_w;
            const bool hit = shifted >= 0 && shifted % STRIDE_W == 0 && shifted / STRIDE_W < out_w;
            ow_of_tap[q] = hit ? shifted / STRIDE_W : -1;
        }

        // dy of this sample's first filter in the group, and weight[g*(C_out/G), c_in_group, :, :].
        const scalar_t* dy_group = dy + (n * out_channels + group * out_per_group) * out_h * out_w;
        const scalar_t* w_group = weight + (group * out_per_group * in_per_group + c_in_group) * taps;

        scalar_t acc = 0;
        for (index_t j = 0; j < out_per_group; ++j) {
            const scalar_t* dy_filter = dy_group + j * out_h * out_w;
            const scalar_t* w_filter = w_group + j * in_per_group * taps;
            // Up to 3x3 every tap is unrolled; larger filters take one row of taps at a time, which keeps the
            // registers in check (fully unrolled, 11x11 spills to local memory; tests/test_kernels_compile.py).
#if KERNEL_H * KERNEL_W > 9
#pragma unroll 1
#else
#pragma unroll
#endif
            for (int p = 0; p < KERNEL_H; ++p) {
                const index_t shifted = row + pad_top - p * dil_h;  // the output row of tap p, if there is one
                if (shifted < 0 || shifted % STRIDE_H != 0 || shifted / STRIDE_H >= out_h) continue;
                const scalar_t* dy_row = dy_filter + (shifted / STRIDE_H) * out_w;
#pragma unroll
                for (int q = 0; q < KERNEL_W; ++q) {
                    if (ow_of_tap[q] < 0) continue;
                    acc += dy_row[ow_of_tap[q]] * w_filter[p * KERNEL_W + q];
                }
            }
        }
        dx[idx] = acc;
    }
}
