// Grouped 2-D convolution, gradient with respect to the weight: dw = dL/dweight.   (gconv_edu, backend "cupy-raw")
// Deterministic: no atomics, the same summation order on every run (lesson 07 says why that matters).
//
// What is summed
// --------------
// Every weight is used by every output pixel of its filter, so its gradient is a long reduction over
// (n, oh, ow), R = N * H_out * W_out terms:
//
//     dw[k, c, p, q] = sum_{n, oh, ow} dy[n, k, oh, ow] * x[n, g*(C_in/G) + c, oh*sh - pad_top + p*dil_h,
//                                                                              ow*sw - pad_left + q*dil_w]
//
// with g = k / (C_out/G) the filter's group (padding taps read zero and are multiplied all the same).
//
// Block -> element mapping
// ------------------------
// ONE BLOCK PER (filter k, channel c) PAIR, computing all KERNEL_H*KERNEL_W taps of dw[k, c] at once: each dy value
// is then loaded once and used for every tap. blockIdx.x = k * (C_in/G) + c.
// When there are few pairs (a depthwise layer has only C_out of them) the GPU would sit mostly idle, so the
// reduction is also SPLIT into gridDim.y contiguous chunks of `chunk` terms; block (pair, s) writes its partial
// sums to partial[s, k, c, :, :] and the host adds the splits in a fixed order (cupy sum over axis 0).
//
// Inside a block, thread t takes terms r = begin + t, begin + t + BLOCK_SIZE, ... of its chunk, where
// r = (n * H_out + oh) * W_out + ow: consecutive threads read consecutive dy (coalesced). Each thread keeps one
// running sum per tap in registers, then the block adds them up in a fixed tree:
//   1) within each warp of 32 threads, by register shuffles (__shfl_down_sync), no shared memory needed;
//   2) across the BLOCK_SIZE/32 warps, through shared memory, summed in warp order by the first threads.
//
// Compile-time parameters (cupy_gpu.py passes them with -D; the defaults let you compile this file alone):
//   SCALAR_T (float or double), INDEX_64BIT (64-bit indices), KERNEL_H, KERNEL_W (filter size: the per-tap sums are
//   a fixed-size register array), STRIDE_H, STRIDE_W (sh, sw), BLOCK_SIZE (threads per block, a multiple of 32;
//   must match the launch).
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
#define TAPS (KERNEL_H * KERNEL_W)
#define WARP_SIZE 32

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_backward_weight(
    const scalar_t* __restrict__ dy,  // (N, C_out, H_out, W_out), C-contiguous
    const scalar_t* __restrict__ x,   // (N, C_in, H, W)
    scalar_t* __restrict__ partial,   // (gridDim.y, C_out, C_in/G, KERNEL_H, KERNEL_W): one partial dw per split
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_channels, const index_t out_h, const index_t out_w,
    const index_t in_per_group, const index_t out_per_group,
    const index_t pad_top, const index_t pad_left,
    const index_t dil_h, const index_t dil_w,
    const index_t chunk)  // terms per split (the last split may have fewer)
{
    __shared__ scalar_t warp_sums[BLOCK_SIZE / WARP_SIZE][TAPS];

    const index_t pair = blockIdx.x;  // k * (C_in/G) + c_in_group
    const index_t k = pair / in_per_group;
    const index_t c = (k / out_per_group) * in_per_group + (pair - k * in_per_group);  // absolute input channel
    const index_t pixels = out_h * out_w;
    const index_t terms = batch * pixels;
    const index_t begin = (index_t)blockIdx.y * chunk;
    const index_t end = chunk < terms - begin ? begin + chunk : terms;  // (written so it cannot overflow)

    scalar_t acc[TAPS];
#pragma unroll
    for (int t = 0; t < TAPS; ++t) acc[t] = 0;

    for (index_t r = begin + (index_t)threadIdx.x; r < end; r += BLOCK_SIZE) {
        // Undo r = (n * H_out + oh) * W_out + ow.
        const index_t n = r / pixels;
        const index_t pixel = r - n * pixels;
        const index_t oh = pixel / out_w;
        const index_t ow = pixel - oh * out_w;
        const scalar_t grad = dy[(n * out_channels + k) * pixels + pixel];
        const scalar_t* x_channel = x + (n * in_channels + c) * height * width;
        const index_t row0 = oh * STRIDE_H - pad_top;
        const index_t col0 = ow * STRIDE_W - pad_left;
        bool col_inside[KERNEL_W];  // per tap column, computed once per term (fewer registers than per tap)
#pragma unroll
        for (int q = 0; q < KERNEL_W; ++q) col_inside[q] = col0 + q * dil_w >= 0 && col0 + q * dil_w < width;
#pragma unroll
        for (int p = 0; p < KERNEL_H; ++p) {
            const index_t row = row0 + p * dil_h;
            const bool row_inside = row >= 0 && row < height;
            const scalar_t* x_row = x_channel + row * width + col0;  // dereferenced only inside the input
#pragma unroll
            for (int q = 0; q < KERNEL_W; ++q) {
                // The padding reads 0 and is multiplied like the rest: an inf in dy gives inf * 0 = NaN there, as in
                // the definition (the host needs no check of dy).
                const scalar_t value = row_inside && col_inside[q] ? x_row[q * dil_w] : 0;
                acc[p * KERNEL_W + q] += grad * value;
            }
        }
    }

    // 1) Warp reduction: after the loop, lane 0 holds the sum of its warp's 32 values (same tree every run).
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
#pragma unroll
    for (int t = 0; t < TAPS; ++t) {
        scalar_t value = acc[t];
        for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
            value += __shfl_down_sync(0xffffffffu, value, offset);
        }
        if (lane == 0) warp_sums[warp][t] = value;
    }
    __syncthreads();

    // 2) Across warps, in warp order: thread t finishes tap t.
    for (int t = threadIdx.x; t < TAPS; t += BLOCK_SIZE) {
        scalar_t total = 0;
        for (int w = 0; w < BLOCK_SIZE / WARP_SIZE; ++w) total += warp_sums[w][t];
        partial[((index_t)blockIdx.y * (index_t)gridDim.x + pair) * TAPS + t] = total;
    }
}
